"""Name blocking's candidate pairs found once, in DuckDB, and handed to Splink as pair keys (issue 19).

The MinHash band keys (lib.linkage.lsh) are an exploding blocking rule: Splink unnests every node's 12 keys, joins
them, and for each raw match evaluates the rule's own conditions and every earlier rule (so that a pair is
proposed once), which needs each of those rules' columns, the names' Bloom filters included, copied into every
exploded row. At 1,000,000 encounters that rule's blocking took 15-24 s of the link's 30-39 s of scoring, against
3-5 s for the other eight rules together, and scoring held 10.2-10.4 GB (docs/PERFORMANCE.md, session 9).

Here the same pairs are found first, on integer ids and the keys alone: the band keys joined, de-duplicated, then
the surviving pairs joined to their two nodes once to drop what the rule's conditions drop (two NHS-number groups,
names that both differ: `model.without_names_both_differ`) and what an earlier rule proposes. Each pair left gets
one key of its own, held by its two nodes in the `name_lsh` column in place of the band keys, and the exploding
rule on that column comes first among the rules: each key joins exactly one pair and it has no earlier rule to
exclude. A later rule does not propose the pair again (removed here; Splink would otherwise de-duplicate it in
its union of the rules' pairs), so the pairs scored, and their scores, are those of the rule as it was
(tests/test_linkage_band_pairs.py). The model as stored keeps its
rules; this is how scoring runs them, in DuckDB (Spark runs the exploding rule itself).

Measured at 1M (session 9): finding the pairs here took 19-24 s against about the same for Splink's exploding
rule, with the process's peak at 8.8 GB instead of 10.2-10.4 GB. Most raw matches are names that both differ, so
since session 10 the names are tested first, on a narrow table with the name hashes as 64-bit integers, and only
the pairs left are joined to the other rules' columns: on one 1M store 18.1 -> 9.6 s, on one 5M store 111.2 ->
83.6 s, the same pairs (docs/PERFORMANCE.md, session 10).

Since session 13 the national rules' pairs are found here too (`national`: the same forename and surname anywhere,
73.4 million pairs at 5M), and with a floor above 0 neither they nor the band keys' pairs are kept where the pair's
weight bound (lib.linkage.weight_bound) cannot reach the floor: Splink never scores a pair that could only be
dropped. In one 5M link scoring went 347 -> 244 s (finding the pairs here 123 s of it), with the same children, queue
and F1; the scored pairs at or above the floor are Splink's own rules' (tested at two floors). Since session 14 a
national rule's pairs are met on the keys of lib.linkage.bound_joins (the same names with the same date of birth,
or part of it, or the same home, or an unknown one, ...) instead of forming all of them: every pair whose bound can
reach the floor shares one, so the pairs kept are the same (tests/test_linkage_bound_joins.py).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from lib.linkage import bound_joins, lsh, model, weight_bound
from lib.records import bloom


def _rules(model_json: dict) -> tuple[list[dict], dict | None]:
    """(the rules that are not name blocking, the name-blocking rule or None)."""
    rules = model_json.get("blocking_rules_to_generate_predictions", [])
    named = [r for r in rules if r.get("arrays_to_explode") == [lsh.COLUMN]]
    return [r for r in rules if r not in named], (named[0] if named else None)


def _columns(rule: dict) -> set[str]:
    return set(re.findall(r'\b[lr]\."?(\w+)"?', rule["blocking_rule"]))


def national(rule: dict) -> bool:
    """Whether a blocking rule reads the names alone: it pairs two records anywhere in the country at any age, so
    its pairs grow with the square of the store (the same forename and surname: 3.5 million pairs at 1M, 73.4
    million at 5M). Its pairs are found here, under the weight bound (lib.linkage.weight_bound)."""
    return not rule.get("arrays_to_explode") and _columns(rule) <= set(model.NAME_COLUMNS)


def applies(model_json: dict, frame: pd.DataFrame) -> bool:
    """Whether the model blocks on the band keys and the frame carries them."""
    return _rules(model_json)[1] is not None and lsh.COLUMN in frame.columns


def _on_pairs(sql: str) -> str:
    """A blocking rule's SQL (l."x", r.x) read on the joined pair table ("x_l", "x_r")."""
    return re.sub(r'\b([lr])\."?(\w+)"?', r'"\2_\1"', sql)


