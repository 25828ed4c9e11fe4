"""Raw market data: trades, 1-minute candles and (simulated) ground-truth events, per UTC day.

How a day lands (replaced, or merged into) is :func:`~.landing.land`'s; this module says what
an incremental source is asked for: trades after the last stored one per market, and the
candle minutes still missing (the tail and any holes).
"""

from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from sentinance_assets.defs.ingest.landing import MAX_DAYS_PER_RUN, Fetched, Target, ingest_asset
from sentinance_assets.defs.partitions import daily
from sentinance_assets.lib import contracts, lake
from sentinance_assets.lib.schemas import (
    QUARANTINE_CANDLES,
    QUARANTINE_TRADES,
    RAW_CANDLES,
    RAW_MARKET_EVENTS,
    RAW_TRADES,
)
from sentinance_assets.lib.sources import build_source
from sentinance_assets.lib.sources.base import Source
from sentinance_assets.lib.sources.incremental import candle_windows, gap_report, resume_points
from sentinance_assets.settings import Settings

TRADES = Target(
    asset=dg.AssetKey(["raw", "trades"]),
    kind="trades",
    dataset=RAW_TRADES,
    quarantine=QUARANTINE_TRADES,
    key=("exchange", "symbol", "trade_id"),
    contract=lambda s, now: contracts.trade_rules(s.exchanges, s.symbols, now),
)
CANDLES = Target(
    asset=dg.AssetKey(["raw", "candles"]),
    kind="candles",
    dataset=RAW_CANDLES,
    quarantine=QUARANTINE_CANDLES,
    key=("exchange", "symbol", "timeframe", "ts"),
    contract=lambda s, now: contracts.candle_rules(s.exchanges, s.symbols, now),
)


def new_trades(source: Source, day: date, stored: pl.DataFrame) -> Fetched:
    """Per market, the trades from the last stored one on (ids dedupe the overlap)."""
    since = resume_points(stored)
    return Fetched(source.trades(day, since=since), lambda _: {"resumed_markets": len(since)})


def missing_candles(source: Source, day: date, stored: pl.DataFrame) -> Fetched:
    """The candle minutes the stored day lacks; those still missing after are the gaps."""
    window = source.day_window(day)
    plan = candle_windows(stored, *window) if window else {}

    def gaps(now_stored: pl.DataFrame) -> dict[str, object]:
        missing = gap_report(now_stored, *window) if window else {}
        return {
            "gap_windows_requested": sum(len(w) for w in plan.values()),
            "gap_minutes": sum(missing.values()),
            "gaps": dg.MetadataValue.json(missing),
        }

    return Fetched(source.candles(day, windows=plan), gaps)


raw_trades = ingest_asset(
    TRADES,
    new_trades,
    group="market",
    description="Every trade on the configured venues and markets for one UTC day.",
)
raw_candles = ingest_asset(
    CANDLES,
    missing_candles,
    group="market",
    description="Exchange-reported 1-minute candles for one UTC day (fallback where trades "
    "are unavailable, and a cross-check on trade-built candles). Live: missing minutes are "
    "found and re-fetched on every run; those still missing are reported as gaps.",
)


@dg.asset(
    key=["raw", "market_events"],
    group_name="market",
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN),
    kinds={"polars", "parquet"},
    description="Ground truth of the simulated market: the events it injected (volume spikes, "
    "whales, divergences, pump-and-dumps), so detection quality can be measured. Empty for "
    "replay and live sources.",
)
def market_events(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    source = build_source(settings)
    rows, by_type = 0, Counter[str]()
    for day in context.partition_keys:
        events = source.events(date.fromisoformat(day))
        lake.write_partition(settings.lake_dir, RAW_MARKET_EVENTS, events, partition=day)
        rows += events.height
        by_type.update({t: int(n) for t, n in events.group_by("type").len().iter_rows()})
    return dg.MaterializeResult(metadata={"rows": rows, "by_type": dict(by_type)})
