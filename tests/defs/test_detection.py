"""The detection domain in Dagster: the batch asset's wiring and the watch-alerts sensor."""

import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl
from dagster.components.core.load_defs import load_defs

from sentinance_assets.defs import detection
from sentinance_assets.defs.detection.sensors import WATCH_ALERTS_KEY, watch_alerts_sensor
from sentinance_assets.lib.detection.sinks import LakeSink
from sentinance_assets.lib.schemas import ALERTS

T = datetime(2026, 11, 10, 12, tzinfo=UTC)


def _alerts(ids: list[str], kind: str = "whale") -> pl.DataFrame:
    n = len(ids)
    return ALERTS.conform(
        pl.DataFrame(
            {
                "alert_id": ids,
                "type": [kind] * n,
                "exchange": ["binance"] * n,
                "symbol": ["BTC/USDT"] * n,
                "severity": ["critical"] * n,
                "event_time": [T] * n,
                "detected_at": [T] * n,
                "value": [1.0] * n,
                "threshold": [1.0] * n,
                "message": ["m"] * n,
                "details": ["{}"] * n,
            }
        )
    )


def test_sensor_and_watch_asset_are_discovered_in_the_detection_folder(tiny_settings):
    # The defs-folder loader of the code location, on the detection domain with the shared
    # settings resource (fast); that the whole code location loads with every domain,
    # alerts/alerts included, is tests/defs/test_definitions.py's job.
    d = dg.Definitions.merge(
        load_defs(defs_root=detection), dg.Definitions(resources={"settings": tiny_settings})
    )
    assert d.resolve_sensor_def("watch_alerts_sensor") is not None
    keys = {k.to_user_string() for k in d.resolve_all_asset_keys()}
    assert {"alerts/alerts", "alerts/watch"} <= keys
    assert d.resolve_job_def("__ASSET_JOB") is not None  # resources satisfied, graph valid


def test_sensor_records_new_alert_files_once(tiny_settings):
    sink = LakeSink(tiny_settings.lake_dir, folder="watch-simulated")
    ctx = dg.build_sensor_context(resources={"settings": tiny_settings})
    assert isinstance(watch_alerts_sensor(ctx), dg.SkipReason)

    sink.send(_alerts(["a", "b"]), "000000000000001-000000000000002")
    sink.send(_alerts(["c"], "volume_spike"), "000000000000002-000000000000003")
    result = watch_alerts_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    (event,) = result.asset_events
    assert event.asset_key == WATCH_ALERTS_KEY
    assert event.metadata["alerts"].value == 3
    assert event.metadata["by_type"].value == {"volume_spike": 1, "whale": 2}

    ctx2 = dg.build_sensor_context(resources={"settings": tiny_settings}, cursor=result.cursor)
    assert isinstance(watch_alerts_sensor(ctx2), dg.SkipReason)
    sink.send(_alerts(["d"]), "000000000000003-000000000000004")
    again = watch_alerts_sensor(ctx2)
    assert again.asset_events[0].metadata["alerts"].value == 1
    assert json.loads(again.cursor) == {
        "watch-simulated": "000000000000003-000000000000004.parquet"
    }
    # compaction: recorded files up to the watch loop's checkpoint are merged into one, named
    # like the newest of them, so the next tick neither re-reports nor misses anything
    folder = sink.root
    assert len(sink.files()) == 3  # no checkpoint yet: nothing is known to be committed
    ckpt = tiny_settings.checkpoints_dir / "watch-simulated.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(json.dumps({"cursor_ms": 3}).encode() + b"\n")
    ctx3 = dg.build_sensor_context(resources={"settings": tiny_settings}, cursor=again.cursor)
    assert isinstance(watch_alerts_sensor(ctx3), dg.SkipReason)
    assert [f.name for f in sink.files()] == [
        "000000000000002-000000000000003.parquet",
        "000000000000003-000000000000004.parquet",
    ]
    merged = pl.read_parquet(folder / "000000000000002-000000000000003.parquet")
    assert sorted(merged["alert_id"]) == ["a", "b", "c"]
    sink.send(_alerts(["e"]), "000000000000004-000000000000005")
    last = watch_alerts_sensor(ctx3)
    assert last.asset_events[0].metadata["alerts"].value == 1  # only the new one


