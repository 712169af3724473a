"""The Splink model: comparisons on pseudonymised features, blocking rules, and EM training.

Identifiers reach linkage only as keyed hashes and lossy derived features (lib.records.pseudonymise),
so string-distance comparisons are not possible; agreement is graded instead by exact hash, nickname-
canonical hash, phonetic code, transposed day/month, two of the date's three parts (keyed hashes of the
parts two at a time), postcode sector and district, and, where the home postcode does not agree, the local
authority the two records were met in. Every m and u probability is estimated from the data
(u by random sampling, m by expectation maximisation); none is typed in. Levels are Splink's library levels
(exact match, null, columns reversed, absolute difference, literal match, composed with Or) wherever one
says what we mean; the one custom SQL level is the date of birth read with day and month transposed, which
compares two different columns.
"""
from __future__ import annotations

import copy
import re

import splink.comparison_level_library as cll
import splink.comparison_library as cl
import sqlglot
from splink import SettingsCreator, block_on

from lib.linkage import dice, lsh

#: Column of the local authority district an encounter happened in (lib.records.geography, from the encounter
#: postcode), compared by `area_levels`.
AREA = "enc_lad"

#: Columns Splink sees (beside unique_id).
FEATURES = ["forename_hash", "forename_canon_hash", "forename_phonetic", "surname_hash", "surname_phonetic",
            "dob_hash", "dob_swap_hash", "dob_dm_hash", "dob_ym_hash", "dob_yd_hash", "birth_year", "sex",
            "home_postcode_hash", "home_sector", "home_district", "forename_bloom", "surname_bloom", AREA]

#: The features stored as 64-character keyed hashes (lib.records.pseudonymise). Linkage only ever tests them for
#: equality (and for null), so each enters it as a 63-bit integer of its hash (`narrowed`): 8 bytes instead of 64 in
#: every copy the linkage makes. At 5,000,000 encounters the deterministic pass took 70.8 s with the text, 29.6 s
#: with the integers, its process peaking at 8.9 GB against 5.5 GB (docs/PERFORMANCE.md, session 13). Two different
#: hashes with one integer: about n^2 / 2^64, 1 in a million for 5 million distinct values, once per store.
HASHED = [f for f in FEATURES if f.endswith("_hash")]


def narrowed(column: str) -> str:
    """SQL for `column` as linkage reads it: a `HASHED` feature as a 63-bit integer of its text (NULL stays NULL:
    DuckDB's hash of NULL is a number), any other column as it is."""
    if column not in HASHED:
        return column
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE (hash({column}) >> 1)::BIGINT END AS {column}"

#: The features that hold a name (lib.linkage.band_pairs.national: a blocking rule on these alone pairs records
#: anywhere in the country at any age).
NAME_COLUMNS = ["forename_hash", "forename_canon_hash", "forename_phonetic", "surname_hash", "surname_phonetic",
                "forename_bloom", "surname_bloom"]

#: Column of the scored frame (not a feature): the node is an NHS-number group (lib.linkage.inference).
NUMBERED = "has_nhs"

DOB_PARTS_LABEL = "Two of day, month and year agree"


def dob_parts_level():
    """Two of the date of birth's three parts agree (and not the whole date: that level comes first): the same
    day and month in another year, or the same year with one of day or month different."""
    return cll.Or(*[cll.ExactMatchLevel(f"dob_{part}_hash") for part in ("dm", "ym", "yd")]).configure(
        label_for_charts=DOB_PARTS_LABEL)


BOTH_NAMES_LABEL = "Both names differ"
BOTH_NAMES_SURNAME_LABEL = "Both names differ (weighed once, in forename)"


def _disagrees(field: str, cuts: list[float]) -> str:
    """SQL: `field` is known on both sides and no level of its comparison above disagreement fires."""
    col = {"forename": ["forename_hash", "forename_canon_hash", "forename_phonetic"],
           "surname": ["surname_hash", "surname_phonetic"]}[field]
    parts = [f'"{field}_hash_l" IS NOT NULL', f'"{field}_hash_r" IS NOT NULL']
    parts += [f'NOT coalesce("{c}_l" = "{c}_r", false)' for c in col]
    parts += [f"NOT coalesce({bloom_sql} >= {t:.2f}, false)" for bloom_sql in [dice.bloom.dice_sql(f"{field}_bloom")]
              for t in cuts]
    if field == "forename":
        swapped = '"forename_hash_l" = "surname_hash_r" AND "forename_hash_r" = "surname_hash_l"'
        parts.append(f"NOT coalesce({swapped}, false)")
    return " AND ".join(parts)


