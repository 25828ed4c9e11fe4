"""Raw market data: trades, 1-minute candles and (simulated) ground-truth events, per UTC day.

Simulated and replay sources return the whole day, which replaces the partition. The live
source is incremental: each run fetches trades after the last stored one and the candle
minutes still missing (tail and holes), and merges them into the partition on the natural key.
"""

from datetime import UTC, date, datetime

import dagster as dg

from sentinance_assets.defs.market.wiring import (
    all_markets_failed,
    check_specs,
    failures_for,
    merge_into_day,
    replace_day,
    result,
)
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
from sentinance_assets.lib.sources.incremental import (
    candle_windows,
    gap_report,
    resume_points,
    stored,
)
from sentinance_assets.settings import Settings

TRADES = dg.AssetKey(["raw", "trades"])
CANDLES = dg.AssetKey(["raw", "candles"])
TRADE_KEY = ["exchange", "symbol", "trade_id"]
CANDLE_KEY = ["exchange", "symbol", "timeframe", "ts"]


def _raise_if_nothing_worked(failures: list[dict[str, str]], settings: Settings, what: str) -> None:
    if failures and all_markets_failed(failures, settings.exchanges, settings.symbols):
        raise dg.Failure(
            f"no {what} could be fetched from any configured exchange",
            metadata={"failed": dg.MetadataValue.json(failures)},
        )


@dg.asset(
    key=TRADES,
    group_name="market",
    partitions_def=daily,
    check_specs=check_specs(TRADES),
    kinds={"polars", "parquet"},
    description="Every trade on the configured venues and markets for one UTC day.",
)
def raw_trades(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    day = context.partition_key
    source = build_source(settings)
    rules = contracts.trade_rules(settings.exchanges, settings.symbols, datetime.now(UTC))
    extra: dict[str, object] = {}
    if source.name == "live":
        existing = stored(settings.lake_dir, RAW_TRADES, day)
        since = resume_points(existing)
        new = source.trades(date.fromisoformat(day), since=since)  # type: ignore[call-arg]
        failures = failures_for(source, "trades")
        _raise_if_nothing_worked(failures, settings, "trades")
        landed = merge_into_day(
            context,
            settings,
            source,
            new,
            dataset=RAW_TRADES,
            quarantine=QUARANTINE_TRADES,
            rules=rules,
            key=TRADE_KEY,
            existing=existing,
        )
        checked = landed.checked
        extra = {"stored_rows": landed.frame.height, "resumed_markets": len(since)}
    else:
        checked, failures = replace_day(
            context,
            settings,
            source,
            source.trades(date.fromisoformat(day)),
            kind="trades",
            dataset=RAW_TRADES,
            quarantine=QUARANTINE_TRADES,
            rules=rules,
            key=TRADE_KEY,
        )
    context.log.info(f"{day}: {checked.metadata()} failures={len(failures)}")
    return result(TRADES, checked, source=source.name, failures=failures, extra=extra)


@dg.asset(
    key=CANDLES,
    group_name="market",
    partitions_def=daily,
    check_specs=check_specs(CANDLES),
    kinds={"polars", "parquet"},
    description="Exchange-reported 1-minute candles for one UTC day (fallback where trades "
    "are unavailable, and a cross-check on trade-built candles). Live: missing minutes are "
    "found and re-fetched on every run; those still missing are reported as gaps.",
)
def raw_candles(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    day = context.partition_key
    source = build_source(settings)
    rules = contracts.candle_rules(settings.exchanges, settings.symbols, datetime.now(UTC))
    extra: dict[str, object] = {}
    if source.name == "live":
        existing = stored(settings.lake_dir, RAW_CANDLES, day)
        window = source.day_window(date.fromisoformat(day))  # type: ignore[attr-defined]
        plan = candle_windows(existing, *window) if window else {}
        new = source.candles(date.fromisoformat(day), windows=plan)  # type: ignore[call-arg]
        failures = failures_for(source, "candles")
        _raise_if_nothing_worked(failures, settings, "candles")
        landed = merge_into_day(
            context,
            settings,
            source,
            new,
            dataset=RAW_CANDLES,
            quarantine=QUARANTINE_CANDLES,
            rules=rules,
            key=CANDLE_KEY,
            existing=existing,
        )
        checked = landed.checked
        gaps = gap_report(landed.frame, *window) if window else {}
        extra = {
            "stored_rows": landed.frame.height,
            "gap_windows_requested": sum(len(w) for w in plan.values()),
            "gap_minutes": sum(gaps.values()),
            "gaps": dg.MetadataValue.json(gaps),
        }
    else:
        checked, failures = replace_day(
            context,
            settings,
            source,
            source.candles(date.fromisoformat(day)),
            kind="candles",
            dataset=RAW_CANDLES,
            quarantine=QUARANTINE_CANDLES,
            rules=rules,
            key=CANDLE_KEY,
        )
    return result(CANDLES, checked, source=source.name, failures=failures, extra=extra)


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
