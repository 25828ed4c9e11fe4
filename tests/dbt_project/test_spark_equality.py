"""The same dbt project on Apache Spark builds the same rows as on DuckDB (issue #20).

The synthetic lake of the dbt tests (dbt_synthetic.write_lake: tied timestamps, a gap,
re-ingested exact and conflicting trade copies, a provisional candle fetch, a candles-only
market, news and scores) is built once on DuckDB (`dbt build`, the normal path) and once on
Spark (sentinance_assets.lib.spark.build_marts_on_spark: dbt-spark `session` on local[2], the
indicators by the same polars function in a grouped map, the results copied into a DuckDB
warehouse). Then a second batch lands (new trades, trades late by hours, conflicting copies of
kept trades that must lose, a candles-only market gaining trades, a late exchange candle for a
minute without trades) and Spark runs *incrementally*; DuckDB builds the final lake from
scratch. After each Spark run every relation of the staging, intermediate and marts zones must
equal DuckDB's: same columns with the same DuckDB types, and no row of one missing from the
other (EXCEPT ALL both ways).

Doubles are compared rounded to 9 significant digits. Everything exact is exact (keys, counts,
timestamps, OHLC, indicators: the same polars code on the same bars), but the order-independent
sums (macros/exact_sum.sql: each value to DECIMAL(38, 18), summed, back to a double) convert
between double and decimal differently: DuckDB multiplies by 1e18 in floating point and divides
the 128-bit sum back in floating point (about one ulp), Spark converts through the shortest
decimal string and rounds correctly. Sums, VWAPs and what derives from them (spreads,
correlations, consolidated candles) may therefore differ in the last bits; the test prints how
many rows matched bit for bit.

Dbt tests are excluded here (test_dbt_build runs them on DuckDB; on Spark they pass too but
cost ~3 minutes). The test process's one Spark session (tests/conftest.py), its metastore
and warehouse in a tmp dir.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib import spark as spark_engine
from sentinance_assets.lib.schemas import RAW_CANDLES, TS
from sentinance_assets.settings import Settings
from tests.dbt_project.dbt_synthetic import (
    HOURS,
    INGESTED,
    make_trades,
    run_dbt_build,
    write_lake,
)
from tests.dbt_project.test_incremental import _late_candles, _sol_trades, _write

REASON = spark_engine.spark_unavailable_reason()
pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(REASON is not None, reason=f"Spark tests need Java and PySpark: {REASON}"),
]

NO_TESTS = ("--exclude-resource-type", "test")
ZONES = ("staging", "intermediate", "marts")
SIGNIFICANT_DIGITS = 9
# batch 2 arrives after everything of batch 1 (whose re-ingested copies landed at INGESTED + 1 h)
BATCH2 = INGESTED + timedelta(hours=2)


def _batch2() -> dict[str, pl.DataFrame]:
    trades = make_trades(seed=23)
    main = trades.filter(pl.col("base").is_in(["BTC", "ETH"]))
    new = main.sample(400, seed=1).with_columns(
        ts=pl.col("ts") + timedelta(hours=HOURS), trade_id=pl.lit("new-") + pl.col("trade_id")
    )
    late = main.sample(120, seed=2).with_columns(trade_id=pl.lit("late-") + pl.col("trade_id"))
    kept = make_trades()  # the first lake's trades: copies that must lose to the first ingested
    conflicting = kept.sample(40, seed=9).with_columns(price=pl.col("price") * 3)
    return {"new": new, "late": late, "conflicting": conflicting, "sol": _sol_trades()}


def _land_batch2(lake_dir: Path) -> None:
    for part, df in _batch2().items():
        _write(lake_dir, df.with_columns(ingested_at=pl.lit(BATCH2).cast(TS)), f"b2-{part}")
    candles = _late_candles().with_columns(ingested_at=pl.lit(BATCH2).cast(TS))
    lake.write_partition(lake_dir, RAW_CANDLES, candles, partition="2026-11-14", part="b2-late")


def _round(column: str) -> str:
    """A double rounded to SIGNIFICANT_DIGITS (NULL, 0, NaN and infinities as they are)."""
    digits = SIGNIFICANT_DIGITS - 1
    return (
        f'case when "{column}" is null or "{column}" = 0 or not isfinite("{column}") '
        f'then "{column}" else round("{column}", {digits} - '
        f'cast(floor(log10(abs("{column}"))) as integer)) end as "{column}"'
    )


def compare(duck: Path, spark_copy: Path, spark_session) -> dict[str, dict]:
    """Per relation of the zones in the DuckDB build: row count, column types on each side, and
    rows only on one side (exact, and with doubles rounded). Tables are compared with the
    Spark build's copy in its DuckDB warehouse (what readers get); views (staging,
    intermediate) with Spark's own views, read through Arrow (the copy's views are
    dbt-duckdb's)."""
    out: dict[str, dict] = {}
    with duckdb.connect(str(duck), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(f"ATTACH '{spark_copy}' AS spark (READ_ONLY)")
        cat = conn.sql("select current_database()").fetchone()[0]
        names = conn.sql(
            "select table_schema || '.' || table_name, table_type from information_schema.tables "
            f"where table_catalog = '{cat}' and table_schema in {ZONES} order by 1"
        ).fetchall()
        for name, kind in names:
            schema, table = name.split(".")
            if kind == "VIEW":
                arrow = spark_session.table(name).toArrow()
                conn.register("spark_view", arrow)
                columns = ", ".join(spark_engine._duckdb_column(f) for f in arrow.schema)
                conn.execute(f"CREATE TEMP TABLE {table} AS SELECT {columns} FROM spark_view")
                conn.unregister("spark_view")
                other, other_cat, other_schema = f"temp.main.{table}", "temp", "main"
            else:
                other, other_cat, other_schema = f"spark.{name}", "spark", schema
            layout = {}
            for side, (c, s) in {
                "duckdb": (cat, schema),
                "spark": (other_cat, other_schema),
            }.items():
                layout[side] = conn.sql(
                    "select column_name, data_type from information_schema.columns "
                    f"where table_catalog = '{c}' and table_schema = '{s}' "
                    f"and table_name = '{table}' order by ordinal_position"
                ).fetchall()
            result = {"types_equal": layout["duckdb"] == layout["spark"], "types": layout}
            if result["types_equal"]:
                rounded = ", ".join(
                    _round(c) if t == "DOUBLE" else f'"{c}"' for c, t in layout["duckdb"]
                )
                for label, cols in (("exact", "*"), ("rounded", rounded)):
                    a = f"select {cols} from {cat}.{name}"
                    b = f"select {cols} from {other}"
                    result[label] = tuple(
                        conn.sql(f"select count(*) from ({x} except all {y})").fetchone()[0]
                        for x, y in ((a, b), (b, a))
                    )
            result["rows"] = conn.sql(f"select count(*) from {cat}.{name}").fetchone()[0]
            result["spark_rows"] = conn.sql(f"select count(*) from {other}").fetchone()[0]
            out[name] = result
    return out


def assert_equal(result: dict[str, dict]) -> None:
    summary = {k: (v["rows"], v.get("exact"), v.get("rounded")) for k, v in sorted(result.items())}
    print(json.dumps(summary, indent=1))
    assert len(result) >= 20, sorted(result)  # every model and the seed
    for name, r in result.items():
        assert r["types_equal"], (name, r["types"])
        assert r["rows"] == r["spark_rows"], (name, r["rows"], r["spark_rows"])
        assert tuple(r["rounded"]) == (0, 0), (name, r["rounded"])
    # non-empty marts: the comparison compares something
    assert all(result[m]["rows"] > 0 for m in result if m.startswith("marts."))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, spark_dir: Path, spark) -> dict:
    work = tmp_path_factory.mktemp("spark_equality")
    lake_dir = work / "lake"
    data = write_lake(lake_dir)
    # the test process's session (tests/conftest.py): its folder, and shuffle partitions 4
    settings = Settings(home=work, engine="spark", spark_dir=spark_dir, spark_shuffle_partitions=4)
    timings: dict[str, float] = {}

    def spark_build(label: str, **kwargs) -> Path:
        t = time.perf_counter()
        build = spark_engine.build_marts_on_spark(settings, extra_args=NO_TESTS, **kwargs)
        timings[label] = time.perf_counter() - t
        print(label, [(" ".join(s.args[:3]), round(s.seconds, 1)) for s in build.steps])
        snapshot = work / f"{label}.duckdb"
        shutil.copyfile(settings.warehouse_path, snapshot)
        return snapshot

    first = spark_build("spark_full", full_refresh=True)
    t = time.perf_counter()
    duck_first = run_dbt_build(lake_dir, work / "duck1", data, *NO_TESTS)
    assert duck_first.returncode == 0, duck_first.output[-4000:]
    timings["duckdb_full"] = time.perf_counter() - t
    first_result = compare(duck_first.warehouse, first, spark)

    _land_batch2(lake_dir)
    second = spark_build("spark_incremental")
    compiled = (
        (settings.spark_dir / "dbt" / "target" / "compiled" / "sentinance" / "models")
        / "intermediate"
        / "int_candles_1m.sql"
    )
    duck_second = run_dbt_build(lake_dir, work / "duck2", data, *NO_TESTS)
    assert duck_second.returncode == 0, duck_second.output[-4000:]
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    return {
        "first": first_result,
        "second": compare(duck_second.warehouse, second, spark),
        "compiled_incremental": compiled.read_text(),
        "settings": settings,
    }


