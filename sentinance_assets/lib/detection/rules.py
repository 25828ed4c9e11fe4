"""Market-event detection rules: plain polars over trades (no Dagster, no I/O).

One engine (:mod:`.engine`) serves batch and streaming: :class:`StreamingDetector` folds trades
into 30-second bars per market and evaluates every window detector on the bars whose data is
complete; batch detection (:func:`detect_all`) is the same detector fed everything in one push
and flushed. Because every alert is a pure function of the bars up to the moment it is decided,
a day processed in one batch or in many time-ordered micro-batches gives identical alerts
(``tests/lib/test_detectors.py`` proves it).

Rules (defaults in :class:`DetectorConfig`):

* **whale** - one trade worth at least ``whale_usd`` (per-symbol override) in USD; decided on
  arrival, so the alert is as fast as the trade.
* **volume_spike** - per 60-second tumbling window per market (whale-sized prints excluded
  from the USD volume: they have their own alert), against the previous ``spike_history``
  windows (1 hour; empty windows count as zero). Real minute volume is heavy-tailed (the
  hourly mean is several times the median, and one burst inflates the mean and the standard
  deviation for an hour), so the baseline is robust: medians and quantiles, no mean.
  The window qualifies when all hold:

  - USD volume: the robust z of ``ln(1 + usd)``, ``(x - median) / max(IQR / 1.349, 0.25)``
    over the hour, above ``spike_z``, and the USD volume at least ``spike_min_ratio`` x the
    hour's median minute;
  - trade count ``n``: at least ``spike_min_trades``; at least ``spike_min_count_ratio`` x
    the hour's median count (floored at one trade: a market that trades in fewer than half of
    its minutes has a typical minute of one trade); and a Poisson z against that median,
    ``2 (sqrt(n) - sqrt(median_n))``, of at least ``spike_count_z``.

  One heavy print is not a spike (trade sizes are heavy-tailed); neither is a run of tiny
  fills. One alert per burst: not when one of the ``spike_cooldown`` windows before already
  qualified. Severity: critical from ``spike_critical`` x ``spike_z``. Decided when the
  window closes.
* **divergence** - VWAP in USD per 30-second window per venue (a stablecoin quote valued at its
  live USD leg when the bars hold one, ``USDC/USD``, else at its static rate: a de-peg is not
  a divergence of every market quoted in it); the reference is the median of
  all venues of the same base asset (the other venue when there are only two; a venue that
  did not trade in the window stands in with its VWAP of up to ``divergence_carry`` windows
  before). Diverging windows (|spread| > ``divergence_pct``) not interrupted by a traded
  non-diverging window (nor by more than ``divergence_carry`` windows without trades) form one
  episode. An episode lasts from its first diverging window until the venue's next traded
  window (its last price stood apart until then), at most ``divergence_carry`` windows after
  its last diverging one; one that lasts at least ``divergence_min_windows`` windows is
  alerted once, with that duration, when it has settled (``divergence_carry + 2`` windows
  after its last diverging window). So a venue that trades rarely needs one diverging print
  followed by silence, not two traded windows, and a venue that trades every window still
  needs two diverging windows in a row. With two venues a divergence is a pair property: both
  venues are flagged.
* **pump_and_dump** - on 1-minute USD VWAP per market: the price rises at least
  ``pump_rise_pct`` above its low of the previous ``pump_window_min`` minutes, with the median
  trade count per minute over those minutes at least ``pump_volume_ratio`` x the previous
  hour's per-minute mean (a median, so one burst minute does not make a pump),
  and then within ``pump_window_min`` minutes after the peak gives back at least
  ``pump_reversal`` of the rise. One alert per episode (no qualifying peak in the
  ``pump_window_min`` minutes before); decided ``pump_window_min`` minutes after the peak.
* **wash_trading** - in one market, at least ``wash_min_trades`` trades of exactly the same
  amount, at prices within ``wash_price_bp`` basis points of the first, sides strictly
  alternating, each within ``wash_gap_s`` seconds of the previous one. Alerted once per run,
  when the run has closed.

Streaming assumptions: micro-batches arrive in time order per stream (a trade older than the
already-closed frontier is counted by the whale and wash detectors but not in window volumes;
``late_trades`` counts them). Window detectors look back at most ``retention``; episodes
longer than that are split.

Parameters per market: the thresholds (not the window lengths) can be overridden per exchange,
asset or market (:class:`MarketOverride`; the most specific match wins, see :func:`param`), the
divergence threshold also per venue pair, and each type can be switched off globally or per
market. The rules file (:mod:`.rules_file`) fills all of it; :func:`rules_version` is the content
hash of the effective configuration, recorded with every alert (``rules_version``).

``alert_id`` is the SHA-256 (hex) of ``"<type>|<exchange>|<symbol>|<event time, epoch ms>"``
(:func:`alert_id`): stable across library versions (polars' ``hash`` is not), so re-processing
never duplicates an alert, and the batch asset and the watch loop produce the same id for the
same event; readers deduplicate on ``alert_id`` (``select distinct on (alert_id)``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np
import polars as pl

from sentinance_assets.lib.schemas import ALERTS, TS

# Static USD value of each quote currency (the documented fallback when no FX market is used).
QUOTE_USD: dict[str, float] = {"USD": 1.0, "USDT": 1.0, "USDC": 1.0}
ALERT_TYPES = ("whale", "volume_spike", "divergence", "pump_and_dump", "wash_trading")
BAR = timedelta(seconds=30)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
MARKET = ["exchange", "symbol"]
IQR_SIGMA = 1.349  # interquartile range of a standard normal: IQR / 1.349 estimates sigma


# The parameters a market override may set (thresholds and switches; window lengths are
# structural and stay global).
OVERRIDABLE = frozenset(
    {
        "whale_enabled",
        "whale_usd",
        "whale_critical",
        "spike_enabled",
        "spike_z",
        "spike_min_ratio",
        "spike_min_count_ratio",
        "spike_min_trades",
        "spike_count_z",
        "spike_critical",
        "divergence_enabled",
        "divergence_pct",
        "divergence_min_windows",
        "divergence_critical",
        "pump_enabled",
        "pump_rise_pct",
        "pump_volume_ratio",
        "pump_reversal",
        "pump_critical",
        "wash_enabled",
        "wash_min_trades",
        "wash_critical",
    }
)
ENABLED_FIELD = {
    "whale": "whale_enabled",
    "volume_spike": "spike_enabled",
    "divergence": "divergence_enabled",
    "pump_and_dump": "pump_enabled",
    "wash_trading": "wash_enabled",
}


@dataclass(frozen=True)
class MarketOverride:
    """Parameter values for the markets matching ``exchange`` and/or ``symbol``.

    ``symbol`` is a bare asset (``BTC``: every market of it) or a unified market symbol
    (``BTC/USDT``); ``None`` matches any. ``values`` are ``(DetectorConfig field, value)``
    pairs, fields from :data:`OVERRIDABLE`.
    """

    exchange: str | None = None
    symbol: str | None = None
    values: tuple[tuple[str, float | int | bool], ...] = ()

    @property
    def specificity(self) -> int:
        """exchange + market 5, exchange + asset 4, market 3, asset 2, exchange 1."""
        market = self.symbol is not None and "/" in self.symbol
        if self.exchange and self.symbol:
            return 5 if market else 4
        if self.symbol:
            return 3 if market else 2
        return 1 if self.exchange else 0

    def match(self) -> pl.Expr:
        conds = [pl.lit(True)]
        if self.exchange:
            conds.append(pl.col("exchange") == self.exchange)
        if self.symbol and "/" in self.symbol:
            conds.append(pl.col("symbol") == self.symbol)
        elif self.symbol:
            conds.append(pl.col("symbol").str.split("/").list.first() == self.symbol)
        return pl.all_horizontal(conds)


@dataclass(frozen=True)
class DetectorConfig:
    whale_enabled: bool = True
    whale_usd: float = 100_000.0
    whale_usd_by_symbol: dict[str, float] = field(default_factory=dict)  # market symbol -> USD
    whale_critical: float = 10.0  # critical from this multiple of the threshold
    spike_enabled: bool = True
    spike_z: float = 0.25  # robust z of ln(1 + USD volume) against the hour (median, IQR)
    spike_min_ratio: float = 3.0  # volume must also be this multiple of the hourly median
    spike_history: int = 60  # 60-second windows in the rolling baseline (1 hour)
    spike_min_count_ratio: float = 6.0  # and the trade count this multiple of its hourly median
    spike_min_trades: int = 5
    spike_count_z: float = 4.0  # Poisson z of the trade count, 2 (sqrt(n) - sqrt(median_n))
    spike_cooldown: int = 1  # no alert when a window of the last N already qualified
    spike_critical: float = 16.0
    spike_log_scale_floor: float = 0.25  # smallest spread of ln(1 + USD) a z is measured against
    divergence_enabled: bool = True
    divergence_pct: float = 0.5
    divergence_min_windows: int = 2
    divergence_carry: int = 4  # buckets a venue's last VWAP stands in when it did not trade
    divergence_critical: float = 2.0
    # oldest price of a stablecoin's USD leg that still values the markets quoted in it
    divergence_quote_max_age_s: float = 3600.0
    # (venue_a, venue_b, pct), venues sorted: the threshold when venue_b is the nearest venue
    # to the reference price of venue_a (or the other way round)
    divergence_pairs: tuple[tuple[str, str, float], ...] = ()
    pump_enabled: bool = True
    pump_rise_pct: float = 2.0
    pump_volume_ratio: float = 2.5
    pump_reversal: float = 0.5
    pump_window_min: int = 15
    pump_critical: float = 2.0
    wash_enabled: bool = True
    wash_min_trades: int = 6
    wash_price_bp: float = 1.0
    wash_gap_s: float = 10.0
    wash_critical: float = 2.0
    quote_usd: tuple[tuple[str, float], ...] = ()  # static USD values of other quotes (EUR)
    overrides: tuple[MarketOverride, ...] = ()

    @cached_property
    def version(self) -> str:
        return rules_version(self)

    def quote_rates(self) -> dict[str, float]:
        return {**QUOTE_USD, **dict(self.quote_usd)}

    def values_of(self, name: str) -> list:
        """Every value ``name`` takes: the default and each override's."""
        out = [getattr(self, name)]
        out += [v for o in self._overrides_of(name) for k, v in o.values if k == name]
        return out

    def active(self, kind: str) -> bool:
        """Whether the rule ``kind`` may fire anywhere (enabled, or enabled by an override)."""
        return any(self.values_of(ENABLED_FIELD[kind]))

    def _overrides_of(self, name: str) -> list[MarketOverride]:
        found = [o for o in self.overrides if any(k == name for k, _ in o.values)]
        if name == "whale_usd" and self.whale_usd_by_symbol:
            legacy = [
                MarketOverride(symbol=s, values=(("whale_usd", v),))
                for s, v in sorted(self.whale_usd_by_symbol.items())
            ]
            found = legacy + found
        return found