def joint_name_levels(dice_cuts: dict[str, list[float]]) -> tuple:
    """(forename level, surname level) for a pair whose forename and surname both disagree fully (a false name or
    an alias, or two different children): weighed once, by the forename comparison's level, whose m and u EM
    estimates for the two names together; the surname comparison's level is a null level (no weight). Without
    it the two Else levels are weighed as if independent, and once the Dice levels take typos out of them
    each is rarer among matches, so a child recorded under a false name was pushed out (measured:
    docs/LINKAGE_PRIVACY.md)."""
    fore, sur = (_disagrees(field, dice_cuts.get(field, [])) for field in ("forename", "surname"))
    both = f"({fore}) AND ({sur})"  # the same condition in both: either level fires only where the other does
    forename = cll.CustomLevel(both, label_for_charts=BOTH_NAMES_LABEL, base_dialect_str="duckdb")
    surname = cll.CustomLevel(both, label_for_charts=BOTH_NAMES_SURNAME_LABEL, base_dialect_str="duckdb").configure(
        is_null_level=True)
    return forename, surname


FORENAME_ONLY_LABEL = "Forename differs, surname agrees"
SURNAME_GIVEN_LABEL = "Forename differs (both names weighed in forename)"


def _agrees(field: str, cuts: list[float]) -> str:
    """SQL: some level of `field`'s comparison above disagreement fires (exact, sound-alike or Dice)."""
    col = {"forename": ["forename_hash", "forename_canon_hash", "forename_phonetic"],
           "surname": ["surname_hash", "surname_phonetic"]}[field]
    parts = [f'coalesce("{c}_l" = "{c}_r", false)' for c in col]
    parts += [f"coalesce({dice.bloom.dice_sql(f'{field}_bloom')} >= {t:.2f}, false)" for t in cuts]
    return " OR ".join(parts)


def conditional_name_levels(dice_cuts: dict[str, list[float]]) -> tuple[list, object]:
    """(forename levels, surname level): the two names weighed together whenever the forename disagrees.

    `joint_name_levels` weighed the joint disagreement once but left "forename differs, surname agrees" in the
    forename's Else level, whose m and u then both require the surname to agree: its weight came out near zero
    (m 0.0047, u 0.0046 at 20,000 built-in encounters), and the surname comparison weighed the surname's
    agreement again (exact surname +3.1 bits, more with its term frequency). A sibling at the same address
    (another forename, the same surname) kept the evidence of the surname twice: most false links and most of
    the review queue at 100,000 were such pairs (docs/LINKAGE_PRIVACY.md).

    Here, once the forename has failed every level above (Splink's levels are tried in order, so these
    conditions need not repeat them), the forename comparison says what the surname did: some level of it
    agrees, or it is known on both sides and does not, or it is unknown (the Else level); m and u are estimated
    for the two names together. The surname comparison's first level after its null level is a null level at
    "the forename disagreed" (no weight: the surname was weighed in the forename). Where the forename agrees at
    some level, the surname is graded as before: P(forename, surname) = P(forename level) x P(surname level |
    the forename did not disagree), with no term counted twice."""
    forename = [
        cll.CustomLevel(_agrees("surname", dice_cuts.get("surname", [])), label_for_charts=FORENAME_ONLY_LABEL,
                        base_dialect_str="duckdb"),
        cll.CustomLevel('"surname_hash_l" IS NOT NULL AND "surname_hash_r" IS NOT NULL',
                        label_for_charts=BOTH_NAMES_LABEL, base_dialect_str="duckdb"),
    ]
    surname = cll.CustomLevel(_disagrees("forename", dice_cuts.get("forename", [])),
                              label_for_charts=SURNAME_GIVEN_LABEL, base_dialect_str="duckdb").configure(
        is_null_level=True)
    return forename, surname


HOME_UNKNOWN_SAME_AREA_LABEL = "Home unknown, both seen in the same local authority"
HOME_DIFFERS_SAME_AREA_LABEL = "Home differs, both seen in the same local authority"


