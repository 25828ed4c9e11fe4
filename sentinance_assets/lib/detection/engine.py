"""The detection engine: every rule's state carried across micro-batches.

:class:`StreamingDetector` folds trades into 30-second bars per market and evaluates the window
rules of :mod:`.rules` on the bars whose data is complete; batch detection (:func:`detect_all`)
is the same detector fed everything in one push and flushed, so a day processed in one batch or
in many time-ordered micro-batches gives identical alerts.
"""

from __future__ import annotations

import pickle
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import polars as pl

from sentinance_assets.lib.detection.rules import (
    BAR,
    FAR_FUTURE,
    MARKET,
    DetectorConfig,
    detect_whales,
    divergences,
    pumps,
    usd_rate,
    volume_spikes,
    wash_alerts,
    wash_runs,
    whale_trades,
)
from sentinance_assets.lib.schemas import ALERTS, TS

_BAR_SCHEMA = {
    "exchange": pl.String,
    "symbol": pl.String,
    "base": pl.String,
    "bucket": TS,
    "usd": pl.Float64,
    "usd_ex": pl.Float64,
    "amount": pl.Float64,
    "n": pl.UInt32,
}
_TRADE_COLS = ["exchange", "symbol", "base", "quote", "trade_id", "ts", "price", "amount", "side"]