def test_spark_full_build_equals_duckdb(scenario):
    assert_equal(scenario["first"])


def test_spark_incremental_run_equals_duckdb_full_build(scenario):
    # really incremental on Spark: the 1-minute bars filter on the watermark
    assert "ingested_at >=" in scenario["compiled_incremental"]
    assert_equal(scenario["second"])
    # the second batch reached the marts: the candles-only market switched to trades
    with duckdb.connect(str(scenario["settings"].warehouse_path), read_only=True) as conn:
        sources = dict(
            conn.sql(
                "select source, count(*) from marts.candles where exchange = 'kraken' "
                "and symbol = 'SOL/USD' and timeframe = '1m' group by all"
            ).fetchall()
        )
    assert sources == {"trades": 120, "exchange_1m": 120}, sources


def test_readers_open_the_spark_build_like_a_duckdb_build(scenario):
    """The warehouse file has the lake views, the staging views and the marts a reader
    expects (the app's counted tables), so publishing it serves every reader as before."""
    settings = scenario["settings"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        kinds = dict(
            conn.sql(
                "select table_schema || '.' || table_name, table_type "
                "from information_schema.tables"
            ).fetchall()
        )
    assert kinds["raw.trades"] == "VIEW"
    assert kinds["staging.stg_news"] == "VIEW"
    assert kinds["staging.stg_trades"] == "VIEW"
    for mart in ("candles", "indicators", "spreads", "asset_overview", "candle_completeness"):
        assert kinds[f"marts.{mart}"] == "BASE TABLE", mart


def test_a_subset_builds_and_copies_only_the_selected_models(scenario):
    """A subset run (``models``) builds the selected models and their tests on Spark, skips
    the indicators' grouped map when ``indicators`` is not selected, and copies only what it
    built."""
    build = spark_engine.build_marts_on_spark(scenario["settings"], models=["news_sentiment_daily"])
    on_spark = build.steps[:2]  # the third step creates the DuckDB views of every build
    ok = ("success", "pass")  # a model built, a test passed
    built = {r["unique_id"] for step in on_spark for r in step.results if r["status"] in ok}
    assert "model.sentinance.news_sentiment_daily" in built
    assert not any(u.startswith("model.") and "news_sentiment_daily" not in u for u in built)
    assert any(u.startswith("test.") for u in built)  # its tests came with it
    assert build.indicator_rows == 0
    assert list(build.copied) == ["marts.news_sentiment_daily"]
