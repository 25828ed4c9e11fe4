"""End to end: the whole graph materializes on tiny simulated data, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SENTINANCE = str(Path(sys.executable).parent / "sentinance")
COUNTED = (
    "raw.trades",
    "raw.news",
    "marts.candles",
    "marts.indicators",
    "marts.spreads",
    "ml.news_sentiment",
    "ml.forecasts",
    "alerts.alerts",
)


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [SENTINANCE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def counts(env: dict[str, str]) -> dict[str, int]:
    sql = " union all ".join(f"select '{t}' as t, count(*) as n from {t}" for t in COUNTED)
    out = run(["query", sql, "--json"], env).stdout
    return {row["t"]: row["n"] for row in json.loads(out)}


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> dict[str, str]:
    from tests.conftest import TINY_ENV

    env = {**TINY_ENV, "SENTINANCE_HOME": str(tmp_path_factory.mktemp("demo") / "home")}
    proc = run(["demo"], env)
    assert "rows per table" in proc.stdout
    env["_first_stdout"] = proc.stdout
    return env


def test_query_before_any_run_says_how_to_fill_the_warehouse(tmp_path):
    proc = run(["query", "select 1"], {"SENTINANCE_HOME": str(tmp_path)}, check=False)
    assert proc.returncode == 2
    assert "sentinance demo" in proc.stderr


def test_invalid_setting_fails_at_start_naming_the_variable(tmp_path):
    proc = run(
        ["query", "select 1"],
        {"SENTINANCE_HOME": str(tmp_path), "SENTINANCE_SOURCE": "nope"},
        check=False,
    )
    assert proc.returncode == 2
    assert "SENTINANCE_SOURCE" in proc.stderr


def test_demo_fills_every_layer(demo_home):
    n = counts(demo_home)
    for table, rows in n.items():
        assert rows > 0, table
    out = demo_home["_first_stdout"]
    assert "alerts by type" in out and "whale" in out
    # three days: the 1h horizon is evaluated, and its hold-out winner serves both targets
    served = out.split("forecasts served", 1)[1]
    assert "log_return   1h" in served and "realized_vol 1h" in served


def test_marts_contract_columns(demo_home):
    cols = run(["query", "select * from marts.candles limit 1", "--json"], demo_home).stdout
    row = json.loads(cols)[0]
    assert list(row)[:12] == [
        "exchange",
        "symbol",
        "timeframe",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "quote_volume",
        "vwap",
        "trade_count",
    ]
    tfs = run(["query", "select distinct timeframe from marts.candles order by 1"], demo_home)
    assert {"1m", "1h", "1d"} <= set(tfs.stdout.split()[1:])


def test_query_is_read_only_and_csv_by_default(demo_home):
    proc = run(["query", "create table marts.x as select 1"], demo_home, check=False)
    assert proc.returncode == 2 and "read-only" in proc.stderr.lower()
    csv = run(
        ["query", "select exchange, count(*) n from raw.trades group by 1 order by 1"], demo_home
    ).stdout.splitlines()
    assert csv[0] == "exchange,n" and csv[1].startswith("binance,")


def test_second_run_is_idempotent(demo_home):
    before = counts(demo_home)
    run(["demo"], demo_home)
    assert counts(demo_home) == before


def test_demo_records_dbt_tests_as_checks_on_the_assets_they_test(demo_home):
    """dbt's tests on the raw source run in the analytics job and land as checks on raw/trades
    (the ingest asset), the seed-rate test on its seed: none is dropped as unselected."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(Path(demo_home["SENTINANCE_HOME"]) / "dagster"))
    for asset, check in [
        ("raw/trades", "source_not_null_raw_trades_price"),
        ("raw/trades", "source_accepted_values_raw_trades_side__buy__sell"),
        ("raw/trades", "bucket_start_default_matches_dispatched"),
        ("staging/quote_usd_rates", "trade_quotes_have_usd_rate"),
        (
            "staging/stg_trades",
            "unique_combination_of_columns_stg_trades_" + "exchange__symbol__trade_id",
        ),
    ]:
        key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), check)
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        assert history, f"no execution of {asset}:{check}"
        assert history[0].status.value == "SUCCEEDED", (asset, check, history[0].status)


