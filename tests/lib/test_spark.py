"""The Spark engine's plain parts, without starting Spark (the builds themselves:
tests/dbt_project/test_spark_equality.py, marked `spark`): the indicators grouped-map function,
the copy into DuckDB, the generated profile, the settings and the Dagster events of a build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pyarrow as pa
import pytest

from sentinance_assets.lib import spark as spark_engine
from sentinance_assets.lib.indicators import OUTPUT_COLUMNS, compute_indicators
from sentinance_assets.settings import Settings, SettingsError


def _candles(n: int = 260) -> pl.DataFrame:
    t0 = datetime(2026, 11, 14, tzinfo=UTC)
    rows = []
    for symbol, p0 in (("BTC/USDT", 60_000.0), ("ETH/USDT", 3_000.0)):
        for i in range(n):
            close = p0 * (1 + 0.001 * ((i * 7919) % 13 - 6))
            rows.append(
                {
                    "exchange": "binance",
                    "symbol": symbol,
                    "timeframe": "1m",
                    "ts": t0 + timedelta(minutes=i + (5 if i > 100 else 0)),  # a gap
                    "high": close * 1.001,
                    "low": close * 0.999,
                    "close": close,
                    "quality": "implausible" if i == 50 else "ok",
                }
            )
    return pl.DataFrame(rows).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def test_grouped_map_function_is_compute_indicators_per_series():
    """What each Spark group gets back is exactly the polars function's rows for that series,
    in the declared Arrow schema; per series equals all at once (the maths never crosses
    series)."""
    candles = _candles()
    run = spark_engine._indicators_of_series(max_gap_bars=0)
    parts = [
        pl.from_arrow(run(part.to_arrow()))
        for part in candles.partition_by("exchange", "symbol", "timeframe")
    ]
    per_series = pl.concat(parts)
    assert parts[0].columns == list(OUTPUT_COLUMNS)
    assert run(candles.head(300).to_arrow()).schema == spark_engine.INDICATOR_SCHEMA
    whole = compute_indicators(candles)
    assert per_series.sort("symbol", "ts").equals(whole.sort("symbol", "ts"))


def test_copy_into_duckdb_reads_the_table_files_with_duckdb_types(tmp_path):
    """The copy reads Spark's Parquet files (never the driver) and types every column as the
    DuckDB build does; an empty table (no files) still gets its columns."""
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "ts": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", "UTC")),
            "trade_count": pa.array([12, 7], pa.decimal128(38, 0)),
            "volume": pa.array([1.5, 2.5], pa.float64()),
            "rank": pa.array([1, 2], pa.int64()),
        }
    )
    files = [tmp_path / "part-00000.parquet", tmp_path / "part-00001.parquet"]
    pq.write_table(table.slice(0, 1), files[0])
    pq.write_table(table.slice(1, 1), files[1])
    conn = duckdb.connect()
    assert spark_engine.copy_parquet_into_duckdb(conn, "marts.x", table.schema, files) == 2
    assert spark_engine.copy_parquet_into_duckdb(conn, "marts.e", table.schema, []) == 0
    for name in ("x", "e"):
        types = dict(
            conn.sql(
                f"select column_name, data_type from duckdb_columns() where table_name = '{name}'"
            ).fetchall()
        )
        assert types == {
            "ts": "TIMESTAMP WITH TIME ZONE",
            "trade_count": "HUGEINT",
            "volume": "DOUBLE",
            "rank": "BIGINT",
        }
    assert conn.sql("select sum(trade_count), max(ts) from marts.x").fetchone() == (
        19,
        datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_built_tables_are_the_tables_and_seeds_that_succeeded():
    manifest = {
        "nodes": {
            "model.s.v": {
                "resource_type": "model",
                "config": {"materialized": "view"},
                "schema": "staging",
                "name": "v",
                "alias": "v",
            },
            "model.s.t": {
                "resource_type": "model",
                "config": {"materialized": "incremental"},
                "schema": "marts",
                "name": "t",
                "alias": "t",
            },
            "seed.s.r": {
                "resource_type": "seed",
                "config": {"materialized": "seed"},
                "schema": "staging",
                "name": "r",
                "alias": "r",
            },
            "test.s.x": {"resource_type": "test", "config": {}, "schema": "x", "name": "x"},
        }
    }
    step = spark_engine.DbtStep(
        ["build"],
        True,
        1.0,
        [
            {"unique_id": u, "status": "success", "message": None, "failures": None}
            for u in ("model.s.v", "model.s.t", "seed.s.r")
        ]
        + [{"unique_id": "test.s.x", "status": "pass", "message": None, "failures": 0}],
    )
    assert spark_engine.built_tables([step], manifest) == ["marts.t", "staging.r"]


def test_profile_and_vars(tmp_path):
    path = spark_engine.write_spark_profile(tmp_path)
    text = path.read_text()
    assert "method: session" in text and "type: spark" in text
    assert spark_engine.project_vars()["indicator_max_gap_bars"] == 0
    assert spark_engine.project_vars({"indicator_max_gap_bars": 2})["indicator_max_gap_bars"] == 2


def test_unavailable_without_java(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert "java" in (spark_engine.spark_unavailable_reason() or "")
    with pytest.raises(spark_engine.SparkUnavailableError, match="java"):
        spark_engine.spark_session(tmp_path / "spark")
    assert spark_engine.spark_unavailable_reason("sc://spark-connect:15002") is None


def test_engine_settings(tmp_path):
    s = Settings(home=tmp_path)
    assert (s.engine, s.spark_master, s.spark_shuffle_partitions) == ("duckdb", "local[2]", 4)
    assert s.spark_dir == tmp_path / "spark"
    assert (
        Settings.from_env({"SENTINANCE_HOME": str(tmp_path), "SENTINANCE_ENGINE": "Spark"}).engine
        == "spark"
    )
    with pytest.raises(
        SettingsError, match="SENTINANCE_ENGINE='flink' is not one of duckdb, spark"
    ):
        Settings.from_env({"SENTINANCE_ENGINE": "flink"})
    with pytest.raises(SettingsError, match="SENTINANCE_SPARK_MASTER"):
        Settings.from_env({"SENTINANCE_SPARK_MASTER": "local[two]"})
    # a Spark Connect server: a URL of its scheme, and no Java needed on this side
    assert s.spark_remote is None
    remote = Settings.from_env({"SENTINANCE_SPARK_REMOTE": "sc://spark-connect:15002"})
    assert remote.spark_remote == "sc://spark-connect:15002"
    with pytest.raises(SettingsError, match="SENTINANCE_SPARK_REMOTE.*not a Spark Connect URL"):
        Settings.from_env({"SENTINANCE_SPARK_REMOTE": "spark://master:7077"})


def test_spark_results_become_dagster_events():
    from sentinance_assets.defs.transform.assets import sentinance_dbt, spark_build_events

    results = [
        {"unique_id": "model.sentinance.candles", "status": "success", "failures": None},
        {"unique_id": "model.sentinance.spreads", "status": "error", "failures": None},
        {"unique_id": "seed.sentinance.quote_usd_rates", "status": "success", "failures": None},
        {
            "unique_id": "test.sentinance.trade_quotes_have_usd_rate",
            "status": "warn",
            "failures": 1,
        },
    ]
    # the staging view is reported twice (built on Spark, then created in DuckDB): one event
    view = {"unique_id": "model.sentinance.stg_candles", "status": "success", "failures": None}
    results += [view, dict(view)]
    events = list(spark_build_events(results, sentinance_dbt.keys, sentinance_dbt.check_keys))
    keys = [e.asset_key for e in events if isinstance(e, dg.MaterializeResult)]
    assert len(keys) == len(set(keys))
    materialized = set(keys) - {dg.AssetKey(["staging", "stg_candles"])}
    assert materialized == {
        dg.AssetKey(["marts", "candles"]),
        dg.AssetKey(["staging", "quote_usd_rates"]),
    }
    [check] = [e for e in events if isinstance(e, dg.AssetCheckResult)]
    assert check.asset_key == dg.AssetKey(["staging", "quote_usd_rates"])
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_a_subset_is_split_around_the_indicators():
    whole = spark_engine.spark_steps()
    assert (whole.before, whole.after, whole.indicators) == (
        ("--exclude", "indicators+"),
        ("--select", "indicators+"),
        True,
    )
    some = spark_engine.spark_steps(["news_sentiment_daily", "candles", "candles"])
    assert some.before == (
        "--select",
        "candles",
        "news_sentiment_daily",
        "--exclude",
        "indicators+",
    )
    assert some.after == ("--select", "indicators+,candles", "indicators+,news_sentiment_daily")
    assert not some.indicators  # the grouped map runs only for marts.indicators itself
    assert spark_engine.spark_steps(["indicators"]).indicators
    with pytest.raises(ValueError, match="empty"):
        spark_engine.spark_steps([])


def test_selected_dbt_models_from_asset_keys():
    import dagster as dg

    from sentinance_assets.defs.transform.assets import selected_models

    keys = {dg.AssetKey(["marts", "candles"]), dg.AssetKey(["raw", "trades"])}
    assert selected_models(keys) == ["candles"]  # raw/trades is a Python asset, not dbt's