@dataclass(eq=False)  # holds frames and a connection: compared by identity
class NameMeetings:
    """The band keys' pairs whose names do not both differ: the first half of `pair_keys`, held on its DuckDB
    connection (`con`, with `frame` registered) as the table `source`. They need the band keys and the names'
    Dice cut-points, not the trained weights, so `inference.probabilistic_pass` finds them beside training, on the
    core Splink's training leaves idle (docs/PERFORMANCE.md, session 24). `keyed`: the frame of text ids they
    were asked for (`frame` is it with integer ids, as scoring numbers the nodes); `both`: the names test they
    were found with (None: every pair kept). `pair_keys` takes them only for the same frame and the same test."""
    con: duckdb.DuckDBPyConnection
    frame: pd.DataFrame
    both: str | None
    source: str
    keyed: pd.DataFrame | None = None

    def close(self) -> None:
        self.con.close()


def _both_test(model_json: dict, names_both_differ: bool) -> str | None:
    """The names test on the narrow table (`_words`): both names differ; None where no pair is dropped for it."""
    both = model.names_both_differ_sql(model_json) if not names_both_differ else None
    return _words(both) if both else None


def name_meetings(frame: pd.DataFrame, model_json: dict, names_both_differ: bool, limits: dict | None = None,
                  keyed: pd.DataFrame | None = None) -> NameMeetings:
    """`NameMeetings` of `frame` (integer `unique_id`s and band keys) under the names test of `model_json`, trained
    or not (the test reads its levels and Dice cut-points only): the band keys joined and de-duplicated, then the
    pairs whose names both differ dropped on a narrow table (the filters' words as plain columns, the name hashes as
    64-bit integers: `_nodes`), since they are most raw matches. Each table is dropped once the next is made.
    `limits`: as `pair_keys`."""
    both = _both_test(model_json, names_both_differ)
    con = duckdb.connect(config=limits or {})
    try:
        con.register("frame_in", frame)
        con.execute(f"""CREATE TEMP TABLE bands AS SELECT unique_id AS id, unnest({lsh.COLUMN}) AS k FROM frame_in
                        WHERE {lsh.COLUMN} IS NOT NULL""")
        con.execute("""CREATE TEMP TABLE met AS SELECT DISTINCT l.id AS a, r.id AS b FROM bands l JOIN bands r
                       ON l.k = r.k AND l.id < r.id""")
        con.execute("DROP TABLE bands")
        source = "met"
        if both:  # first the names, on a narrow table: most raw matches are names that both differ
            _nodes(con, frame, both, table="names", source=source, of="frame_in")
            con.execute(f"CREATE TEMP TABLE named AS {_pairs(con, 'names', source, f'NOT ({both})')}")
            con.execute("DROP TABLE names")
            con.execute("DROP TABLE met")
            source = "named"
    except BaseException:
        con.close()
        raise
    return NameMeetings(con, frame, both, source, keyed)


