"""Raw market data: trades, 1-minute candles and (simulated) ground-truth events, per UTC day."""

from datetime import UTC, date, datetime

import dagster as dg

from sentinance_assets.defs.ingest_wiring import ingest_check_specs, ingest_result
from sentinance_assets.defs.partitions import daily
from sentinance_assets.lib import contracts, lake
from sentinance_assets.lib.ingest import land_day
from sentinance_assets.lib.schemas import (
    QUARANTINE_CANDLES,
    QUARANTINE_TRADES,
    RAW_CANDLES,
    RAW_MARKET_EVENTS,
    RAW_TRADES,
)
from sentinance_assets.lib.sources import build_source
from sentinance_assets.settings import Settings

TRADES = dg.AssetKey(["raw", "trades"])
CANDLES = dg.AssetKey(["raw", "candles"])


@dg.asset(
    key=TRADES,
    group_name="market",
    partitions_def=daily,
    check_specs=ingest_check_specs(TRADES),
    kinds={"polars", "parquet"},
    description="Every trade on the configured venues and markets for one UTC day.",
)
def raw_trades(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    day = context.partition_key
    source = build_source(settings)
    checked = land_day(
        source.trades(date.fromisoformat(day)),
        dataset=RAW_TRADES,
        quarantine=QUARANTINE_TRADES,
        rules=contracts.trade_rules(settings.exchanges, settings.symbols, datetime.now(UTC)),
        key=["exchange", "symbol", "trade_id"],
        lake_dir=settings.lake_dir,
        day=day,
        source=source.name,
        run_id=context.run_id,
    )
    context.log.info(f"{day}: {checked.metadata()}")
    return ingest_result(TRADES, checked, source=source.name)


@dg.asset(
    key=CANDLES,
    group_name="market",
    partitions_def=daily,
    check_specs=ingest_check_specs(CANDLES),
    kinds={"polars", "parquet"},
    description="Exchange-reported 1-minute candles for one UTC day (fallback where trades "
    "are unavailable, and a cross-check on trade-built candles).",
)
def raw_candles(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    day = context.partition_key
    source = build_source(settings)
    checked = land_day(
        source.candles(date.fromisoformat(day)),
        dataset=RAW_CANDLES,
        quarantine=QUARANTINE_CANDLES,
        rules=contracts.candle_rules(settings.exchanges, settings.symbols, datetime.now(UTC)),
        key=["exchange", "symbol", "timeframe", "ts"],
        lake_dir=settings.lake_dir,
        day=day,
        source=source.name,
        run_id=context.run_id,
    )
    return ingest_result(CANDLES, checked, source=source.name)


@dg.asset(
    key=["raw", "market_events"],
    group_name="market",
    partitions_def=daily,
    kinds={"polars", "parquet"},
    description="Ground truth of the simulated market: the events it injected (volume spikes, "
    "whales, divergences, pump-and-dumps), so detection quality can be measured. Empty for "
    "replay and live sources.",
)
def market_events(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    day = context.partition_key
    events = build_source(settings).events(date.fromisoformat(day))
    lake.write_partition(settings.lake_dir, RAW_MARKET_EVENTS, events, partition=day)
    by_type = {t: int(n) for t, n in events.group_by("type").len().iter_rows()}
    return dg.MaterializeResult(metadata={"rows": events.height, "by_type": by_type})