# ------------------------------------------------------------------ rules versions in the asset
def _land_days(settings, days):
    from sentinance_assets.lib import lake
    from sentinance_assets.lib.markets import markets_for
    from sentinance_assets.lib.schemas import RAW_TRADES
    from sentinance_assets.lib.simulator import MarketSimulator

    sim = MarketSimulator(
        markets_for(settings.exchanges, settings.symbols), seed=settings.seed, trade_rate=6.0
    )
    for d in days:
        lake.write_partition(settings.lake_dir, RAW_TRADES, sim.day(d).trades, partition=str(d))


def _run(settings, rules_toml=None):
    from sentinance_assets.defs.detection.assets import alerts as alerts_asset

    config = {"rules_toml": rules_toml} if rules_toml else {}
    result = dg.materialize(
        [alerts_asset],
        resources={"settings": settings},
        run_config={"ops": {"alerts__alerts": {"config": config}}},
        raise_on_error=False,
    )
    return result


def test_a_rules_change_redetects_beside_the_old_set_with_a_comparison(tiny_settings):
    from datetime import date

    from sentinance_assets.lib import lake
    from sentinance_assets.lib.detection.rules import DetectorConfig
    from sentinance_assets.lib.detection.rules_file import load_rules
    from sentinance_assets.lib.detection.versions import comparisons, rule_sets_dir

    days = [date(2026, 11, 10), date(2026, 11, 11)]
    _land_days(tiny_settings, days)
    first = _run(tiny_settings)
    assert first.success
    mat = first.get_asset_materialization_events()[0].step_materialization_data.materialization
    assert mat.metadata["rules_version"].value == DetectorConfig().version
    before = lake.read_dataset(tiny_settings.lake_dir, ALERTS)
    assert set(before["rules_version"]) == {DetectorConfig().version}
    assert (
        _run(tiny_settings)
        .get_asset_materialization_events()[0]
        .step_materialization_data.materialization.metadata["days_detected"]
        .value
        == []
    )  # noqa: E501

    stricter = "[whale]\nusd = 400_000\n"
    new_version = load_rules(text=stricter).version
    second = _run(tiny_settings, stricter)
    assert second.success
    mat = second.get_asset_materialization_events()[0].step_materialization_data.materialization
    assert mat.metadata["days_detected"].value == [str(d) for d in days]  # re-detected
    (summary,) = mat.metadata["rules_comparisons"].value
    old_whales = before.filter(pl.col("type") == "whale")
    assert summary["old_version"] == DetectorConfig().version
    assert summary["new_version"] == new_version
    after = lake.read_dataset(tiny_settings.lake_dir, ALERTS)
    assert set(after["rules_version"]) == {new_version}  # the feed holds one version
    removed = old_whales.height - after.filter(pl.col("type") == "whale").height
    assert removed > 0 and summary["removed"] == removed and summary["added"] == 0
    # both sets stay, per day, beside the feed; the comparison is listed for the app
    for d in days:
        kept = sorted(p.stem for p in rule_sets_dir(tiny_settings.lake_dir, f"date={d}").iterdir())
        assert kept == sorted([DetectorConfig().version, new_version])
    (listed,) = comparisons(tiny_settings.lake_dir)
    assert listed["removed"] == removed and set(listed["by_day"]) == {str(d) for d in days}

    bad = _run(tiny_settings, "[volume_spike]\nz = 0\n")
    assert not bad.success
    failure = bad.get_step_failure_events()[0].step_failure_data.error
    assert "<run config>:2: volume_spike.z = 0" in str(failure.message) + str(failure.cause)
