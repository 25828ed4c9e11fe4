"""Batch detection re-reads only the days whose trades changed, and finds what one pass over the
whole history finds."""

from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from sentinance_assets.defs.detection.assets import alerts as alerts_asset
from sentinance_assets.defs.detection.batch import (
    INPUT_RECORD,
    LEGACY_FILE,
    WARM_UP,
    day_dir,
    detect_stale_days,
    stale_days,
)
from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.engine import detect_all
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES
from sentinance_assets.lib.simulator import MarketSimulator

DAYS = [date(2026, 11, 10) + timedelta(days=i) for i in range(3)]


def _land(settings) -> dict[str, pl.DataFrame]:
    sim = MarketSimulator(
        markets_for(settings.exchanges, settings.symbols), seed=settings.seed, trade_rate=6.0
    )
    trades = {d.isoformat(): sim.day(d).trades for d in DAYS}
    for day, frame in trades.items():
        lake.write_partition(settings.lake_dir, RAW_TRADES, frame, partition=day)
    return trades


def _stored(settings) -> pl.DataFrame:
    return lake.read_dataset(settings.lake_dir, ALERTS)


def test_day_by_day_equals_one_pass_over_history(tiny_settings):
    trades = _land(tiny_settings)
    whole = detect_all(pl.concat(list(trades.values())))
    run = detect_stale_days(tiny_settings.lake_dir, detect_all)
    assert run.days == [d.isoformat() for d in DAYS]
    stored = _stored(tiny_settings)
    assert whole.height > 0
    assert sorted(stored["alert_id"]) == sorted(whole["alert_id"])
    cols = [c for c in ALERTS.columns if c != "detected_at"]
    assert stored.select(cols).sort("alert_id").equals(whole.select(cols).sort("alert_id"))


def test_only_changed_days_are_read_again(tiny_settings):
    trades = _land(tiny_settings)
    first = detect_stale_days(tiny_settings.lake_dir, detect_all)
    assert len(first.days) == 3 and stale_days(tiny_settings.lake_dir) == []
    again = detect_stale_days(tiny_settings.lake_dir, detect_all)
    assert again.days == [] and again.trades_scanned == 0
    # new trades land on the last day (a live refresh): only that day is read, with warm-up
    last = DAYS[-1].isoformat()
    lake.write_partition(tiny_settings.lake_dir, RAW_TRADES, trades[last], partition=last)
    refresh = detect_stale_days(tiny_settings.lake_dir, detect_all)
    assert refresh.days == [last]
    day_before = trades[DAYS[-2].isoformat()]
    warm = day_before.filter(pl.col("ts") >= day_before["ts"].max() - WARM_UP).height
    assert refresh.trades_scanned <= trades[last].height + warm
    # a changed middle day also re-detects the next one (its warm-up changed)
    middle = DAYS[1].isoformat()
    lake.write_partition(tiny_settings.lake_dir, RAW_TRADES, trades[middle], partition=middle)
    assert detect_stale_days(tiny_settings.lake_dir, detect_all).days == [middle, last]


def test_a_removed_previous_day_changes_nothing(tiny_settings):
    _land(tiny_settings)
    detect_stale_days(tiny_settings.lake_dir, detect_all)
    first = DAYS[0].isoformat()
    old = lake.dataset_dir(tiny_settings.lake_dir, RAW_TRADES) / f"date={first}"
    for f in old.iterdir():
        f.unlink()
    old.rmdir()  # what the retention cleanup does
    assert stale_days(tiny_settings.lake_dir) == []


def test_the_former_single_file_is_replaced_by_day_files(tiny_settings):
    _land(tiny_settings)
    legacy = lake.dataset_dir(tiny_settings.lake_dir, ALERTS) / LEGACY_FILE
    legacy.parent.mkdir(parents=True, exist_ok=True)
    lake.atomic_write_parquet(ALERTS.empty(), legacy)
    detect_stale_days(tiny_settings.lake_dir, detect_all)
    assert not legacy.exists()
    assert (day_dir(tiny_settings.lake_dir, DAYS[0].isoformat()) / INPUT_RECORD).exists()


def test_the_asset_reports_what_it_read(tiny_settings):
    _land(tiny_settings)
    result = dg.materialize([alerts_asset], resources={"settings": tiny_settings})
    mat = _materialization(result)
    assert mat.metadata["days_detected"].value == [d.isoformat() for d in DAYS]
    assert mat.metadata["days_stored"].value == 3
    again = dg.materialize([alerts_asset], resources={"settings": tiny_settings})
    mat = _materialization(again)
    assert mat.metadata["days_detected"].value == []
    assert mat.metadata["trades_scanned"].value == 0
    leftovers = [p for p in lake.dataset_dir(tiny_settings.lake_dir, ALERTS).rglob("*.tmp")]
    assert leftovers == []


def _materialization(result: dg.ExecuteInProcessResult) -> dg.AssetMaterialization:
    (event,) = result.get_asset_materialization_events()
    return event.step_materialization_data.materialization


@pytest.mark.spark
def test_on_the_spark_engine_a_backfill_runs_on_spark_and_a_refresh_in_process(
    tiny_settings, spark_dir, spark
):
    """SENTINANCE_ENGINE=spark: the asset detects several stale days on Spark (the same
    alerts as in process, tests/lib/test_spark_detection.py), and one stale day in process."""
    trades = _land(tiny_settings)
    on_spark = tiny_settings.replace(engine="spark", spark_dir=spark_dir)
    mat = _materialization(dg.materialize([alerts_asset], resources={"settings": on_spark}))
    assert mat.metadata["engine"].value == "spark"
    assert mat.metadata["days_detected"].value == [d.isoformat() for d in DAYS]
    ids = sorted(_stored(tiny_settings)["alert_id"])
    whole = detect_all(pl.concat(list(trades.values())))
    assert ids == sorted(whole["alert_id"]) and ids
    last = DAYS[-1].isoformat()
    lake.write_partition(tiny_settings.lake_dir, RAW_TRADES, trades[last], partition=last)
    mat = _materialization(dg.materialize([alerts_asset], resources={"settings": on_spark}))
    assert mat.metadata["engine"].value == "polars"
    assert mat.metadata["days_detected"].value == [last]
    assert sorted(_stored(tiny_settings)["alert_id"]) == ids
