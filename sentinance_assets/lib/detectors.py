"""Market-event detectors: plain polars functions over trades (no Dagster, no I/O).

Each detector takes trades in the ``raw.trades`` layout and returns alerts in the
``alerts.alerts`` layout. ``alert_id`` is a hash of (type, exchange, symbol, event time), so
re-processing the same trades never duplicates an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from sentinance_assets.lib.schemas import ALERTS, TS

# Static USD value of each quote currency (the documented fallback when no FX market is used).
QUOTE_USD: dict[str, float] = {"USD": 1.0, "USDT": 1.0, "USDC": 1.0}


@dataclass(frozen=True)
class DetectorConfig:
    whale_usd: float = 100_000.0
    whale_usd_by_symbol: dict[str, float] = field(default_factory=dict)
    spike_window: str = "60s"
    spike_z: float = 2.5
    spike_min_ratio: float = 5.0  # volume must also be this multiple of the rolling mean
    spike_history: int = 60  # windows in the rolling baseline (60 x 60 s = 1 hour)
    divergence_window: str = "30s"
    divergence_pct: float = 0.5


def _usd(trades: pl.DataFrame) -> pl.Expr:
    rate = pl.col("quote").replace_strict(QUOTE_USD, default=None, return_dtype=pl.Float64)
    return pl.col("price") * pl.col("amount") * rate


def _alert_id() -> pl.Expr:
    key = pl.concat_str(
        [pl.col("type"), pl.col("exchange"), pl.col("symbol"), pl.col("event_time").dt.epoch("ms")],
        separator="|",
    )
    return key.hash(seed=20261122).cast(pl.String).str.zfill(20)


def _finish(df: pl.DataFrame, detected_at: datetime) -> pl.DataFrame:
    if df.height == 0:
        return ALERTS.empty()
    return ALERTS.conform(
        df.with_columns(
            _alert_id().alias("alert_id"),
            pl.lit(detected_at).cast(TS).alias("detected_at"),
        )
    )


def detect_whales(trades: pl.DataFrame, cfg: DetectorConfig, detected_at: datetime) -> pl.DataFrame:
    threshold = pl.col("symbol").replace_strict(
        cfg.whale_usd_by_symbol, default=cfg.whale_usd, return_dtype=pl.Float64
    )
    hits = trades.with_columns(_usd(trades).alias("usd"), threshold.alias("threshold")).filter(
        pl.col("usd") >= pl.col("threshold")
    )
    out = hits.select(
        pl.lit("whale").alias("type"),
        "exchange",
        "symbol",
        pl.when(pl.col("usd") >= 10 * pl.col("threshold"))
        .then(pl.lit("critical"))
        .otherwise(pl.lit("warning"))
        .alias("severity"),
        pl.col("ts").alias("event_time"),
        pl.col("usd").alias("value"),
        "threshold",
        pl.format(
            "Whale {} of {} {} on {} (${} notional)",
            "side",
            "amount",
            "base",
            "exchange",
            pl.col("usd").round(0).cast(pl.Int64),
        ).alias("message"),
        pl.struct("trade_id", "price", "amount", "side", "quote")
        .struct.json_encode()
        .alias("details"),
    )
    return _finish(out, detected_at)


def detect_volume_spikes(
    trades: pl.DataFrame, cfg: DetectorConfig, detected_at: datetime
) -> pl.DataFrame:
    """Tumbling windows per market; z-score against the previous ``spike_history`` windows.

    Empty windows count as zero volume, so a burst after a quiet spell is measured against a
    baseline that includes the quiet. A window alerts when z > ``spike_z`` and its volume is at
    least ``spike_min_ratio`` times the baseline mean (guards against tiny, noisy baselines).
    """
    if trades.height == 0:
        return ALERTS.empty()
    bars = (
        trades.with_columns(
            _usd(trades).alias("usd"), pl.col("ts").dt.truncate(cfg.spike_window).alias("bucket")
        )
        .group_by("exchange", "symbol", "bucket")
        .agg(pl.col("usd").sum(), pl.len().alias("n"))
    )
    grid = (
        bars.group_by("exchange", "symbol")
        .agg(
            pl.datetime_range(
                pl.col("bucket").min(), pl.col("bucket").max(), cfg.spike_window
            ).alias("bucket")
        )
        .explode("bucket")
    )
    bars = (
        grid.join(bars, on=["exchange", "symbol", "bucket"], how="left")
        .with_columns(pl.col("usd").fill_null(0.0), pl.col("n").fill_null(0))
        .sort("exchange", "symbol", "bucket")
    )
    prev = pl.col("usd").shift(1).over("exchange", "symbol")
    mean = prev.rolling_mean(cfg.spike_history, min_samples=cfg.spike_history).over(
        "exchange", "symbol"
    )
    std = prev.rolling_std(cfg.spike_history, min_samples=cfg.spike_history).over(
        "exchange", "symbol"
    )
    scored = bars.with_columns(mean.alias("mean"), std.alias("std")).with_columns(
        ((pl.col("usd") - pl.col("mean")) / pl.col("std")).alias("z")
    )
    hits = scored.filter(
        (pl.col("z") > cfg.spike_z) & (pl.col("usd") >= cfg.spike_min_ratio * pl.col("mean"))
    )
    out = hits.select(
        pl.lit("volume_spike").alias("type"),
        "exchange",
        "symbol",
        pl.when(pl.col("z") > 2 * cfg.spike_z)
        .then(pl.lit("critical"))
        .otherwise(pl.lit("warning"))
        .alias("severity"),
        pl.col("bucket").alias("event_time"),
        pl.col("z").alias("value"),
        pl.lit(cfg.spike_z).alias("threshold"),
        pl.format(
            "Volume spike on {} {}: ${} in {} (z = {}, {}x the hourly mean)",
            "exchange",
            "symbol",
            pl.col("usd").round(0).cast(pl.Int64),
            pl.lit(cfg.spike_window),
            pl.col("z").round(1),
            (pl.col("usd") / pl.col("mean")).round(1),
        ).alias("message"),
        pl.struct("usd", "n", "mean", "std", "z").struct.json_encode().alias("details"),
    )
    return _finish(out, detected_at)


def detect_divergence(
    trades: pl.DataFrame, cfg: DetectorConfig, detected_at: datetime
) -> pl.DataFrame:
    """VWAP per window and venue, in USD; a venue diverges when it is more than
    ``divergence_pct`` away from the median of the other venues for the same base asset.
    Consecutive diverging windows form one episode, alerted once with its duration.
    """
    if trades.height == 0:
        return ALERTS.empty()
    vwap = (
        trades.with_columns(
            _usd(trades).alias("usd"),
            pl.col("ts").dt.truncate(cfg.divergence_window).alias("bucket"),
        )
        .group_by("exchange", "symbol", "base", "bucket")
        .agg((pl.col("usd").sum() / pl.col("amount").sum()).alias("vwap_usd"))
    )
    pairs = vwap.join(vwap, on=["base", "bucket"], suffix="_o").filter(
        pl.col("exchange") != pl.col("exchange_o")
    )
    ref = pairs.group_by("exchange", "symbol", "base", "bucket").agg(
        pl.col("vwap_usd").first(),
        pl.col("vwap_usd_o").median().alias("ref_usd"),
        pl.len().alias("venues"),
    )
    div = ref.with_columns(
        (100 * (pl.col("vwap_usd") - pl.col("ref_usd")) / pl.col("ref_usd")).alias("spread_pct")
    ).filter(pl.col("spread_pct").abs() > cfg.divergence_pct)
    if div.height == 0:
        return ALERTS.empty()
    step = pl.duration(seconds=int(cfg.divergence_window.rstrip("s")))
    episodes = (
        div.sort("exchange", "symbol", "bucket")
        .with_columns(
            ((pl.col("bucket").diff().over("exchange", "symbol") != step).fill_null(True))
            .cum_sum()
            .over("exchange", "symbol")
            .alias("episode")
        )
        .group_by("exchange", "symbol", "episode")
        .agg(
            pl.col("bucket").min().alias("event_time"),
            pl.col("bucket").max().alias("last"),
            pl.col("spread_pct").get(pl.col("spread_pct").abs().arg_max()).alias("peak"),
            pl.len().alias("windows"),
        )
    )
    out = episodes.with_columns(
        (pl.col("windows") * int(cfg.divergence_window.rstrip("s"))).alias("duration_s")
    ).select(
        pl.lit("divergence").alias("type"),
        "exchange",
        "symbol",
        pl.when(pl.col("peak").abs() > 2 * cfg.divergence_pct)
        .then(pl.lit("critical"))
        .otherwise(pl.lit("warning"))
        .alias("severity"),
        "event_time",
        pl.col("peak").alias("value"),
        pl.lit(cfg.divergence_pct).alias("threshold"),
        pl.format(
            "{} {} diverged {}% from other venues for {} s",
            "exchange",
            "symbol",
            pl.col("peak").round(2),
            "duration_s",
        ).alias("message"),
        pl.struct("peak", "duration_s", "windows").struct.json_encode().alias("details"),
    )
    return _finish(out, detected_at)


def detect_all(
    trades: pl.DataFrame, cfg: DetectorConfig | None = None, detected_at: datetime | None = None
) -> pl.DataFrame:
    cfg = cfg or DetectorConfig()
    detected_at = detected_at or datetime.now(UTC)
    frames = [
        detect_whales(trades, cfg, detected_at),
        detect_volume_spikes(trades, cfg, detected_at),
        detect_divergence(trades, cfg, detected_at),
    ]
    return (
        pl.concat(frames)
        .unique("alert_id", keep="first")
        .sort("event_time", "type", "exchange", "symbol")
    )


def alert_summary(alerts: pl.DataFrame) -> dict[str, int]:
    return {t: int(n) for t, n in alerts.group_by("type").len().sort("type").iter_rows()}
