"""Batch detection over every stored trade: the same detectors the watch loop runs."""

import dagster as dg

from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.engine import alert_summary, detect_all
from sentinance_assets.lib.detection.rules import DetectorConfig
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES
from sentinance_assets.settings import Settings


@dg.asset(
    key=["alerts", "alerts"],
    group_name="detection",
    deps=[dg.AssetKey(["raw", "trades"])],
    kinds={"polars", "parquet"},
    description="Whale trades, volume spikes, cross-exchange divergences, pump-and-dumps and "
    "wash-trading runs found in the stored trades (lib/detectors.py, the same engine as "
    "`sentinance watch`); one row per event with a deterministic alert_id. The watch loop "
    "writes the same ids to lake/alerts/alerts/watch-*/: readers deduplicate on alert_id.",
)
def alerts(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    trades = lake.read_dataset(settings.lake_dir, RAW_TRADES)
    found = detect_all(trades, DetectorConfig())  # one push + flush of the streaming engine
    lake.write_partition(settings.lake_dir, ALERTS, found, part="batch")
    summary = alert_summary(found)
    context.log.info(f"{found.height} alerts over {trades.height} trades: {summary}")
    return dg.MaterializeResult(
        metadata={"alerts": found.height, "trades_scanned": trades.height, "by_type": summary}
    )
