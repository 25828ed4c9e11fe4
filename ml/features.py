"""Per-symbol features and forward-return targets from hourly candles.

Everything here is a pure function of a candles frame (``symbol, ts, open, high, low, close,
volume``; ``ts`` is the bar's open time, UTC). Two rules keep the forecaster honest:

* a feature at row ``t`` uses bars ``<= t`` only (the bar's close is known when the row is
  used), so perturbing any later bar leaves it unchanged;
* a target at row ``t`` uses bars ``> t`` only: ``target_<h>`` is the sum of the next ``k`` log
  returns, i.e. ``ln(close[t+k] / close[t])``, and ``rv_target_<h>`` the realized volatility
  over the same bars, ``sqrt(sum of the next k squared log returns)``.

**Realized variance of a bar.** When the candles carry ``realized_var`` (the sum of squared
intraday log returns inside the bar, e.g. of its 1-minute bars: the lake's finer data), a bar's
variance is that; otherwise, and for bars where it is null, it is the bar's squared log return.
Intraday variance is the far less noisy measure of the same quantity (Andersen & Bollerslev
1998); ``intraday_var_rows`` counts the bars that had it, so an evaluation can say which it
used. The volatility targets, ``rv_<w>`` and the HAR inputs use it; ``ewma_var`` stays the
RiskMetrics recursion on squared returns, as published.

**HAR inputs** (Corsi 2009): ``har_1``, ``har_24`` and ``har_168`` are the mean bar variance
over the last 1, 24 and 168 bars (hour, day, week). The weekly mean needs only the 24-bar
feature warm-up, so it is a partial mean in a segment's first week rather than a longer
warm-up: the forecaster's three-day minimum holds. They are the inputs of the HAR-RV baseline
(:mod:`ml.har`), and ``rv_168`` (the weekly realized volatility) is a model feature.

``ewma_var`` is the RiskMetrics (J.P. Morgan 1996) variance forecast for the next bar made at
``t``: ``s2[t] = lambda * s2[t-1] + (1 - lambda) * r[t]^2`` with ``lambda = 0.94``, started at the
first squared return of the segment. ``sqrt(k * ewma_var)`` is the EWMA baseline for
``rv_target_<h>``; ``ewma_vol = sqrt(ewma_var)`` is also a model feature.

Real candles are not clean (:func:`inspect_candles` finds and counts every defect):

* **missing bars**: the series lives on the regular grid of ``bar`` (hourly), but some slots
  have no bar. Nothing is filled: no price is ever invented;
* **duplicated bars** (the same ``symbol, ts`` twice): the first row in input order is kept;
  when the copies disagree by more than :data:`DUPLICATE_TOLERANCE` (relative) on any of
  open/high/low/close/volume, nobody can say which is right and the bar is flagged;
* **maintenance** (exchange down): bars with ``open = high = low = close`` and volume 0,
  alone or in runs. Such a bar records no trade, only the last price carried forward, so it is
  flagged: its zero return and zero range would teach the model a calm that never happened;
* **implausible bars**: a price that is missing, not finite or not positive, a volume that is
  missing, not finite or negative, ``high < low``, or a high more than
  :data:`IMPLAUSIBLE_RATIO` times the close or a low below the close divided by it (a 75 %
  move inside one bar of a liquid market is a broken print, not a price);
* **off-grid bars**: a ``ts`` that is not a whole number of bars from the epoch.

A flagged bar is treated like a missing one. Every window (rolling features, targets and the
forecaster's look-back sequences) stays inside one ``(symbol, segment)`` run of consecutive
usable bars: a gap or a flagged bar starts a new segment. Rows at the start of each segment that
lack enough history for every feature are dropped (counted: ``warmup_rows`` for the first
segment, ``masked_feature_rows`` after a gap or flag); targets whose horizon would cross a gap
or a flag are null (counted per horizon); rows at the very end keep null targets (they are the
rows a live forecast is made from). No feature of a returned row is null, NaN or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

#: Forecast horizons: label -> number of bars ahead.
HORIZONS: dict[str, int] = {"1h": 1, "4h": 4, "24h": 24}

#: Rolling window (bars) for realized volatility and the volume z-score.
VOL_WINDOW = 24
#: RiskMetrics decay of the EWMA variance (daily data in the original; used per bar here).
EWMA_LAMBDA = 0.94
#: Column of the EWMA one-bar variance forecast (a baseline input, not a model feature).
EWMA_VAR = "ewma_var"
#: Optional candle column: the bar's realized variance from intraday returns (module docstring).
REALIZED_VAR = "realized_var"
#: HAR lags in bars (hour, day, week) -> the column holding the mean bar variance over them.
HAR_LAGS: dict[str, int] = {"har_1": 1, "har_24": 24, "har_168": 168}
#: The weekly realized-volatility feature of the LSTM (the HAR weekly term, as a volatility).
WEEK_WINDOW = 168

#: Window (bars) of the RSI-like momentum oscillator (simple averages, Cutler's RSI).
RSI_WINDOW = 14

#: A bar whose high exceeds this many times its close, or whose low is below the close divided
#: by it, is implausible: a move of 75 % and more inside one hourly bar of a major market.
#: Chosen from what a bar can be, not from any data set: the largest hourly moves of BTC and ETH
#: (March 2020, May 2021) stayed well inside a factor of 2.
IMPLAUSIBLE_RATIO = 4.0
#: Duplicated bars whose values differ by at most this (relative) are one bar written twice
#: (e.g. once rounded to cents); beyond it they conflict and the bar is flagged.
DUPLICATE_TOLERANCE = 1e-3

CANDLE_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")

#: The counts of :class:`CandleQuality`, in order (see :func:`inspect_candles`).
QUALITY_COUNTS = (
    "rows",
    "duplicate_rows",
    "conflicting_duplicates",
    "off_grid_bars",
    "expected_bars",
    "present_bars",
    "missing_bars",
    "gaps",
    "maintenance_runs",
    "maintenance_bars",
    "implausible_bars",
    "flagged_bars",
    "usable_bars",
    "segments",
    "intraday_var_rows",
)


def target_col(label: str) -> str:
    """Column holding the forward log return for horizon ``label`` (e.g. ``target_4h``)."""
    return f"target_{label}"


def vol_target_col(label: str) -> str:
    """Column holding the forward realized volatility for horizon ``label`` (``rv_target_4h``)."""
    return f"rv_target_{label}"


def past_return_col(label: str) -> str:
    """Column holding the trailing log return over the horizon's number of bars.

    It is what the ``persistence`` baseline predicts, so it is kept for every horizon even when
    it is not a model feature (``ret_past_1h`` duplicates ``log_ret``).
    """
    return f"ret_past_{label}"


def masked_target_count(label: str) -> str:
    """Count of rows whose ``label`` target is masked because its horizon crosses a gap."""
    return f"masked_target_{label}"


@dataclass
class CandleQuality:
    """What was found in the candles and what it cost, one row per symbol.

    ``table`` has ``symbol`` and an integer column per count: :data:`QUALITY_COUNTS`, then the
    feature counts :func:`build_feature_set` adds (``warmup_rows``, ``masked_feature_rows``,
    ``non_finite_rows``, ``feature_rows``, ``masked_target_<h>``) and any count added with
    :meth:`with_counts` (the forecaster's ``masked_lookback_rows``).
    """

    table: pl.DataFrame

    def with_counts(self, name: str, per_symbol: Mapping[str, int]) -> CandleQuality:
        """A copy with one more count (0 for symbols not in ``per_symbol``)."""
        col = pl.col("symbol").replace_strict(dict(per_symbol), default=0, return_dtype=pl.Int64)
        return CandleQuality(self.table.with_columns(col.alias(name)))

    def totals(self) -> dict[str, int]:
        """Every count summed over symbols."""
        if self.table.is_empty():
            return {c: 0 for c in self.table.columns if c != "symbol"}
        sums = self.table.drop("symbol").sum().row(0, named=True)
        return {k: int(v or 0) for k, v in sums.items()}

    def per_symbol(self) -> dict[str, dict[str, int]]:
        return {
            r.pop("symbol"): {k: int(v) for k, v in r.items()}
            for r in self.table.sort("symbol").iter_rows(named=True)
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"total": {...}, "per_symbol": {symbol: {...}}}``, ready for JSON."""
        return {"total": self.totals(), "per_symbol": self.per_symbol()}


@dataclass
class FeatureSet:
    """Outcome of :func:`build_feature_set`."""

    frame: pl.DataFrame
    feature_cols: list[str]
    quality: CandleQuality


def _normalise(candles: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise ValueError(f"candles lack columns {missing}")
    ts_type = candles.schema["ts"]
    if not isinstance(ts_type, pl.Datetime):
        raise ValueError(f"ts must be a Datetime column, got {ts_type}")
    extra = [REALIZED_VAR] if REALIZED_VAR in candles.columns else []
    return candles.select(*CANDLE_COLUMNS, *extra).with_columns(
        # naive timestamps are taken as UTC (the project convention), aware ones converted
        pl.col("ts").dt.convert_time_zone("UTC")
        if ts_type.time_zone
        else pl.col("ts").dt.replace_time_zone("UTC"),
        pl.col("symbol").cast(pl.String),
        *[pl.col(c).cast(pl.Float64) for c in (*PRICE_COLUMNS, "volume", *extra)],
    )


def _implausible() -> pl.Expr:
    h, lo, c, v = (pl.col(x) for x in ("high", "low", "close", "volume"))
    prices_ok = pl.all_horizontal(
        [(pl.col(x).is_finite() & (pl.col(x) > 0)).fill_null(False) for x in PRICE_COLUMNS]
    )
    volume_ok = (v.is_finite() & (v >= 0)).fill_null(False)
    shape_ok = (h >= lo) & (h <= IMPLAUSIBLE_RATIO * c) & (lo >= c / IMPLAUSIBLE_RATIO)
    return ~(prices_ok & volume_ok & shape_ok.fill_null(False))


def inspect_candles(
    candles: pl.DataFrame, bar: timedelta = timedelta(hours=1)
) -> tuple[pl.DataFrame, CandleQuality]:
    """Find the defects of the module docstring; returns ``(bars, quality)``.

    ``bars`` are the usable bars, one per ``(symbol, ts)``, sorted, with a ``segment`` column
    (runs of consecutive usable bars per symbol, numbered from 0); ``quality`` counts, per
    symbol, :data:`QUALITY_COUNTS`.
    """
    df = _normalise(candles).with_row_index("_i")
    bar_ms = int(bar.total_seconds() * 1000)
    values = [*PRICE_COLUMNS, "volume"]
    key = ["symbol", "ts"]
    # duplicates: the first row in input order is the bar; copies that disagree flag it
    firsts = {c: pl.col(c).first().over(key) for c in values}
    differs = [
        ((pl.col(c) - first).abs() > DUPLICATE_TOLERANCE * first.abs()).fill_null(
            pl.col(c).is_null() != first.is_null()
        )
        for c, first in firsts.items()
    ]
    df = df.with_columns(
        pl.len().over(key).alias("_copies"),
        pl.any_horizontal(differs).any().over(key).alias("_conflict"),
    )
    bars = df.sort("_i").unique(key, keep="first", maintain_order=True).sort(key)
    flat = pl.all_horizontal([pl.col(c) == pl.col("close") for c in PRICE_COLUMNS])
    maint = (flat & (pl.col("volume") == 0)).fill_null(False)
    off_grid = pl.col("ts").dt.epoch("ms") % bar_ms != 0
    bars = bars.with_columns(
        off_grid.alias("_off_grid"),
        maint.alias("_maint"),
        _implausible().alias("_implausible"),
    ).with_columns(
        (
            pl.col("_off_grid") | pl.col("_maint") | pl.col("_implausible") | pl.col("_conflict")
        ).alias("_flagged")
    )
    # a maintenance run starts at a maintenance bar whose previous grid slot is not one
    prev_maint = pl.col("_maint").shift(1).over("symbol").fill_null(False) & (
        pl.col("ts").diff().over("symbol") == bar
    )
    on_grid = bars.filter(~pl.col("_off_grid"))
    step = pl.col("ts").diff().over("symbol")
    grid = on_grid.group_by("symbol").agg(
        ((pl.col("ts").max() - pl.col("ts").min()).dt.total_milliseconds() // bar_ms + 1).alias(
            "expected_bars"
        ),
        pl.len().alias("present_bars"),
        (step > bar).sum().alias("gaps"),
    )
    usable = bars.filter(~pl.col("_flagged")).drop(
        "_i", "_copies", "_conflict", "_off_grid", "_maint", "_implausible", "_flagged"
    )
    usable = usable.with_columns(
        (pl.col("ts").diff().over("symbol").fill_null(bar) != bar)
        .cum_sum()
        .over("symbol")
        .cast(pl.Int32)
        .alias("segment")
    )
    counts = df.group_by("symbol").agg(
        pl.len().alias("rows"), (pl.len() - pl.col("ts").n_unique()).alias("duplicate_rows")
    )
    flags = (
        bars.with_columns(prev_maint.alias("_prev_maint"))
        .group_by("symbol")
        .agg(
            (pl.col("_conflict") & (pl.col("_copies") > 1)).sum().alias("conflicting_duplicates"),
            pl.col("_off_grid").sum().alias("off_grid_bars"),
            (pl.col("_maint") & ~pl.col("_prev_maint")).sum().alias("maintenance_runs"),
            pl.col("_maint").sum().alias("maintenance_bars"),
            pl.col("_implausible").sum().alias("implausible_bars"),
            pl.col("_flagged").sum().alias("flagged_bars"),
        )
    )
    has_intraday = (
        pl.col(REALIZED_VAR).is_finite() & (pl.col(REALIZED_VAR) >= 0)
        if REALIZED_VAR in usable.columns
        else pl.lit(False)
    )
    segs = usable.group_by("symbol").agg(
        pl.len().alias("usable_bars"),
        pl.col("segment").n_unique().alias("segments"),
        has_intraday.fill_null(False).sum().alias("intraday_var_rows"),
    )
    table = (
        counts.join(flags, on="symbol", how="left")
        .join(grid, on="symbol", how="left")
        .join(segs, on="symbol", how="left")
        .with_columns((pl.col("expected_bars") - pl.col("present_bars")).alias("missing_bars"))
        .select("symbol", *[pl.col(c).fill_null(0).cast(pl.Int64) for c in QUALITY_COUNTS])
        .sort("symbol")
    )
    return usable, CandleQuality(table)


def build_features(
    candles: pl.DataFrame, horizons: Mapping[str, int] = HORIZONS
) -> tuple[pl.DataFrame, list[str]]:
    """``(frame, feature_cols)`` of :func:`build_feature_set` with the default windows
    (without the quality counts)."""
    fs = build_feature_set(candles, horizons)
    return fs.frame, fs.feature_cols


def build_feature_set(
    candles: pl.DataFrame,
    horizons: Mapping[str, int] = HORIZONS,
    bar: timedelta = timedelta(hours=1),
    vol_window: int = VOL_WINDOW,
    rsi_window: int = RSI_WINDOW,
) -> FeatureSet:
    """Build model features and forward-return targets, per symbol, ordered by ``symbol, ts``.

    Args:
        candles: one row per ``(symbol, ts)`` of one exchange; several symbols allowed.
            Duplicated, missing, maintenance and implausible bars are handled as the module
            docstring says (:func:`inspect_candles`) and counted in ``quality``.
        horizons: label -> bars ahead; one ``target_<label>`` and ``ret_past_<label>`` each.
        bar: bar length; a larger step between consecutive usable bars starts a new segment.
        vol_window: bars in the realized-volatility and volume z-score windows.
        rsi_window: bars in the RSI-like oscillator.

    Returns:
        :class:`FeatureSet`. Its ``frame`` has ``symbol, ts, segment``, the candle ``close``,
        the feature columns, ``ret_past_<h>`` and ``target_<h>`` (null where the future is not
        observed inside the segment), ``rv_target_<h>`` likewise, and ``ewma_var``. Features
        are never null, NaN or infinite; warm-up rows are dropped.

    Features (all scale-free, so one model can serve several symbols):
        ``log_ret`` 1-bar log return; ``ret_past_<h>`` trailing k-bar log return for horizons
        with k > 1; ``rv_<w>`` realized volatility ``sqrt(sum r^2)`` over ``w`` bars;
        ``rv_168`` the weekly one (``sqrt(168 * mean r^2)``, a partial mean in a segment's
        first week); ``r^2`` is the bar variance of the module docstring;
        ``volume_z_<w>`` z-score of ``log1p(volume)`` against its trailing ``w`` bars (log
        because trade volume is heavy-tailed); ``rsi_<w>`` mean gain / (mean gain + mean loss)
        mapped to [-1, 1]; ``hl_range`` ``ln(high/low)`` of the bar; ``hour_sin``/``hour_cos``
        hour of day of the bar; ``ewma_vol`` RiskMetrics EWMA volatility (lambda 0.94).
    """
    if not horizons or any(int(k) < 1 for k in horizons.values()):
        raise ValueError(f"horizons must map labels to positive bar counts, got {horizons}")
    df, quality = inspect_candles(candles, bar)
    seg = ["symbol", "segment"]

    ret = pl.col("log_ret")
    lv = pl.col("close").log()
    up = pl.when(ret > 0).then(ret).otherwise(0.0)
    down = pl.when(ret < 0).then(-ret).otherwise(0.0)
    vol_mean = pl.col("_lvol").rolling_mean(vol_window, min_samples=vol_window).over(seg)
    vol_std = pl.col("_lvol").rolling_std(vol_window, min_samples=vol_window).over(seg)
    gain = up.rolling_mean(rsi_window, min_samples=rsi_window).over(seg)
    loss = down.rolling_mean(rsi_window, min_samples=rsi_window).over(seg)
    hour = pl.col("ts").dt.hour().cast(pl.Float64) + pl.col("ts").dt.minute() / 60.0

    df = df.with_columns(
        (lv - lv.shift(1)).over(seg).alias("log_ret"),
        pl.col("volume").log1p().alias("_lvol"),
    )
    squared = ret.pow(2)
    if REALIZED_VAR in df.columns:
        intraday = pl.col(REALIZED_VAR)
        usable_intraday = intraday.is_finite() & (intraday >= 0)
        squared = pl.when(usable_intraday.fill_null(False)).then(intraday).otherwise(squared)
    df = df.with_columns(squared.alias("_var"))
    var = pl.col("_var")
    feats: list[pl.Expr] = [
        var.rolling_sum(vol_window, min_samples=vol_window)
        .over(seg)
        .sqrt()
        .alias(f"rv_{vol_window}"),
        (var.rolling_mean(WEEK_WINDOW, min_samples=vol_window).over(seg) * WEEK_WINDOW)
        .sqrt()
        .alias(f"rv_{WEEK_WINDOW}"),
        *[
            var.rolling_mean(n, min_samples=min(n, vol_window)).over(seg).alias(name)
            for name, n in HAR_LAGS.items()
        ],
        pl.when(vol_std > 1e-12)
        .then((pl.col("_lvol") - vol_mean) / vol_std)
        .otherwise(pl.when(vol_std.is_not_null()).then(0.0))
        .alias(f"volume_z_{vol_window}"),
        pl.when(gain + loss > 0)
        .then(2.0 * gain / (gain + loss) - 1.0)
        .otherwise(pl.when(gain.is_not_null()).then(0.0))
        .alias(f"rsi_{rsi_window}"),
        (pl.col("high") / pl.col("low")).log().alias("hl_range"),
        (hour * (2 * math.pi / 24)).sin().alias("hour_sin"),
        (hour * (2 * math.pi / 24)).cos().alias("hour_cos"),
        ret.pow(2).ewm_mean(alpha=1.0 - EWMA_LAMBDA, adjust=False).over(seg).alias(EWMA_VAR),
    ]
    past = [(lv - lv.shift(k)).over(seg).alias(past_return_col(h)) for h, k in horizons.items()]
    targets = [(lv.shift(-k) - lv).over(seg).alias(target_col(h)) for h, k in horizons.items()]
    # sum of the next k squared returns: a backward rolling sum ending at t+k, shifted back
    vol_targets = [
        var.rolling_sum(k, min_samples=k).shift(-k).over(seg).sqrt().alias(vol_target_col(h))
        for h, k in horizons.items()
    ]
    df = df.with_columns(*feats, *past, *targets, *vol_targets)
    df = df.with_columns(pl.col(EWMA_VAR).sqrt().alias("ewma_vol"))

    feature_cols = (
        ["log_ret"]
        + [past_return_col(h) for h, k in horizons.items() if k > 1]
        + [f"rv_{vol_window}", f"rv_{WEEK_WINDOW}", f"volume_z_{vol_window}"]
        + [f"rsi_{rsi_window}", "hl_range", "hour_sin", "hour_cos", "ewma_vol"]
    )
    past_cols = [past_return_col(h) for h in horizons]
    target_cols = [target_col(h) for h in horizons] + [vol_target_col(h) for h in horizons]
    keep = ["symbol", "ts", "segment", "close", *feature_cols]
    keep += [c for c in past_cols if c not in keep]
    keep += [EWMA_VAR, *HAR_LAGS, *target_cols]
    inputs = list(dict.fromkeys([*feature_cols, *past_cols, EWMA_VAR, *HAR_LAGS]))
    df = df.select(keep).with_columns(
        # a target that is not finite is unknown, never a number to learn or score on
        pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c)
        for c in target_cols
    )
    complete = pl.all_horizontal(pl.col(inputs).is_not_null())
    finite = pl.all_horizontal(pl.col(inputs).is_finite())
    last_segment = pl.col("segment") == pl.col("segment").max().over("symbol")
    first_segment = pl.col("segment") == 0
    counts = df.group_by("symbol").agg(
        (~complete & first_segment).sum().alias("warmup_rows"),
        (~complete & ~first_segment).sum().alias("masked_feature_rows"),
        (complete & ~finite).sum().alias("non_finite_rows"),
        (complete & finite).sum().alias("feature_rows"),
        *[
            (complete & finite & pl.col(target_col(h)).is_null() & ~last_segment)
            .sum()
            .alias(masked_target_count(h))
            for h in horizons
        ],
    )
    out = df.filter(complete & finite)
    table = quality.table.join(counts, on="symbol", how="left").with_columns(
        pl.exclude("symbol").fill_null(0).cast(pl.Int64)
    )
    return FeatureSet(out, feature_cols, CandleQuality(table))