class StreamingDetector:
    """All detectors with their state carried across micro-batches (see the module docstring).

    ``push(trades)`` returns the alerts decided by those trades; ``flush()`` closes every open
    window (end of input). ``dumps``/``loads`` serialize the state for checkpoints.
    """

    def __init__(self, cfg: DetectorConfig | None = None, retention: timedelta | None = None):
        self.cfg = cfg or DetectorConfig()
        self.retention = retention or timedelta(hours=3)
        self.bars = pl.DataFrame(schema=_BAR_SCHEMA)
        self.pending = pl.DataFrame(schema={c: _trade_schema()[c] for c in _TRADE_COLS})
        self.tail = self.pending.clear()  # closed trades still able to extend a wash run
        self.starts = pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String, "start": TS})
        self.frontier: datetime | None = None  # trades before it are folded into bars
        self.keep_from: datetime | None = None  # bars before it were dropped (retention)
        self.emitted_wash: dict[str, datetime] = {}
        self.trades_seen = 0
        self.late_trades = 0

    # -------------------------------------------------------------- public
    def push(
        self, trades: pl.DataFrame, detected_at: datetime | None = None, *, advance: bool = True
    ) -> pl.DataFrame:
        """Alerts decided by ``trades``. ``advance=False`` only buffers the trades (whale alerts
        are still returned): the window rules run at the next advancing push or ``flush``,
        which :func:`detect_all` uses to evaluate a whole batch once."""
        detected_at = detected_at or datetime.now(UTC)
        if trades.height == 0:
            return ALERTS.empty()
        trades = trades.select(_TRADE_COLS).cast(_trade_schema())
        self.trades_seen += trades.height
        out = [detect_whales(trades, self.cfg, detected_at)] if self.cfg.active("whale") else []
        if self.frontier is not None:
            is_late = pl.col("ts") < self.frontier
            late = trades.filter(is_late)
            if late.height:
                self.late_trades += late.height
                trades = trades.filter(~is_late)
                self.tail = pl.concat([self.tail, late])
        self.pending = pl.concat([self.pending, trades]) if self.pending.height else trades
        watermark = self.pending["ts"].max()
        if advance and watermark is not None:
            new = watermark.replace(second=0, microsecond=0)
            if self.frontier is None or new > self.frontier:
                out.append(self._advance(new, detected_at))
        return _concat(out)

    def flush(self, detected_at: datetime | None = None) -> pl.DataFrame:
        detected_at = detected_at or datetime.now(UTC)
        return self._advance(FAR_FUTURE, detected_at)

    def dumps(self) -> bytes:
        return pickle.dumps(self.__dict__, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def loads(cls, blob: bytes) -> StreamingDetector:
        obj = cls.__new__(cls)
        obj.__dict__.update(pickle.loads(blob))
        # a checkpoint from before a DetectorConfig field existed: rebuild it with the defaults
        # of the new fields (the watch loop then installs the current rules anyway)
        old = obj.__dict__.get("cfg")
        if isinstance(old, DetectorConfig):
            known = {
                f.name: old.__dict__[f.name]
                for f in fields(DetectorConfig)
                if f.name in old.__dict__
            }
            obj.cfg = DetectorConfig(**known)
        return obj

    # -------------------------------------------------------------- internals
    def _advance(self, frontier: datetime, detected_at: datetime) -> pl.DataFrame:
        cfg = self.cfg
        lo = self.frontier or datetime(1970, 1, 1, tzinfo=UTC)
        newest = self.pending["ts"].max()
        if frontier == FAR_FUTURE or newest is None or newest < frontier:
            closed, self.pending = self.pending, self.pending.clear()
        else:
            is_closed = pl.col("ts") < frontier
            closed = self.pending.filter(is_closed)
            self.pending = self.pending.filter(~is_closed)
        if closed.height:
            # aggregate in quote currency first, convert the (few) bars to USD after; bars are
            # grouped on integer bar numbers (epoch ms // 30 000), not truncated datetimes
            bar_ms = int(BAR.total_seconds() * 1000)
            raw = (
                closed.lazy()
                .group_by(*MARKET, (pl.col("ts").dt.epoch("ms") // bar_ms).alias("bar"))
                .agg(
                    (pl.col("price") * pl.col("amount")).sum().alias("notional"),
                    pl.col("amount").sum(),
                    pl.len().cast(pl.UInt32).alias("n"),
                )
                .with_columns((pl.col("bar") * bar_ms).cast(TS).alias("bucket"))
                .collect()
                .with_columns(  # unified symbols: BASE/QUOTE
                    pl.col("symbol").str.split("/").list.first().alias("base"),
                    pl.col("symbol").str.split("/").list.get(1, null_on_oob=True).alias("quote"),
                )
                .with_columns((pl.col("notional") * usd_rate(cfg)).alias("usd"))
            )
            whales = (
                whale_trades(closed, cfg)
                .group_by(*MARKET, (pl.col("ts").dt.epoch("ms") // bar_ms).alias("bar"))
                .agg(pl.col("usd").sum().alias("whale_usd"))
            )
            new_bars = raw.join(whales, on=[*MARKET, "bar"], how="left").with_columns(
                (pl.col("usd") - pl.col("whale_usd").fill_null(0.0)).alias("usd_ex")
            )
            self.bars = (
                pl.concat([self.bars, new_bars.select(list(_BAR_SCHEMA)).cast(_BAR_SCHEMA)])
                .group_by("exchange", "symbol", "base", "bucket")
                .agg(pl.col("usd", "usd_ex", "amount", "n").sum())
                .select(list(_BAR_SCHEMA))
                .sort(*MARKET, "bucket")
            )
            # truncating the first 30 s bar to 60 s == truncating the first trade to 60 s
            first = new_bars.group_by(MARKET).agg(
                pl.col("bucket").min().dt.truncate("60s").alias("start")
            )
            self.starts = (
                pl.concat([self.starts, first])
                .group_by(MARKET)
                .agg(pl.col("start").min())
                .sort(MARKET)
            )
        hi = frontier if frontier != FAR_FUTURE else self._end()
        out: list[pl.DataFrame] = []
        if hi is not None and hi > lo and self.bars.height:
            # the grid never starts before what the bars still hold
            starts = self.starts
            if self.keep_from is not None:
                starts = starts.with_columns(
                    pl.max_horizontal("start", pl.lit(self.keep_from).cast(TS)).alias("start")
                )
            if cfg.active("volume_spike"):
                out.append(volume_spikes(self.bars, starts, cfg, lo, hi, detected_at))
            if cfg.active("divergence"):
                out.append(divergences(self.bars, cfg, lo, hi, detected_at))
            if cfg.active("pump_and_dump"):
                out.append(pumps(self.bars, starts, cfg, lo, hi, detected_at))
        if cfg.active("wash_trading"):
            out.append(self._wash(closed, frontier, detected_at))
        else:
            self.tail = self.tail.clear()
        self.frontier = frontier
        if frontier != FAR_FUTURE:
            cut = (lo - self.retention).replace(second=0, microsecond=0)
            self.keep_from = cut
            self.bars = self.bars.filter(pl.col("bucket") >= cut)
        return _concat(out)

    def _end(self) -> datetime | None:
        if self.bars.height == 0:
            return None
        # far enough past the last bar for every window rule to decide
        return self.bars["bucket"].max() + timedelta(minutes=self.cfg.pump_window_min + 2)

    def _wash(
        self, closed: pl.DataFrame, frontier: datetime, detected_at: datetime
    ) -> pl.DataFrame:
        cfg = self.cfg
        pool = pl.concat([self.tail, closed])
        runs = wash_runs(pool, cfg)
        gap = timedelta(seconds=cfg.wash_gap_s)
        if runs.height:
            runs = runs.filter(pl.col("last_ts") + gap < frontier)
        alerts = wash_alerts(runs, cfg, detected_at)
        if alerts.height:
            alerts = alerts.filter(~pl.col("alert_id").is_in(list(self.emitted_wash)))
        for aid, t in zip(alerts["alert_id"], alerts["event_time"], strict=True):
            self.emitted_wash[aid] = t
        span = timedelta(minutes=10)
        if frontier != FAR_FUTURE:
            self.tail = pool.filter(pl.col("ts") >= frontier - span)
            self.emitted_wash = {
                a: t for a, t in self.emitted_wash.items() if t >= frontier - 2 * span
            }
        return alerts


def _trade_schema() -> dict[str, pl.DataType]:
    from sentinance_assets.lib.schemas import RAW_TRADES

    return {c: RAW_TRADES.columns[c] for c in _TRADE_COLS}


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return ALERTS.empty()
    return pl.concat(frames).unique("alert_id", keep="first", maintain_order=True)


def sort_alerts(alerts: pl.DataFrame) -> pl.DataFrame:
    return alerts.sort("event_time", "type", "exchange", "symbol")


def detect_all(
    trades: pl.DataFrame, cfg: DetectorConfig | None = None, detected_at: datetime | None = None
) -> pl.DataFrame:
    """Batch detection: the streaming engine fed everything at once, then flushed."""
    detected_at = detected_at or datetime.now(UTC)
    det = StreamingDetector(cfg)  # one push holds everything: no need to sort by time
    # buffer everything, then evaluate every window rule once at the flush
    found = _concat([det.push(trades, detected_at, advance=False), det.flush(detected_at)])
    return sort_alerts(found)


def alert_summary(alerts: pl.DataFrame) -> dict[str, int]:
    return {t: int(n) for t, n in alerts.group_by("type").len().sort("type").iter_rows()}


BAR_INPUT = {
    "exchange": pl.String,
    "symbol": pl.String,
    "bucket": TS,
    "usd": pl.Float64,
    "amount": pl.Float64,
    "n": pl.UInt32,
}


def engine_bars(bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Input bars (:data:`BAR_INPUT`) as the engine holds them, and each market's start."""
    b = (
        bars.select(list(BAR_INPUT))
        .cast(BAR_INPUT)
        .with_columns(
            pl.col("symbol").str.split("/").list.first().alias("base"),
            pl.col("usd").alias("usd_ex"),
            pl.col("n").fill_null(0),
        )
        .select(list(_BAR_SCHEMA))
        .sort(*MARKET, "bucket")
    )
    starts = b.group_by(MARKET).agg(pl.col("bucket").min().dt.truncate("60s").alias("start"))
    return b, starts


def detect_bars(
    bars: pl.DataFrame, cfg: DetectorConfig | None = None, detected_at: datetime | None = None
) -> pl.DataFrame:
    """The window rules (volume spike, divergence, pump-and-dump) over pre-aggregated bars:
    ``exchange, symbol, bucket`` (start, on a 30 s boundary), ``usd`` (USD volume),
    ``amount`` (base volume) and ``n`` (trade count; null: unknown, and then no volume
    spike can fire, since the count conditions cannot be checked). For recorded 1-minute
    candles, which have no individual trades: whale and wash trading need trades, and whale
    prints cannot be excluded from the spike volume."""
    cfg = cfg or DetectorConfig()
    detected_at = detected_at or datetime.now(UTC)
    if bars.height == 0:
        return ALERTS.empty()
    b, starts = engine_bars(bars)
    lo = datetime(1970, 1, 1, tzinfo=UTC)
    hi = b["bucket"].max() + timedelta(minutes=cfg.pump_window_min + 2)
    out = []
    if cfg.active("volume_spike"):
        out.append(volume_spikes(b, starts, cfg, lo, hi, detected_at))
    if cfg.active("divergence"):
        out.append(divergences(b, cfg, lo, hi, detected_at))
    if cfg.active("pump_and_dump"):
        out.append(pumps(b, starts, cfg, lo, hi, detected_at))
    return sort_alerts(_concat(out))