def area_levels() -> tuple[list, list]:
    """(a level before the home postcode's null level, a level before its disagreement): the two records' encounters
    happened in the same local authority district, where the home postcode is unknown on a side or differs.

    Why: children are mostly seen by services near where they live, so two records of one child met in one local
    authority far more often than two records of two children do. At 1,000,000 built-in encounters (session 12,
    docs/LINKAGE_PRIVACY.md), among the stored pairs whose home postcode was unknown on a side or differed, 81-83% of
    the true pairs were seen in one local authority and 0.2-0.8% of the false ones (random pairs: 0.5%); where the
    home postcode agrees, the area adds nothing (false pairs share it as often as true ones), so it is not weighed
    there. A pair with the home unknown on a side and seen in different areas stays on the null level (no weight): a
    child met far from home without an address recorded is not pushed apart. Where the home differs and the areas
    differ too, EM estimates that level's weight like any other (the disagreement's weight is then estimated
    without the pairs the area explains). Children who travel (county-lines-like) were measured for recall before
    and after: it rose for them as for everyone else (transitivity through their local records)."""
    unknown = cll.And(cll.NullLevel("home_postcode_hash"), cll.ExactMatchLevel(AREA)).configure(
        label_for_charts=HOME_UNKNOWN_SAME_AREA_LABEL, is_null_level=False)  # a weighed level, unlike NullLevel
    differs = cll.ExactMatchLevel(AREA).configure(label_for_charts=HOME_DIFFERS_SAME_AREA_LABEL)
    return [unknown], [differs]


def comparisons(dice_cuts: dict[str, list[float]] | None = None, dob_parts: bool = False,
                joint_names: bool | str = False, forename_tf: bool = False, encounter_area: bool = False) -> list:
    """The comparisons; `dice_cuts` (from `dice.thresholds`) adds Dice levels on the names' Bloom filters
    between sound-alike and disagreement (None or an empty list: today's levels only); `dob_parts` adds the
    date of birth's partial agreement (`dob_parts_level`) between transposed and same year; `joint_names`
    (True) weighs both names together whenever the forename disagrees (`conditional_name_levels`); "once" weighs
    only a pair whose two names both disagree once (`joint_name_levels`: session 4's model, measured worse);
    `forename_tf` adjusts the exact forename's weight by the forename's frequency, as the surname's is (a shared
    "Olivia" is weaker evidence than a shared "Zephyrine"; measured in docs/LINKAGE_PRIVACY.md, session 7);
    `encounter_area` adds the place the records were met where the home postcode does not agree (`area_levels`)."""
    dice_cuts = dice_cuts or {}
    conditional = conditional_name_levels(dice_cuts) if joint_names is True else None
    joint = joint_name_levels(dice_cuts) if joint_names == "once" else None
    forename = cl.CustomComparison(
        [
            cll.NullLevel("forename_hash"),
            cll.ExactMatchLevel("forename_hash", term_frequency_adjustments=forename_tf),
            cll.ExactMatchLevel("forename_canon_hash").configure(label_for_charts="Same forename after nicknames"),
            cll.ExactMatchLevel("forename_phonetic").configure(label_for_charts="Forenames sound alike"),
            *dice.levels("forename", dice_cuts.get("forename", [])),
            cll.ColumnsReversedLevel("forename_hash", "surname_hash").configure(
                label_for_charts="Forename and surname swapped"),
            *([joint[0]] if joint else []),
            *(conditional[0] if conditional else []),
            cll.ElseLevel(),
        ],
        output_column_name="forename",
    )
    surname = cl.CustomComparison(
        [
            cll.NullLevel("surname_hash"),
            *([conditional[1]] if conditional else []),
            cll.ExactMatchLevel("surname_hash", term_frequency_adjustments=True),
            cll.ExactMatchLevel("surname_phonetic").configure(label_for_charts="Surnames sound alike"),
            *dice.levels("surname", dice_cuts.get("surname", [])),
            *([joint[1]] if joint else []),
            cll.ElseLevel(),
        ],
        output_column_name="surname",
    )
    dob = cl.CustomComparison(
        [
            cll.NullLevel("dob_hash"),
            cll.ExactMatchLevel("dob_hash"),
            cll.CustomLevel('"dob_hash_l" = "dob_swap_hash_r"', label_for_charts="Day and month transposed",
                            base_dialect_str="duckdb"),
            *([dob_parts_level()] if dob_parts else []),
            cll.ExactMatchLevel("birth_year").configure(label_for_charts="Same year of birth"),
            cll.AbsoluteDifferenceLevel("birth_year", 1).configure(label_for_charts="Year of birth ±1"),
            cll.ElseLevel(),
        ],
        output_column_name="date_of_birth",
    )
    sex = cl.CustomComparison(
        [
            cll.Or(cll.NullLevel("sex"), cll.LiteralMatchLevel("sex", "U", "string", "left"),
                   cll.LiteralMatchLevel("sex", "U", "string", "right")).configure(
                label_for_charts="Sex unknown", is_null_level=True),
            cll.ExactMatchLevel("sex"),
            cll.ElseLevel(),
        ],
        output_column_name="sex",
    )
    unknown_here, differs_here = area_levels() if encounter_area else ([], [])
    postcode = cl.CustomComparison(
        [
            *unknown_here,
            cll.NullLevel("home_postcode_hash"),
            cll.ExactMatchLevel("home_postcode_hash"),
            cll.ExactMatchLevel("home_sector").configure(label_for_charts="Same postcode sector"),
            cll.ExactMatchLevel("home_district").configure(label_for_charts="Same postcode district"),
            *differs_here,
            cll.ElseLevel(),
        ],
        output_column_name="home_postcode",
    )
    return [forename, surname, dob, sex, postcode]