def param(cfg: DetectorConfig, name: str) -> pl.Expr:
    """The value of parameter ``name`` per row (columns ``exchange`` and ``symbol``).

    The most specific matching override wins (:attr:`MarketOverride.specificity`); among
    equally specific ones, the later. Without overrides, a literal.
    """
    default = getattr(cfg, name)
    found = cfg._overrides_of(name)
    if not found:
        return pl.lit(default)
    ranked = sorted(enumerate(found), key=lambda io: (io[1].specificity, io[0]))
    expr = pl.lit(default)
    for _, o in ranked:
        value = next(v for k, v in o.values if k == name)
        expr = pl.when(o.match()).then(pl.lit(value)).otherwise(expr)
    return expr


def _canonical(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 100000 and 100000.0 are the same rule
    return value


def rules_version(cfg: DetectorConfig) -> str:
    """Content hash (12 hex digits of SHA-256) of the effective detector configuration.

    Computed from the values, not the file text: comments, key order and ``1e5`` vs
    ``100000`` do not change it; any change of a value does.
    """
    data = _canonical({f.name: asdict(cfg)[f.name] for f in fields(cfg)})
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def usd_rate(cfg: DetectorConfig | None = None) -> pl.Expr:
    rates = QUOTE_USD if cfg is None else cfg.quote_rates()
    return pl.col("quote").replace_strict(rates, default=None, return_dtype=pl.Float64)


def _usd(cfg: DetectorConfig) -> pl.Expr:
    return pl.col("price") * pl.col("amount") * usd_rate(cfg)


def alert_id(kind: str, exchange: str, symbol: str, event_time: datetime | int) -> str:
    """The stable id of an alert: SHA-256 (hex) of ``type|exchange|symbol|epoch ms``."""
    ms = event_time if isinstance(event_time, int) else _epoch_ms(event_time)
    return hashlib.sha256(f"{kind}|{exchange}|{symbol}|{ms}".encode()).hexdigest()


def _epoch_ms(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def alert_ids(df: pl.DataFrame) -> pl.Series:
    """:func:`alert_id` of every row of a frame with type, exchange, symbol, event_time."""
    keys = df.select(
        pl.concat_str(
            [
                pl.col("type").fill_null(""),
                pl.col("exchange").fill_null(""),
                pl.col("symbol").fill_null(""),
                pl.col("event_time").dt.epoch("ms").cast(pl.String).fill_null(""),
            ],
            separator="|",
        )
    ).to_series()
    return pl.Series(
        "alert_id", [hashlib.sha256(k.encode()).hexdigest() for k in keys], dtype=pl.String
    )


def _finish(df: pl.DataFrame, detected_at: datetime, cfg: DetectorConfig) -> pl.DataFrame:
    if df.height == 0:
        return ALERTS.empty()
    kind = df["type"][0]
    df = df.filter(param(cfg, ENABLED_FIELD[kind]))
    if df.height == 0:
        return ALERTS.empty()
    return ALERTS.conform(
        df.with_columns(
            alert_ids(df),
            pl.lit(detected_at).cast(TS).alias("detected_at"),
            pl.lit(cfg.version).alias("rules_version"),
        )
    )


# Outputs are rounded so that rolling sums started at different points (one batch vs many)
# cannot differ in the last bits.
_ROUND = pl.col(pl.Float64).round(6)


def _severity(value: pl.Expr, critical: float | pl.Expr) -> pl.Expr:
    return pl.when(value >= critical).then(pl.lit("critical")).otherwise(pl.lit("warning"))


# --------------------------------------------------------------------------- per-trade rules
def _min_raw_notional(cfg: DetectorConfig) -> float:
    """A cheap pre-filter: no trade below this quote notional can be a whale in USD."""
    lowest = min(cfg.values_of("whale_usd"))
    return lowest / max(cfg.quote_rates().values())


def whale_trades(trades: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    cand = trades.filter(pl.col("price") * pl.col("amount") >= _min_raw_notional(cfg))
    return cand.with_columns(
        _usd(cfg).alias("usd"), param(cfg, "whale_usd").cast(pl.Float64).alias("threshold")
    ).filter(pl.col("usd") >= pl.col("threshold"))


def detect_whales(trades: pl.DataFrame, cfg: DetectorConfig, detected_at: datetime) -> pl.DataFrame:
    hits = whale_trades(trades, cfg)
    out = hits.select(
        pl.lit("whale").alias("type"),
        "exchange",
        "symbol",
        _severity(pl.col("usd") / pl.col("threshold"), param(cfg, "whale_critical")).alias(
            "severity"
        ),
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
    return _finish(out, detected_at, cfg)


_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)


def _maybe_busy(amount: np.ndarray, bucket: np.ndarray, need: int) -> np.ndarray:
    """Row positions that may share (amount, bucket) with ``need - 1`` other rows.

    A counting filter: rows are counted per hash slot with ``np.bincount`` (no hash table, no
    sort, no string hashing) and a row survives when its slot holds at least ``need`` rows.
    Collisions only let extra rows through (never drop one); a second pass with another hash
    over the survivors removes most of them, and the exact check follows in polars.
    """
    with np.errstate(over="ignore"):
        bits = (amount + 0.0).view(np.uint64)  # +0.0: -0.0 and 0.0 count together
        key = bits ^ (bucket.astype(np.uint64) * _K1)
        idx: np.ndarray | None = None
        for seed, extra_bits in ((1, 0), (2, 2)):
            k = key if idx is None else key[idx]
            if len(k) < need:
                return np.zeros(0, dtype=np.intp)
            nbits = max(10, int(np.ceil(np.log2(len(k)))) + extra_bits)
            slot = (((k ^ np.uint64(seed)) * _K2) >> np.uint64(64 - nbits)).astype(np.intp)
            keep = np.bincount(slot, minlength=1 << nbits)[slot] >= need
            idx = np.flatnonzero(keep) if idx is None else idx[keep]
    assert idx is not None  # the loop above always runs
    return idx


def wash_runs(trades: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    """Runs of equal-size, alternating-side, same-price trades (see the module docstring)."""
    if trades.height == 0:
        return pl.DataFrame()
    key = ["exchange", "symbol", "amount"]
    # Cheap pre-filter: a run holds ``wash_min_trades`` trades each within ``wash_gap_s`` of the
    # last, so some ``span_ms`` bucket holds at least ``need`` of them; only (market, size) keys
    # with such a bucket are examined in full. Natural sizes rarely repeat, so almost every
    # trade is dropped by a vectorised counting filter before any hashing of strings.
    span_ms = int(max(60_000, 6 * cfg.wash_gap_s * 1000))
    min_trades = int(min(cfg.values_of("wash_min_trades")))
    need = max(2, (min_trades + 1) // 2)
    amount = trades["amount"].fill_null(float("nan")).to_numpy()
    bucket = (trades["ts"].dt.epoch("ms").fill_null(0) // span_ms).to_numpy()
    idx = _maybe_busy(amount, bucket, need)
    if len(idx) == 0:
        return pl.DataFrame()
    busy = (
        trades[idx]
        .group_by(*key, (pl.col("ts").dt.epoch("ms") // span_ms).alias("b"))
        .agg(pl.len().alias("k"))
        .filter(pl.col("k") >= need)
        .select(key)
        .unique()
    )
    if busy.height == 0:
        return pl.DataFrame()
    amounts = busy["amount"].drop_nulls().implode()
    cand = trades.filter(pl.col("amount").is_in(amounts)).join(busy, on=key, how="semi")
    repeated = cand.group_by(key).agg(pl.len().alias("k")).filter(pl.col("k") >= min_trades)
    if repeated.height == 0:
        return pl.DataFrame()
    t = cand.join(repeated.select(key), on=key, how="semi").sort(*key, "ts", "trade_id")
    gap = pl.col("ts").diff().over(key).dt.total_milliseconds()
    alt = pl.col("side") != pl.col("side").shift(1).over(key)
    breaks = (gap.is_null() | (gap > cfg.wash_gap_s * 1000) | ~alt.fill_null(False)).cum_sum()
    t = t.with_columns(breaks.over(key).alias("run"))
    first_price = pl.col("price").first().over([*key, "run"])
    t = t.with_columns(
        ((pl.col("price") / first_price - 1).abs() * 1e4 > cfg.wash_price_bp).alias("off")
    )
    # A price jump also breaks the run: re-split on it.
    t = t.with_columns((pl.col("run") * 1_000_000 + pl.col("off").cum_sum().over(key)).alias("run"))
    return (
        t.group_by([*key, "run"])
        .agg(
            pl.col("base").first(),
            pl.col("quote").first(),
            pl.col("ts").min().alias("first_ts"),
            pl.col("ts").max().alias("last_ts"),
            pl.len().alias("trades"),
            pl.col("price").mean().alias("price"),
        )
        .filter(pl.col("trades") >= param(cfg, "wash_min_trades"))
    )


def wash_alerts(runs: pl.DataFrame, cfg: DetectorConfig, detected_at: datetime) -> pl.DataFrame:
    if runs.height == 0:
        return ALERTS.empty()
    out = runs.select(
        pl.lit("wash_trading").alias("type"),
        "exchange",
        "symbol",
        _severity(
            pl.col("trades").cast(pl.Float64),
            param(cfg, "wash_critical") * param(cfg, "wash_min_trades"),
        ).alias("severity"),
        pl.col("first_ts").alias("event_time"),
        pl.col("trades").cast(pl.Float64).alias("value"),
        param(cfg, "wash_min_trades").cast(pl.Float64).alias("threshold"),
        pl.format(
            "Possible wash trading on {} {}: {} alternating trades of {} {} at {} within {} s",
            "exchange",
            "symbol",
            "trades",
            "amount",
            "base",
            pl.col("price").round(6),
            ((pl.col("last_ts") - pl.col("first_ts")).dt.total_milliseconds() / 1000).round(1),
        ).alias("message"),
        pl.struct("trades", "amount", "price", "first_ts", "last_ts")
        .struct.json_encode()
        .alias("details"),
    )
    return _finish(out, detected_at, cfg)


# --------------------------------------------------------------------------- window rules
def _grid(bars: pl.LazyFrame, step: str, starts: pl.LazyFrame, end: datetime) -> pl.LazyFrame:
    """Every ``step`` bucket per market from its start to ``end`` (exclusive), zero-filled."""
    grid = (
        starts.with_columns(
            pl.datetime_ranges(
                pl.col("start"),
                pl.lit(end).cast(TS) - pl.duration(milliseconds=1),
                step,
                time_unit="ms",
                time_zone="UTC",
            ).alias("bucket")
        )
        .drop("start")
        .explode("bucket")
        .drop_nulls("bucket")
    )
    return grid.join(bars, on=[*MARKET, "bucket"], how="left").sort(*MARKET, "bucket")


def volume_spikes(
    bars: pl.DataFrame,
    starts: pl.DataFrame,
    cfg: DetectorConfig,
    lo: datetime,
    hi: datetime,
    detected_at: datetime,
) -> pl.DataFrame:
    """Spike alerts for the 60 s windows that close in (lo, hi]."""
    w = (
        bars.lazy()
        .with_columns(pl.col("bucket").dt.truncate("60s"))
        .group_by(*MARKET, "bucket")
        .agg(pl.col("usd_ex").sum().alias("usd"), pl.col("n").sum())
    )
    st = starts.lazy().with_columns(pl.col("start").dt.truncate("60s"))
    g = _grid(w, "60s", st, hi).with_columns(pl.col("usd").fill_null(0.0), pl.col("n").fill_null(0))
    h = cfg.spike_history
    prev_n = pl.col("n").cast(pl.Float64).shift(1)
    # log volume: minute volume is heavy-tailed (the hourly mean is several times the median),
    # so the baseline is the hour's median and interquartile spread of ln(1 + USD)
    prev_lu = pl.col("usd").log1p().shift(1)
    scale = (
        (prev_lu.rolling_quantile(0.75, "linear", h, min_samples=h).over(MARKET) - pl.col("q25"))
        / IQR_SIGMA
    ).clip(lower_bound=cfg.spike_log_scale_floor)
    typical_n = pl.col("median_n").clip(lower_bound=1.0)
    scored = (
        g.with_columns(
            pl.col("usd").shift(1).rolling_mean(h, min_samples=h).over(MARKET).alias("mean"),
            pl.col("usd").shift(1).rolling_std(h, min_samples=h).over(MARKET).alias("std"),
            pl.col("usd").shift(1).rolling_median(h, min_samples=h).over(MARKET).alias("median"),
            prev_n.rolling_mean(h, min_samples=h).over(MARKET).alias("mean_n"),
            prev_n.rolling_median(h, min_samples=h).over(MARKET).alias("median_n"),
            prev_lu.rolling_median(h, min_samples=h).over(MARKET).alias("median_lu"),
            prev_lu.rolling_quantile(0.25, "linear", h, min_samples=h).over(MARKET).alias("q25"),
        )
        .with_columns(
            ((pl.col("usd").log1p() - pl.col("median_lu")) / scale).alias("z"),
            param(cfg, "spike_z").cast(pl.Float64).alias("z_min"),
        )
        .with_columns(
            (
                (pl.col("z") > pl.col("z_min"))
                & (pl.col("usd") > 0)
                & (pl.col("usd") >= param(cfg, "spike_min_ratio") * pl.col("median"))
                & (pl.col("n") >= param(cfg, "spike_min_trades"))
                & (pl.col("n") >= param(cfg, "spike_min_count_ratio") * typical_n)
                & (
                    2 * (pl.col("n").cast(pl.Float64).sqrt() - pl.col("median_n").sqrt())
                    >= param(cfg, "spike_count_z")
                )
            )
            .fill_null(False)
            .alias("hit")
        )
        .with_columns(
            pl.col("hit")
            .cast(pl.Int8)
            .shift(1)
            .rolling_max(cfg.spike_cooldown, min_samples=1)
            .over(MARKET)
            .fill_null(0)
            .cast(pl.Boolean)
            .alias("prev_hit")
        )
    )
    end = pl.col("bucket") + pl.duration(seconds=60)
    hits = scored.filter(
        pl.col("hit") & ~pl.col("prev_hit") & (end > pl.lit(lo)) & (end <= pl.lit(hi))
    )
    out = hits.with_columns(_ROUND).select(
        pl.lit("volume_spike").alias("type"),
        *MARKET,
        _severity(pl.col("z"), param(cfg, "spike_critical") * pl.col("z_min")).alias("severity"),
        pl.col("bucket").alias("event_time"),
        pl.col("z").alias("value"),
        pl.col("z_min").alias("threshold"),
        pl.format(
            "Volume spike on {} {}: ${} in 60 s over {} trades (z = {}; hourly median ${} and {}"
            " trades a minute)",
            *MARKET,
            pl.col("usd").round(0).cast(pl.Int64),
            "n",
            pl.col("z").round(1),
            pl.col("median").round(0).cast(pl.Int64),
            pl.col("median_n").round(1),
        ).alias("message"),
        pl.struct("usd", "n", "mean", "std", "z", "mean_n", "median_n", "median")
        .struct.json_encode()
        .alias("details"),
    )
    return _finish(out.collect(), detected_at, cfg)


def quote_legs(cfg: DetectorConfig) -> list[str]:
    """The USD legs of the stablecoin quotes (``USDC/USD``, ``USDT/USD``): where the trades
    hold them, they value every market quoted in that stablecoin (:func:`_at_live_quotes`), so
    a divergence of ``BTC/USDC`` depends on the trades of ``USDC/USD``."""
    return [f"{q}/USD" for q in cfg.quote_rates() if q != "USD"]


def _at_live_quotes(v: pl.LazyFrame, cfg: DetectorConfig) -> pl.LazyFrame:
    """Each window's VWAP in USD at its quote currency's live rate, where the bars hold that
    currency's USD leg (``USDC/USD``, ``USDT/USD``: the median VWAP over its venues, no older
    than ``divergence_quote_max_age_s``); at the static rate (``quotes``) otherwise.

    Why: with a static USDC = $1, a de-peg (USDC at $0.88 in March 2023) turns every
    USDC-quoted market into one standing "divergence" of the stablecoin, not of the asset,
    which both misleads and hides real divergences inside it. The legs themselves are quoted
    in USD and so never change."""
    static = {q: r for q, r in cfg.quote_rates().items() if q != "USD"}
    legs = quote_legs(cfg)
    live = (
        v.filter(pl.col("symbol").is_in(legs))
        .group_by(pl.col("base").alias("quote"), "bucket")
        .agg(pl.col("vwap").median().alias("live"))
        .sort("bucket")
    )
    quote = pl.col("symbol").str.split("/").list.last()
    return (
        v.with_columns(quote.alias("quote"))
        .sort("bucket")
        .join_asof(  # both sides sorted by bucket above: polars cannot check it per group
            live,
            on="bucket",
            by="quote",
            strategy="backward",
            tolerance=timedelta(seconds=cfg.divergence_quote_max_age_s),
            check_sortedness=False,
        )
        .with_columns(
            pl.when(pl.col("live").is_not_null())
            .then(
                pl.col("vwap")
                * pl.col("live")
                / pl.col("quote").replace_strict(static, default=1.0, return_dtype=pl.Float64)
            )
            .otherwise(pl.col("vwap"))
            .alias("vwap")
        )
        .drop("quote", "live")
    )


def divergences(
    bars: pl.DataFrame, cfg: DetectorConfig, lo: datetime, hi: datetime, detected_at: datetime
) -> pl.DataFrame:
    """Divergence episodes whose end is decided in (lo, hi] (two windows after the last)."""
    if bars.height == 0:
        return ALERTS.empty()
    v = _at_live_quotes(
        bars.lazy()
        .filter(pl.col("amount") > 0)
        .with_columns((pl.col("usd") / pl.col("amount")).alias("vwap")),
        cfg,
    )
    # Every venue of the base on every bucket, its VWAP carried forward for up to
    # ``divergence_carry`` buckets: a venue that did not trade in this window still anchors the
    # median with its latest price (otherwise two venues out of three make an ambiguous pair).
    venues = v.select("base", *MARKET).unique()
    buckets = v.select("base", "bucket").unique()
    full = (
        venues.join(buckets, on="base")
        .join(v.select(*MARKET, "bucket", "vwap"), on=[*MARKET, "bucket"], how="left")
        .sort(*MARKET, "bucket")
        .with_columns(
            pl.col("vwap").is_not_null().alias("traded"),
            pl.col("vwap").forward_fill(limit=cfg.divergence_carry).over(MARKET),
        )
        .drop_nulls("vwap")
    )
    # per (base, bucket): venue count, sum and median (a group-by and a join, not windows
    # over many tiny groups); a sum of two is exact in any order, so the result is the same
    per_bucket = full.group_by("base", "bucket").agg(
        pl.len().alias("venues"),
        pl.col("vwap").sum().alias("total"),
        pl.col("vwap").median().alias("median"),
    )
    ref = (
        pl.when(pl.col("venues") == 2)
        .then(pl.col("total") - pl.col("vwap"))
        .otherwise(pl.col("median"))
    )
    measured = (
        full.filter(pl.col("traded"))
        .join(per_bucket.filter(pl.col("venues") >= 2), on=["base", "bucket"])
        .with_columns(ref.alias("ref"))
        .with_columns((100 * (pl.col("vwap") / pl.col("ref") - 1)).alias("spread_pct"))
    )
    rows = (
        _divergence_threshold(measured, full, cfg)
        .with_columns((pl.col("spread_pct").abs() > pl.col("thr")).alias("div"))
        .sort(*MARKET, "bucket")
        .collect()
    )
    if rows.height == 0 or not rows["div"].any():
        return ALERTS.empty()
    # An episode: diverging windows not interrupted by a traded, non-diverging window, nor by
    # more than ``divergence_carry`` windows without trades. It lasts from its first window
    # until the venue's next traded window (its price stood apart until then), at most
    # ``divergence_carry`` windows after its last diverging one.
    carry = (cfg.divergence_carry + 1) * BAR
    gap = pl.col("bucket").diff().over(MARKET)
    prev_div = pl.col("div").shift(1).over(MARKET).fill_null(False)
    starts = pl.col("div") & (~prev_div | (gap > carry).fill_null(True))
    settle = (cfg.divergence_carry + 2) * BAR
    episodes = (
        rows.with_columns(
            starts.cast(pl.Int32).cum_sum().over(MARKET).alias("episode"),
            pl.col("bucket").shift(-1).over(MARKET).alias("next"),
        )
        .filter(pl.col("div"))
        .group_by(*MARKET, "episode")
        .agg(
            pl.col("bucket").min().alias("event_time"),
            pl.col("bucket").max().alias("last"),
            pl.col("next").sort_by("bucket").last(),
            pl.col("spread_pct").get(pl.col("spread_pct").abs().arg_max()).alias("peak"),
            pl.len().alias("windows"),
            pl.col("venues").max(),
            pl.col("thr").max(),
        )
        .with_columns(
            (pl.col("last") + settle).alias("decided"),
            pl.min_horizontal(pl.col("next").fill_null(FAR_FUTURE), pl.col("last") + carry).alias(
                "until"
            ),
        )
        .with_columns(
            (pl.col("until") - pl.col("event_time")).dt.total_seconds().alias("duration_s")
        )
        .filter(
            (pl.col("duration_s") >= param(cfg, "divergence_min_windows") * BAR.total_seconds())
            & (pl.col("decided") > pl.lit(lo))
            & (pl.col("decided") <= pl.lit(hi))
        )
    )
    out = episodes.with_columns(_ROUND).select(
        pl.lit("divergence").alias("type"),
        *MARKET,
        _severity(pl.col("peak").abs(), param(cfg, "divergence_critical") * pl.col("thr")).alias(
            "severity"
        ),
        "event_time",
        pl.col("peak").alias("value"),
        pl.col("thr").alias("threshold"),
        pl.format(
            "{} {} diverged {}% from other venues for {} s",
            *MARKET,
            pl.col("peak").round(2),
            "duration_s",
        ).alias("message"),
        pl.struct("peak", "duration_s", "windows", "venues").struct.json_encode().alias("details"),
    )
    return _finish(out, detected_at, cfg)


def _divergence_threshold(rows: pl.LazyFrame, full: pl.LazyFrame, cfg: DetectorConfig):
    """``rows`` with ``thr``, the divergence threshold (%) of each measured window.

    The market's (override or default) value, unless a venue pair has its own: then the pair
    of the measured venue and the other venue whose price is nearest the reference (with two
    venues, simply the other one) decides. Structural basis between two regions (a premium
    market) is thus tolerated on that pair only.
    """
    thr = param(cfg, "divergence_pct").cast(pl.Float64)
    if not cfg.divergence_pairs:
        return rows.with_columns(thr.alias("thr"))
    others = full.select(
        "base",
        "bucket",
        pl.col("exchange").alias("other"),
        pl.col("symbol").alias("other_symbol"),
        pl.col("vwap").alias("other_vwap"),
    )
    nearest = (
        rows.select(*MARKET, "base", "bucket", "ref")
        .join(others, on=["base", "bucket"])
        .filter(
            (pl.col("other") != pl.col("exchange")) | (pl.col("other_symbol") != pl.col("symbol"))
        )
        .with_columns((pl.col("other_vwap") - pl.col("ref")).abs().alias("dist"))
        .group_by(*MARKET, "bucket")
        .agg(pl.col("other").sort_by("dist", "other", "other_symbol").first())
    )
    pairs = [(a, b, pct) for a, b, pct in cfg.divergence_pairs] + [
        (b, a, pct) for a, b, pct in cfg.divergence_pairs
    ]
    table = pl.LazyFrame(
        pairs,
        schema={"exchange": pl.String, "other": pl.String, "pair_pct": pl.Float64},
        orient="row",
    ).unique(["exchange", "other"], keep="last")
    return (
        rows.join(nearest, on=[*MARKET, "bucket"], how="left")
        .join(table, on=["exchange", "other"], how="left")
        .with_columns(pl.coalesce("pair_pct", thr).alias("thr"))
        .drop("other", "pair_pct")
    )


def pumps(
    bars: pl.DataFrame,
    starts: pl.DataFrame,
    cfg: DetectorConfig,
    lo: datetime,
    hi: datetime,
    detected_at: datetime,
) -> pl.DataFrame:
    """Pump-and-dump alerts decided in (lo, hi] (``pump_window_min`` after the peak)."""
    k = cfg.pump_window_min
    m = (
        bars.lazy()
        .with_columns(pl.col("bucket").dt.truncate("1m"))
        .group_by(*MARKET, "bucket")
        .agg(pl.col("usd").sum(), pl.col("amount").sum(), pl.col("n").sum())
    )
    st = starts.lazy().with_columns(pl.col("start").dt.truncate("1m"))
    g = _grid(m, "1m", st, hi).with_columns(
        pl.col("usd").fill_null(0.0),
        pl.col("n").fill_null(0).cast(pl.Float64),
        (pl.col("usd") / pl.col("amount")).forward_fill().over(MARKET).alias("px"),
    )
    low = pl.col("px").rolling_min(k + 1, min_samples=1).over(MARKET)
    vol_k = pl.col("n").rolling_median(k, min_samples=k).over(MARKET)
    base = pl.col("n").shift(k).rolling_mean(60, min_samples=60).over(MARKET)
    s = (
        g.with_columns(low.alias("low"), vol_k.alias("vol"), base.alias("base_min"))
        .with_columns(
            # reversed px, so a rolling min over the k minutes after each minute is a shift
            pl.col("px")
            .reverse()
            .rolling_min(k, min_samples=k)
            .reverse()
            .shift(-1)
            .over(MARKET)
            .alias("after_low"),
            (100 * (pl.col("px") / pl.col("low") - 1)).alias("rise_pct"),
            (pl.col("vol") / pl.col("base_min")).alias("vol_ratio"),
            param(cfg, "pump_rise_pct").cast(pl.Float64).alias("rise_min"),
        )
        .with_columns(
            (
                (pl.col("rise_pct") >= pl.col("rise_min"))
                & (pl.col("vol_ratio") >= param(cfg, "pump_volume_ratio"))
                & (
                    pl.col("after_low")
                    <= pl.col("px") - param(cfg, "pump_reversal") * (pl.col("px") - pl.col("low"))
                )
            )
            .fill_null(False)
            .alias("hit")
        )
        .with_columns(
            pl.col("hit")
            .cast(pl.Int32)
            .shift(1)
            .rolling_sum(k, min_samples=1)
            .over(MARKET)
            .fill_null(0)
            .alias("recent")
        )
    )
    decided = pl.col("bucket") + pl.duration(minutes=k + 1)
    hits = s.filter(
        pl.col("hit") & (pl.col("recent") == 0) & (decided > pl.lit(lo)) & (decided <= pl.lit(hi))
    )
    out = hits.with_columns(_ROUND).select(
        pl.lit("pump_and_dump").alias("type"),
        *MARKET,
        _severity(pl.col("rise_pct"), param(cfg, "pump_critical") * pl.col("rise_min")).alias(
            "severity"
        ),
        pl.col("bucket").alias("event_time"),
        pl.col("rise_pct").alias("value"),
        pl.col("rise_min").alias("threshold"),
        pl.format(
            "Pump-and-dump on {} {}: +{}% in {} min on {}x volume, then fell back to {}",
            *MARKET,
            pl.col("rise_pct").round(2),
            pl.lit(k),
            pl.col("vol_ratio").round(1),
            pl.col("after_low").round(6),
        ).alias("message"),
        pl.struct("rise_pct", "vol_ratio", "px", "low", "after_low")
        .struct.json_encode()
        .alias("details"),
    )
    return _finish(out.collect(), detected_at, cfg)
