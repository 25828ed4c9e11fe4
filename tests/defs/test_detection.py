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