def blocking_rules(name_lsh: bool = False) -> list:
    """Candidate pairs: generous, so recall is not lost before the model sees a pair. `name_lsh` adds the
    MinHash band keys of the names' Bloom filters (lib.linkage.lsh): two nodes sharing any key are a pair,
    so two misspellings that change the sound code still meet."""
    rules = [
        block_on("forename_canon_hash", "surname_hash"),
        block_on("dob_hash", "forename_phonetic"),
        block_on("dob_hash", "surname_phonetic"),
        block_on("dob_hash", "home_district"),
        block_on("surname_phonetic", "birth_year", "home_district"),
        block_on("forename_canon_hash", "birth_year", "home_district"),
        block_on("home_postcode_hash", "birth_year"),
        "l.dob_hash = r.dob_swap_hash AND l.surname_phonetic = r.surname_phonetic",  # plain SQL: any dialect
    ]
    if name_lsh:
        rules.append(block_on(lsh.COLUMN, arrays_to_explode=[lsh.COLUMN]))
    return rules


def settings(dice_cuts: dict[str, list[float]] | None = None, name_lsh: bool = False,
             dob_parts: bool = False, joint_names: bool | str = False, forename_tf: bool = False,
             encounter_area: bool = False) -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons(dice_cuts, dob_parts, joint_names, forename_tf, encounter_area),
        blocking_rules_to_generate_predictions=blocking_rules(name_lsh),
        retain_intermediate_calculation_columns=True,  # per-field match weights (mw_*), kept to explain links
        retain_matching_columns=False,
    )


class TrainingError(RuntimeError):
    """Splink could not estimate the model from these records: e.g. nearly every record carries a valid NHS
    number, so too few unnumbered records are left to find a single matching pair among them."""


def train(linker, seed: int = 42, max_pairs: float = 2e6, em_max_pairs: float | None = None) -> None:
    """λ from deterministic rules, u by random sampling, m by EM in two blocked sessions, each on at most about
    `em_max_pairs` of its blocked pairs (None: all). Splink samples the records of each side by a deterministic
    hash, so a sampled pair is as likely to be a match as any blocked pair: the m estimates keep their target
    and only their spread grows. The date-of-birth session is the large one (250,000 nodes: 12.6 million pairs,
    9.9 of the 16.5 s of training at 1M; docs/PERFORMANCE.md, session 11)."""
    try:
        linker.training.estimate_probability_two_random_records_match(
            [block_on("forename_hash", "surname_hash", "dob_hash"), block_on("dob_hash", "home_postcode_hash")],
            recall=0.8,
        )
    except (ValueError, ZeroDivisionError) as exc:  # log(0): no pair meets the deterministic rules
        raise TrainingError(f"too few records without a valid NHS number to train the match model ({exc})") from exc
    estimate_u(linker, max_pairs, seed)
    for rule in (block_on("dob_hash"), block_on("forename_canon_hash", "surname_hash")):
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True, max_pairs=em_max_pairs)


#: How many times more random pairs u is estimated on again when a level was met by none of them (`estimate_u`).
U_RETRY = 5