def pair_keys(frame: pd.DataFrame, model_json: dict, skip_numbered: bool, names_both_differ: bool,
              limits: dict | None = None, floor: float = 0.0, meetings: NameMeetings | None = None
              ) -> tuple[pd.DataFrame, int]:
    """(`frame`, its integer `unique_id`s, with `name_lsh` holding pair keys instead of band keys, and the number of
    pairs). The pairs: those of the band keys (names that both differ dropped unless `names_both_differ`) and those
    of the national rules (`national`), kept where the nodes are not two NHS-number groups (`skip_numbered`), no
    other rule of the model proposes them, and, with a `floor` above 0, the pair's weight bound
    (lib.linkage.weight_bound) reaches the floor's weight: a pair under it cannot be scored at the floor. The band
    keys' pairs are `name_meetings`' (`meetings` if found already for this frame and this model's names test, else
    found here), so the other rules' columns are joined only to the pairs left. `limits`: the DuckDB settings the
    link runs under (`config.duckdb_config`: its memory limit and spill folder), so a national store's pairs spill
    to disk instead of exhausting memory. `meetings` is closed when this returns."""
    others, _ = _rules(model_json)
    local = [r for r in others if not national(r)]
    cheap = [f"coalesce(({_on_pairs(r['blocking_rule'])}), false)" for r in local]
    numbered = f'("{model.NUMBERED}_l" AND "{model.NUMBERED}_r")' if skip_numbered else None
    if numbered:
        cheap.append(numbered)
    reach = None
    lists = {c for c in frame.columns if c == lsh.COLUMN or c.endswith("_bloom")}  # what the bound weighs at best
    if floor > 0:
        reach = f"(({weight_bound.bound_sql(model_json, lists)}) >= {weight_bound.floor_weight(floor)!r})"
    if meetings is not None and (meetings.frame is not frame
                                 or meetings.both != _both_test(model_json, names_both_differ)):
        meetings.close()  # found for another frame or another names test: not these pairs
        meetings = None
    if meetings is None:
        meetings = name_meetings(frame, model_json, names_both_differ, limits)
    con, source = meetings.con, meetings.source
    try:
        tf = weight_bound.tf_columns(model_json) if reach else []
        tf_joins = "".join(f" LEFT JOIN ({weight_bound.tf_table_sql(c, 'frame_in')}) USING (\"{c}\")" for c in tf)
        con.execute(f"CREATE TEMP VIEW nodes_in AS SELECT * FROM frame_in{tf_joins}")
        proposed = " OR ".join(cheap) or "false"  # another rule proposes the pair, or two NHS-number groups
        keep = f"NOT ({proposed})" + (f" AND {reach}" if reach else "")
        found = [r for r in others if national(r)]
        rules = "".join(f" AND ({_on_pairs(r['blocking_rule'])})" for r in found)
        if cheap or reach or found:
            _nodes(con, frame, keep + rules, table="nodes", source=None if found else source)
        keyed = _met_on_keys(con, model_json, found, floor, lists)  # national rules whose pairs are met on keys: tables
        if keyed:  # the band keys' pairs and the keys' tested together, each pair's two nodes looked up once
            union = " UNION ALL ".join([f"SELECT a, b, true AS band FROM {source}",
                                        *(f"SELECT a, b, false AS band FROM {table}" for table in keyed.values())])
            con.execute(f"CREATE TEMP TABLE candidates AS SELECT a, b, bool_or(band) AS band FROM ({union})"
                        " GROUP BY a, b")
            met_rule = " OR ".join(f"({_on_pairs(found[i]['blocking_rule'])})" for i in keyed)
            source = f"({_pairs(con, 'nodes', 'candidates', f'({keep}) AND (band OR {met_rule})', carry=('band',))})"
        elif cheap or reach:
            source = f"({_pairs(con, 'nodes', source, keep)})"
        whole = [r for i, r in enumerate(found) if i not in keyed]
        if whole:  # the national rules' pairs, on every node, kept as the band keys' are
            source = "(" + " UNION ".join([f"SELECT a, b FROM {source}", *(
                f"SELECT l.unique_id AS a, r.unique_id AS b FROM nodes l JOIN nodes r"
                f" ON ({r['blocking_rule']}) AND l.unique_id < r.unique_id WHERE {model.on_rows(keep)}"
                for r in whole)]) + ")"
        # each pair numbered by its row (rowid + 1: the numbers row_number() OVER () gave, in the same order), not
        # by a window: a window over the whole result runs the joins and tests that feed it on one thread
        # (1M: 0.76 s on one core; docs/PERFORMANCE.md, session 26)
        con.execute(f"CREATE TEMP TABLE kept AS SELECT a, b FROM {source}")
        pairs = con.execute("SELECT count(*) FROM kept").fetchall()[0][0]
        keys = con.sql("""SELECT id, list(pk ORDER BY pk) AS pks
                          FROM (SELECT a AS id, rowid + 1 AS pk FROM kept UNION ALL SELECT b AS id, rowid + 1 AS pk
                                FROM kept)
                          GROUP BY id""").to_arrow_table()
    finally:
        con.close()
    held = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(keys.column("pks")).cast(pa.list_(pa.int64()))),
                     index=pd.Index(keys.column("id").to_numpy(), name="unique_id"))
    per_node = held.reindex(frame["unique_id"].to_numpy())
    return frame.assign(**{lsh.COLUMN: pd.Series(per_node.array, index=frame.index)}), int(pairs)


