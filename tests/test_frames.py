"""lib.records.frames.frame gives exactly what DuckDB's `.df()` gives (values and dtypes), type by type."""
import duckdb
import pandas as pd
import pytest

from lib.records import frames

VALUES = {"BOOLEAN": "true", "TINYINT": "1", "SMALLINT": "1", "INTEGER": "1", "BIGINT": "1", "HUGEINT": "1",
          "UTINYINT": "1", "USMALLINT": "1", "UINTEGER": "1", "UBIGINT": "1", "FLOAT": "1.5", "DOUBLE": "1.5",
          "DATE": "DATE '2020-01-02'", "TIMESTAMP": "TIMESTAMP '2020-01-02 10:00'",
          "TIMESTAMPTZ": "TIMESTAMPTZ '2020-01-02 10:00+00'", "DECIMAL(10,2)": "1.25", "BIGINT[]": "[1, -2]",
          "VARCHAR[]": "['a', NULL]", "VARCHAR": "'é'", "INTEGER[]": "[1, 2]",
          "BIGINT[] with a null element": "[1, NULL]",
          # not plain: left to .df() whole
          "UUID": "'0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'", "STRUCT(a INTEGER)": "{'a': 1}",
          "INTERVAL": "INTERVAL 1 DAY"}


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    connection.execute("CREATE TYPE mood AS ENUM ('calm', 'cross')")
    yield connection
    connection.close()


def _same(con, sql, params=None):
    expected = con.sql(sql, params=params).df()
    got = frames.frame(con.sql(sql, params=params))
    pd.testing.assert_frame_equal(got, expected)
    return got


@pytest.mark.parametrize("kind", sorted(VALUES))
@pytest.mark.parametrize("rows", ["one", "with a null", "none"])
def test_each_type_beside_text_converts_as_duckdb_does(con, kind, rows):
    cast = kind.removesuffix(" with a null element")
    sql = f"SELECT {VALUES[kind]}::{cast} AS c, 'x' || range::VARCHAR AS s FROM range(2)"
    if rows == "with a null":
        sql += " UNION ALL SELECT NULL, NULL"
    if rows == "none":
        sql = f"SELECT * FROM ({sql}) WHERE false"
    _same(con, sql)


def test_text_is_carried_as_strings_with_nulls_as_df_gives_them(con):
    got = _same(con, "SELECT * FROM (VALUES ('a', NULL), (NULL, NULL), ('', NULL)) t(s, never)")
    assert str(got["s"].dtype) == "str" and got["never"].dtype == object  # DuckDB's own choice, kept
    assert got["s"].isna().tolist() == [False, True, False]


def test_a_time_zone_timestamp_keeps_the_callers_time_zone():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'Asia/Tokyo'")
    _same(connection, "SELECT TIMESTAMPTZ '2020-01-02 10:00+00' AS t, 'x' AS s")
    connection.close()


def test_enum_duplicate_names_and_parameters(con):
    _same(con, "SELECT 'calm'::mood AS m, 'x' AS s")
    _same(con, "SELECT 1 AS a, 'x' AS a")
    assert _same(con, "SELECT ? AS s, ? AS n", ["x", 1]).iloc[0].tolist() == ["x", 1]


def test_a_stores_tables_come_back_as_df_gives_them(tmp_path):
    """A real store's encounters (every column type the store holds, Bloom filters included)."""
    from lib.records import ingest, store
    from lib.synth import SynthConfig, generate

    encounters, _ = generate(SynthConfig(n_encounters=300, seed=3))
    con = store.connect(tmp_path / "s.duckdb")
    key = b"frames-test-key-not-secret-0123456789"
    ingest.commit(con, ingest.prepare_frame(encounters, "synthetic.parquet", key=key))
    for table in ("encounters", "batches"):
        _same(con, f"SELECT * FROM {table}")
    con.close()


def test_arrow_lists_keep_bigint_lists_as_arrow_with_the_same_values_and_everything_else_as_df(con):
    """frame(arrow_lists=True), for the linkage nodes' Bloom filters: a BIGINT list column stays an Arrow list (one
    buffer, not a NumPy array per row) holding the same lists and nulls; every other column is `.df()`'s."""
    sql = """SELECT * FROM (VALUES ([1, -2]::BIGINT[], 'a', 1), (NULL, NULL, NULL), ([3, 4]::BIGINT[], 'b', 2))
             t(words, s, n)"""
    expected = con.sql(sql).df()
    got = frames.frame(con.sql(sql), arrow_lists=True)
    assert isinstance(got["words"].dtype, pd.ArrowDtype)
    assert got["words"].array._pa_array.to_pylist() == [[1, -2], None, [3, 4]]
    pd.testing.assert_frame_equal(got.drop(columns=["words"]), expected.drop(columns=["words"]))
    back = duckdb.connect()
    back.register("f", got)
    assert back.execute("SELECT words FROM f").fetchall() == [([1, -2],), (None,), ([3, 4],)]