def unobserved_u(model_json: dict) -> list[str]:
    """The levels (comparison: label) that have no u: random sampling met no pair at them. Null and ELSE levels are
    not counted (a null level has no u; the ELSE level of a comparison whose other levels cover every pair is
    never met)."""
    return [f"{c['output_column_name']}: {level.get('label_for_charts')}" for c in model_json["comparisons"]
            for level in c["comparison_levels"]
            if not level.get("is_null_level") and level["sql_condition"].strip().upper() != "ELSE"
            and level.get("u_probability") is None]


def estimate_u(linker, max_pairs: float, seed: int) -> None:
    """u by random sampling on `max_pairs` pairs, once more on `U_RETRY` times as many if a level was met by none.

    Why: a level that no sampled pair meets is left without a u, and Splink then scores it with a default u of its
    own. The exact home postcode is such a level at national scale: about 1 random pair in a million shares it, so 2
    million pairs meet it a handful of times or not at all. In one 5M link none did, and recall fell from 0.984 to
    0.949; on 10 million pairs its u was 9.2e-7 and recall 0.984 again (docs/PERFORMANCE.md, session 13). Retried
    only when needed: at 1M, 10 million pairs take 10.5 s against 2.7 s."""
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    if unobserved_u(linker.misc.save_model_to_json()):
        linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs * U_RETRY, seed=seed)


def _has_level(model_json: dict, label: str) -> bool:
    return any(level.get("label_for_charts") == label for comparison in model_json["comparisons"]
               for level in comparison["comparison_levels"])


def has_joint_names(model_json: dict) -> bool | str:
    """How a trained model's JSON weighs the two names: True (together when the forename disagrees,
    `conditional_name_levels`), "once" (the joint disagreement alone, `joint_name_levels`) or False."""
    if _has_level(model_json, FORENAME_ONLY_LABEL):
        return True
    return "once" if _has_level(model_json, BOTH_NAMES_LABEL) else False


def has_encounter_area(model_json: dict) -> bool:
    """Whether a trained model's JSON was built with the place the records were met (`area_levels`)."""
    return _has_level(model_json, HOME_UNKNOWN_SAME_AREA_LABEL)


def has_dob_parts(model_json: dict) -> bool:
    """Whether a trained model's JSON was built with the date of birth's partial-agreement level."""
    return _has_level(model_json, DOB_PARTS_LABEL)


class ReplayError(ValueError):
    """A trained model's JSON cannot be scored on another backend (its SQL does not translate, or a field it
    needs is missing); the message names the model."""


def _translate(sql: str, dialect: str) -> str:
    return sqlglot.transpile(sql, read="duckdb", write=dialect)[0]


def trained_settings(model_json: dict, dialect: str, source: str = "the trained model") -> dict:
    """`model_json` (Splink's JSON of a model trained on DuckDB) with its SQL written for another dialect (e.g.
    "spark"): the same comparisons, levels, λ and every m and u probability, each level's SQL condition and each
    blocking rule translated from DuckDB by sqlglot (as Splink itself translates a level written for DuckDB).

    Splink's model JSON holds SQL in the dialect it was trained in: DuckDB's double-quoted identifiers would be
    string literals in Spark SQL, and DuckDB's lists count from 1, Spark's arrays from 0, so the JSON cannot be
    loaded as it is by another backend. The SQL is translated from the JSON itself, not rebuilt from today's
    `settings()`: a model trained by an earlier release (whose levels were labelled or written differently, e.g.
    session 4's `joint_name_levels`) replays exactly as it was trained. `source` names the model in the
    `ReplayError` raised when it cannot be (e.g. "model of linkage run 3", a file name)."""
    out = copy.deepcopy(model_json)
    where = "its λ (probability_two_random_records_match)"
    try:
        out["probability_two_random_records_match"] = float(model_json["probability_two_random_records_match"])
        for comparison in out["comparisons"]:
            for level in comparison["comparison_levels"]:
                where = f"comparison {comparison.get('output_column_name')!r}, level {level.get('label_for_charts')!r}"
                if level["sql_condition"].strip().upper() != "ELSE":
                    level["sql_condition"] = _translate(level["sql_condition"], dialect)
        for rule in out.get("blocking_rules_to_generate_predictions", []):
            where = f"blocking rule {rule.get('blocking_rule')!r}"
            if rule.get("sql_dialect", "duckdb") != "duckdb":
                raise ValueError(f"written for {rule.get('sql_dialect')}, not DuckDB")
            rule["blocking_rule"] = _translate(rule["blocking_rule"], dialect)
            rule["sql_dialect"] = dialect
        if "sql_dialect" in out:  # Splink's saved JSON names its dialect
            out["sql_dialect"] = dialect
    except KeyError as exc:
        raise ReplayError(f"{source} cannot be scored on {dialect}: its JSON lacks {exc} (not a Splink model "
                          "trained by lib.linkage.training?)") from exc
    except Exception as exc:  # sqlglot's parse and unsupported-syntax errors, or the dialect check above
        raise ReplayError(f"{source} cannot be scored on {dialect}: {where}: {exc}") from exc
    return out