def _met_on_keys(con, model_json: dict, rules: list[dict], floor: float, lists: set[str]) -> dict[int, str]:
    """{index of a national rule: a table of pairs (a, b)} for the rules whose pairs are met on the keys of
    lib.linkage.bound_joins: every pair of the rule whose bound can reach the floor is among them (with others, which
    the rule and the bound then drop). None without a floor, nor where the keys cannot be read: such a rule's whole
    join runs. `lists`: the list columns the bound weighs at their best (as `weight_bound.bound_sql`)."""
    if floor <= 0 or not rules:
        return {}
    facts = _facts(con)
    out = {}
    for number, rule in enumerate(rules):
        keys = bound_joins.plan(model_json, lists, _on_pairs(rule["blocking_rule"]), floor, facts)
        if keys is None:
            continue
        sides = {side: ", ".join(key.side_sql(i, side) for i, key in enumerate(keys)) for side in "lr"}
        con.execute(f"""CREATE TEMP TABLE key_{number} AS SELECT unique_id, [{sides['l']}] AS kl, [{sides['r']}] AS kr
                        FROM nodes_in""")
        con.execute(f"""CREATE TEMP TABLE met_{number} AS SELECT DISTINCT l.id AS a, r.id AS b
                        FROM (SELECT * FROM (SELECT unique_id AS id, unnest(kl) AS v FROM key_{number})
                              WHERE v IS NOT NULL) l
                        JOIN (SELECT * FROM (SELECT unique_id AS id, unnest(kr) AS v FROM key_{number})
                              WHERE v IS NOT NULL) r
                        ON l.v = r.v AND l.id < r.id""")
        con.execute(f"DROP TABLE key_{number}")
        out[number] = f"met_{number}"
    return out


def _columns_of(con, table: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def _facts(con):
    """column -> (DuckDB type, approximate distinct values) on the nodes, read once per column asked."""
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE nodes_in)").fetchall())
    known: dict = {}

    def facts(column: str):
        if column not in types:
            return None
        if column not in known:
            count = con.execute(f'SELECT approx_count_distinct("{column}") FROM nodes_in').fetchall()[0][0]
            known[column] = (types[column], int(count))
        return known[column]
    return facts


def _words(sql: str) -> str:
    """A level's Dice SQL on list elements ("forename_bloom_l"[2]) read on plain word columns ("forename_bloom2_l"),
    and each filter's set bits, summed over its words (`bloom.dice_sql`'s denominator), on a column of its own
    ("forename_bloomn_l": `_nodes` counts them once per node, not once per pair: at 1M the names test 2.7 -> 2.2 s,
    the same pairs)."""
    sql = re.sub(r'"(\w+)_bloom_([lr])"\[(\d+)\]', r'"\1_bloom\3_\2"', sql)
    for field in bloom.FIELDS:
        both = " + ".join(_set_bits(f'"{field}_bloom{{}}_{side}"') for side in "lr")
        sql = sql.replace(f"({both})", f'("{field}_bloomn_l" + "{field}_bloomn_r")')
    return sql


def _set_bits(word: str) -> str:
    """SQL: the set bits of a filter, summed over its words (`word`: a format for word i, 1 to WORDS), as
    `bloom.dice_sql` writes each side of its denominator."""
    return " + ".join(f"CAST(bit_count({word.format(i)}) AS INTEGER)" for i in range(1, bloom.WORDS + 1))