def test_demo_full_refresh_is_valid_config_of_the_analytics_job():
    """`sentinance demo --full-refresh` hands the dbt step full_refresh: true (which becomes
    `dbt build --full-refresh`: tests/defs/test_transform.py); the config must fit the job."""
    import dagster as dg

    from sentinance_assets.cli import analytics_run_config
    from sentinance_assets.definitions import defs

    job = defs().resolve_job_def("analytics_job")
    config = analytics_run_config(full_refresh=True)
    assert config["ops"]["sentinance_dbt"]["config"] == {"full_refresh": True}
    assert dg.validate_run_config(job, config)["ops"]["sentinance_dbt"]["config"]["full_refresh"]
    assert "ops" not in analytics_run_config()


# ---- thin history: a one- or two-day window skips what it cannot do, and says why ----------

SKIPS_HEADER = "skipped (input too thin; the rest of the graph ran)"
THIN_ML = {
    "ml/forecaster": "too little history: the forecaster needs 3 days of hourly history per "
    "symbol, has {days} ({bars} usable hourly bars)",
    "ml/forecasts": "no trained forecaster yet (ml/forecaster skipped: ",
    "ml/forecast_drift": "no trained forecaster yet (ml/forecaster skipped: ",
    "ml/sentiment_drift": "the reference sample has ",
}


@pytest.fixture(scope="module", params=[1, 2], ids=["1-day", "2-day"])
def short_demo(request, tmp_path_factory) -> tuple[int, dict[str, str], str]:
    """`sentinance demo` on a one- or two-day simulated window (the README's "Going live"
    recipe starts two days ago): two demo runs in all."""
    from datetime import date, timedelta

    from tests.conftest import TINY_ENV

    days = request.param
    env = {
        **TINY_ENV,
        "SENTINANCE_START": "2026-11-10",
        "SENTINANCE_END": (date(2026, 11, 10) + timedelta(days=days)).isoformat(),
        "SENTINANCE_HOME": str(tmp_path_factory.mktemp(f"demo{days}") / "home"),
    }
    proc = run(["demo"], env, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return days, env, proc.stdout


def test_short_window_demo_exits_0_and_lists_the_ml_skips(short_demo) -> None:
    days, _, out = short_demo
    assert SKIPS_HEADER in out
    listed: dict[str, str] = {}
    for line in out.split(SKIPS_HEADER, 1)[1].splitlines()[1:]:
        if not line.startswith("  "):
            break
        asset, reason = line.split(maxsplit=1)
        listed[asset] = reason
    for asset, start in THIN_ML.items():
        assert listed[asset].startswith(start.format(days=days, bars=24 * days)), (asset, listed)


def test_short_window_skips_are_failed_warn_checks(short_demo) -> None:
    import dagster as dg

    days, env, _ = short_demo
    instance = dg.DagsterInstance.from_config(str(Path(env["SENTINANCE_HOME"]) / "dagster"))
    for asset, check in [
        ("ml/forecaster", "enough_input"),
        ("ml/forecasts", "enough_input"),
        ("ml/forecast_drift", "enough_input"),
        ("ml/forecast_drift", "input_drift_below_limit"),
        ("ml/forecast_drift", "residual_drift_below_limit"),
        ("ml/sentiment_drift", "enough_input"),
        ("ml/sentiment_drift", "sentiment_drift_below_limit"),
    ]:
        key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), check)
        (record,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        evaluation = record.event.dagster_event.event_specific_data
        assert not evaluation.passed, (asset, check)
        assert evaluation.severity == dg.AssetCheckSeverity.WARN, (asset, check)
        assert evaluation.metadata["skipped"].value, (asset, check)
    needs = instance.get_latest_materialization_event(dg.AssetKey(["ml", "forecaster"]))
    metadata = needs.asset_materialization.metadata
    assert (metadata["needs"].value, metadata["has"].value) == (
        "3 days of hourly history",
        str(days),
    )