def names_both_differ_sql(model_json: dict) -> str | None:
    """SQL (a level's form, "x_l" and "x_r"): both names are known and differ at every level above disagreement,
    with the model's own Dice cut-points; None for a model whose names are not weighed together."""
    if has_joint_names(model_json) is not True:
        return None
    cuts = dice.thresholds_in(model_json)
    return f"({_disagrees('forename', cuts['forename'])}) AND ({_disagrees('surname', cuts['surname'])})"


def on_rows(sql: str) -> str:
    """A level's SQL ("x_l", "x_r") read on a join of two rows aliased l and r, as a blocking rule reads it."""
    return re.sub(r'"(\w+)_([lr])"', r'\2."\1"', sql)


def without_names_both_differ(model_json: dict) -> dict:
    """A copy of a trained model whose name-blocking rule (the exploded MinHash band keys, lib.linkage.lsh) proposes
    a pair only where its two names do not both differ: some level of the forename's or the surname's comparison
    above disagreement fires (exact, nicknames, sound-alike, the trained Dice cut-point, names swapped).

    Why: the band keys meet inside large coarse blocks (a date of birth; a district with sex), so most pairs they
    add share a MinHash of each name and little else. Such a pair would fall to the model's "Both names differ"
    level, and with no date and district agreeing together (those pairs come from the earlier rules) it scores
    near zero: at 200,000 built-in encounters 614,548 of the rule's 651,242 pairs (94%) had both names differ,
    their highest probability was 0.255, and none reached 0.38 (docs/LINKAGE_PRIVACY.md, "Blocking on the
    filters"; 1M in docs/PERFORMANCE.md, session 9). The pairs a
    misspelling needs name blocking for have one name at least at the Dice cut-point, and are kept. Only a model
    whose names are weighed together (`has_joint_names` True) is filtered; any other is returned as it is. The
    stored model keeps its rules: this is applied at scoring time (`inference.score`), in DuckDB SQL that the
    Spark path translates like the model's own."""
    both = names_both_differ_sql(model_json)
    if both is None:
        return model_json
    both = on_rows(both)
    out = copy.deepcopy(model_json)
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        if rule.get("arrays_to_explode") == [lsh.COLUMN]:
            rule["blocking_rule"] = f"({rule['blocking_rule']}) AND NOT ({both})"
    return out


def scoring_settings(settings: dict, skip_numbered_pairs: bool = False) -> dict:
    """A trained model's settings for scoring: Splink 5 outputs the level that fired (gamma_*) only when it
    retains the matching columns, which training does without (they would weigh down EM's tables);
    `edge_columns` drops them again before they leave the backend.

    `skip_numbered_pairs` (the scored frame has the `NUMBERED` column): every prediction rule also requires that
    not both nodes are NHS-number groups. Two groups carry two different valid numbers (the deterministic pass
    merged equal ones), so `inference.kept_edges` drops their pair whatever its score; blocking them out spares
    scoring them, and the edges are the same (tests/test_linkage_numbered_pairs.py). Added at scoring time only:
    the stored model JSON keeps the rules it was trained with."""
    out = {**settings, "retain_matching_columns": True}
    if skip_numbered_pairs:
        out["blocking_rules_to_generate_predictions"] = [
            {**rule, "blocking_rule": f"({rule['blocking_rule']}) AND NOT (l.{NUMBERED} AND r.{NUMBERED})"}
            for rule in settings.get("blocking_rules_to_generate_predictions", [])]
    return out


def edge_columns(columns: list[str]) -> list[str]:
    """The prediction columns an edge keeps: the pair, its weight and probability, and for each comparison
    its match weight (mw_*, mw_tf_adj_*) and the level that fired (gamma_*); never a matching column."""
    return ["unique_id_l", "unique_id_r", "match_weight", "match_probability",
            *[c for c in columns if c.startswith(("mw_", "gamma_"))]]