def _only_compared(conditions: str, column: str) -> bool:
    """Whether `conditions` read `column` only in equalities between two columns and null tests (parsed by
    sqlglot, Splink's own SQL library)."""
    def compared(ref: exp.Column) -> bool:
        parent = ref.parent
        if isinstance(parent, exp.EQ):
            return isinstance(parent.this, exp.Column) and isinstance(parent.expression, exp.Column)
        return isinstance(parent, exp.Is) and isinstance(parent.expression, exp.Null)

    refs = [c for c in sqlglot.parse_one(conditions, read="duckdb").find_all(exp.Column)
            if c.name in (f"{column}_l", f"{column}_r")]
    return all(compared(ref) for ref in refs)


def _nodes(con, frame: pd.DataFrame, conditions: str, *, table: str, source: str | None, of: str = "nodes_in"
           ) -> None:
    """A node table `table` of the nodes in the pairs `source` (None: every node): the columns `conditions` read,
    copied once out of pandas (a Python list per filter is slow to scan), each Bloom filter's words as plain BIGINT
    columns. A text column that the conditions only compare for equality or test for null is held as its 64-bit hash
    (NULL kept NULL), so the join to every pair carries 8 bytes instead of a 64-character hash (two different texts
    with one hash: about 1 in 10^19 per comparison). The hashed features are integers already (`model.narrowed`)."""
    picked = []
    for c in _columns_of(con, of):  # the frame's, and tf_* (of `nodes_in`)
        if c != lsh.COLUMN and (f'"{c}_l"' in conditions or f'"{c}_r"' in conditions):
            text = c in frame and pd.api.types.is_string_dtype(frame[c]) and _only_compared(conditions, c)
            picked.append(f'CASE WHEN "{c}" IS NULL THEN NULL ELSE hash("{c}") END AS "{c}"' if text else f'"{c}"')
    for field in bloom.FIELDS:
        picked += [f'{field}_bloom[{i}] AS "{field}_bloom{i}"' for i in range(1, bloom.WORDS + 1)
                   if f'"{field}_bloom{i}_l"' in conditions or f'"{field}_bloom{i}_r"' in conditions]
        if f'"{field}_bloomn_l"' in conditions or f'"{field}_bloomn_r"' in conditions:
            picked.append(f'{_set_bits(field + "_bloom[{}]")} AS "{field}_bloomn"')
    where = f"WHERE unique_id IN (SELECT a FROM {source} UNION SELECT b FROM {source})" if source else ""
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT {', '.join(['unique_id', *picked])} FROM {of} {where}")


def _pairs(con, table: str, source: str, keep: str, carry: tuple = ()) -> str:
    """SQL: the pairs (a, b) of `source` for which `keep` holds, read on both nodes' columns of `table` and the
    `carry` columns of `source`."""
    columns = [c for c in _columns_of(con, table) if c != "unique_id"]
    sides = "".join(f', {s}."{c}" AS "{c}_{s}"' for s in "lr" for c in columns)
    carried = "".join(f', p."{c}"' for c in carry)
    return f"""SELECT a, b FROM (SELECT p.a, p.b{carried}{sides} FROM {source} p
               JOIN {table} l ON l.unique_id = p.a JOIN {table} r ON r.unique_id = p.b)
               WHERE {keep}"""


def scoring_model(model_json: dict) -> dict:
    """The model's rules as scoring runs them on pair keys: the name-blocking rule first and bare (its conditions, and
    the national rules' pairs, were found in `pair_keys`), the other rules after it as they are."""
    others, named = _rules(model_json)
    out = copy.deepcopy(model_json)
    out["blocking_rules_to_generate_predictions"] = [
        {**named, "blocking_rule": f'l."{lsh.COLUMN}" = r."{lsh.COLUMN}"'},
        *copy.deepcopy([r for r in others if not national(r)])]
    return out
