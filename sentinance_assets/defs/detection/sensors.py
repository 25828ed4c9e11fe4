"""Surface the watch loop's alerts in the Dagster UI.

The watch loop (``sentinance watch``) is its own process and publishes one Parquet file per
batch under ``lake/alerts/alerts/watch-<stream>/``. This sensor polls those folders (sensors
tick every ~30 s: it audits and surfaces, it is not the sub-second path) and records each new
group of files as a materialization of the ``alerts/watch`` asset, with counts by type and the
newest alerts as metadata. Its cursor is the last file name seen per stream (file names sort by
stream position).

Once recorded, the files of committed batches (up to the stream's checkpoint) are compacted
into one per stream (``compact_alert_files``: atomic, idempotent, alerts stay readable
throughout), so a long-running loop does not leave thousands of small files behind.
"""

import json

import dagster as dg
import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.engine import alert_summary
from sentinance_assets.lib.detection.sinks import batch_span, compact_alert_files
from sentinance_assets.lib.detection.watch import checkpoint_cursor_ms
from sentinance_assets.lib.schemas import ALERTS
from sentinance_assets.settings import Settings

WATCH_ALERTS_KEY = dg.AssetKey(["alerts", "watch"])
MAX_FILES_PER_TICK = 500

watch_alerts = dg.AssetSpec(
    WATCH_ALERTS_KEY,
    group_name="detection",
    kinds={"parquet"},
    description="Alerts published by the `sentinance watch` loop (one file per batch under "
    "lake/alerts/alerts/watch-<stream>/); recorded here by the watch_alerts_sensor.",
)


def _table(df: pl.DataFrame) -> str:
    lines = ["| event time | type | market | severity | message |", "|---|---|---|---|---|"]
    for r in df.iter_rows(named=True):
        lines.append(
            f"| {r['event_time']:%Y-%m-%d %H:%M:%S} | {r['type']} | {r['exchange']} "
            f"{r['symbol']} | {r['severity']} | {r['message']} |"
        )
    return "\n".join(lines)


def scan_new_alert_files(lake_dir, cursor: dict[str, str]) -> tuple[list, dict[str, str]]:
    """(materializations, new cursor) for the watch files not seen yet."""
    root = lake.dataset_dir(lake_dir, ALERTS)
    events: list[dg.AssetMaterialization] = []
    new_cursor = dict(cursor)
    if not root.exists():
        return events, new_cursor
    for folder in sorted(p for p in root.glob("watch-*") if p.is_dir()):
        seen = cursor.get(folder.name, "")
        files = sorted(f for f in folder.glob("*.parquet") if f.name > seen)[:MAX_FILES_PER_TICK]
        if not files:
            continue
        frames = []
        for f in files:
            try:
                frames.append(ALERTS.conform(pl.read_parquet(f)))
            except (OSError, pl.exceptions.PolarsError):
                continue  # removed by a restarting watch loop between listing and reading
        new_cursor[folder.name] = files[-1].name
        if not frames:
            continue
        df = pl.concat(frames).unique("alert_id", keep="first").sort("event_time")
        events.append(
            dg.AssetMaterialization(
                asset_key=WATCH_ALERTS_KEY,
                description=f"{df.height} new alerts from {folder.name}",
                metadata={
                    "stream": folder.name,
                    "files": len(files),
                    "alerts": df.height,
                    "critical": df.filter(pl.col("severity") == "critical").height,
                    "by_type": alert_summary(df),
                    "first_event_time": str(df["event_time"].min()),
                    "last_event_time": str(df["event_time"].max()),
                    "latest": dg.MetadataValue.md(_table(df.tail(10))),
                },
            )
        )
    return events, new_cursor


def compact_recorded(lake_dir, checkpoints_dir, cursor: dict[str, str]) -> dict[str, int]:
    """Compact, per stream, the files the sensor has recorded that are also committed by the
    watch loop's checkpoint (``<checkpoints>/<stream>.ckpt``); {stream: files merged away}."""
    root = lake.dataset_dir(lake_dir, ALERTS)
    done: dict[str, int] = {}
    for stream, seen in cursor.items():
        span = batch_span(root / stream / seen)
        committed = checkpoint_cursor_ms(checkpoints_dir / f"{stream}.ckpt")
        if span is None or committed is None:
            continue
        merged = compact_alert_files(root / stream, min(span[1], committed))
        if merged:
            done[stream] = merged
    return done


@dg.sensor(
    name="watch_alerts_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records new alert files from `sentinance watch` as materializations of "
    "alerts/watch.",
)
def watch_alerts_sensor(context: dg.SensorEvaluationContext, settings: dg.ResourceParam[Settings]):
    cursor = json.loads(context.cursor) if context.cursor else {}
    events, new_cursor = scan_new_alert_files(settings.lake_dir, cursor)
    compacted = compact_recorded(settings.lake_dir, settings.checkpoints_dir, new_cursor)
    if compacted:
        context.log.info(f"compacted watch alert files: {compacted}")
    if not events and new_cursor == cursor:
        return dg.SkipReason("no new alert files from the watch loop")
    return dg.SensorResult(asset_events=events, cursor=json.dumps(new_cursor, sort_keys=True))
