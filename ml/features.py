"""Per-symbol features and forward-return targets from hourly candles.

Everything here is a pure function of a candles frame (``symbol, ts, open, high, low, close,
volume``; ``ts`` is the bar's open time, UTC). Two rules keep the forecaster honest:

* a feature at row ``t`` uses bars ``<= t`` only (the bar's close is known when the row is
  used), so perturbing any later bar leaves it unchanged;
* a target at row ``t`` uses bars ``> t`` only: ``target_<h>`` is the sum of the next ``k`` log
  returns, i.e. ``ln(close[t+k] / close[t])``, and ``rv_target_<h>`` the realized volatility
  over the same bars, ``sqrt(sum of the next k squared log returns)``.

``ewma_var`` is the RiskMetrics (J.P. Morgan 1996) variance forecast for the next bar made at
``t``: ``s2[t] = lambda * s2[t-1] + (1 - lambda) * r[t]^2`` with ``lambda = 0.94``, started at the
first squared return of the segment. ``sqrt(k * ewma_var)`` is the EWMA baseline for
``rv_target_<h>``; ``ewma_vol = sqrt(ewma_var)`` is also a model feature.

Missing bars are never filled silently (see DESIGN.md, freqtrade issue 7407): a jump in ``ts``
larger than one bar starts a new *segment*, and every window (rolling features, targets and the
forecaster's lookback sequences) stays inside one ``(symbol, segment)`` run of consecutive bars.
Rows at the start of each segment that lack enough history for every feature are dropped;
rows at the end keep null targets (they are the rows a live forecast is made from).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

import polars as pl

#: Forecast horizons: label -> number of bars ahead.
HORIZONS: dict[str, int] = {"1h": 1, "4h": 4, "24h": 24}

#: Rolling window (bars) for realized volatility and the volume z-score.
VOL_WINDOW = 24
#: RiskMetrics decay of the EWMA variance (daily data in the original; used per bar here).
EWMA_LAMBDA = 0.94
#: Column of the EWMA one-bar variance forecast (a baseline input, not a model feature).
EWMA_VAR = "ewma_var"

#: Window (bars) of the RSI-like momentum oscillator (simple averages, Cutler's RSI).
RSI_WINDOW = 14

CANDLE_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")


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


def build_features(
    candles: pl.DataFrame,
    horizons: Mapping[str, int] = HORIZONS,
    bar: timedelta = timedelta(hours=1),
    vol_window: int = VOL_WINDOW,
    rsi_window: int = RSI_WINDOW,
) -> tuple[pl.DataFrame, list[str]]:
    """Build model features and forward-return targets, per symbol, ordered by ``symbol, ts``.

    Args:
        candles: one row per ``(symbol, ts)``; several symbols allowed. Pass candles of a single
            exchange (the caller picks it): duplicate ``(symbol, ts)`` raise.
        horizons: label -> bars ahead; one ``target_<label>`` and ``ret_past_<label>`` each.
        bar: bar length; a larger step between consecutive ``ts`` starts a new segment.
        vol_window: bars in the realized-volatility and volume z-score windows.
        rsi_window: bars in the RSI-like oscillator.

    Returns:
        ``(frame, feature_cols)``. ``frame`` has ``symbol, ts, segment``, the candle ``close``,
        the feature columns, ``ret_past_<h>`` and ``target_<h>`` (null where the future is not
        observed inside the segment), ``rv_target_<h>`` likewise, and ``ewma_var``. Features
        are never null; warm-up rows are dropped.

    Features (all scale-free, so one model can serve several symbols):
        ``log_ret`` 1-bar log return; ``ret_past_<h>`` trailing k-bar log return for horizons
        with k > 1; ``rv_<w>`` realized volatility ``sqrt(sum r^2)`` over ``w`` bars;
        ``volume_z_<w>`` z-score of ``log1p(volume)`` against its trailing ``w`` bars (log
        because trade volume is heavy-tailed); ``rsi_<w>`` mean gain / (mean gain + mean loss)
        mapped to [-1, 1]; ``hl_range`` ``ln(high/low)`` of the bar; ``hour_sin``/``hour_cos``
        hour of day of the bar; ``ewma_vol`` RiskMetrics EWMA volatility (lambda 0.94).
    """
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise ValueError(f"candles lack columns {missing}")
    if not horizons or any(int(k) < 1 for k in horizons.values()):
        raise ValueError(f"horizons must map labels to positive bar counts, got {horizons}")
    ts_type = candles.schema["ts"]
    if not isinstance(ts_type, pl.Datetime):
        raise ValueError(f"ts must be a Datetime column, got {ts_type}")
    df = candles.select(CANDLE_COLUMNS).with_columns(
        # naive timestamps are taken as UTC (the project convention), aware ones converted
        pl.col("ts").dt.convert_time_zone("UTC")
        if ts_type.time_zone
        else pl.col("ts").dt.replace_time_zone("UTC"),
        *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")],
    )
    dup = df.group_by("symbol", "ts").len().filter(pl.col("len") > 1)
    if dup.height:
        raise ValueError(
            f"{dup.height} duplicate (symbol, ts) rows, e.g. {dup.row(0)[:2]}; "
            "pass candles of one exchange and deduplicate first"
        )
    if df.select((pl.col("close") <= 0).any() | (pl.col("low") <= 0).any()).item():
        raise ValueError("non-positive prices: log returns are undefined")

    df = df.sort("symbol", "ts")
    seg = ["symbol", "segment"]
    df = df.with_columns(
        (pl.col("ts").diff().over("symbol").fill_null(bar) != bar)
        .cum_sum()
        .over("symbol")
        .cast(pl.Int32)
        .alias("segment")
    )

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
    feats: list[pl.Expr] = [
        ret.pow(2)
        .rolling_sum(vol_window, min_samples=vol_window)
        .over(seg)
        .sqrt()
        .alias(f"rv_{vol_window}"),
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
        ret.pow(2).rolling_sum(k, min_samples=k).shift(-k).over(seg).sqrt().alias(vol_target_col(h))
        for h, k in horizons.items()
    ]
    df = df.with_columns(*feats, *past, *targets, *vol_targets)
    df = df.with_columns(pl.col(EWMA_VAR).sqrt().alias("ewma_vol"))

    feature_cols = (
        ["log_ret"]
        + [past_return_col(h) for h, k in horizons.items() if k > 1]
        + [f"rv_{vol_window}", f"volume_z_{vol_window}", f"rsi_{rsi_window}"]
        + ["hl_range", "hour_sin", "hour_cos", "ewma_vol"]
    )
    past_cols = [past_return_col(h) for h in horizons]
    keep = ["symbol", "ts", "segment", "close", *feature_cols]
    keep += [c for c in past_cols if c not in keep]
    keep += [EWMA_VAR]
    keep += [target_col(h) for h in horizons]
    keep += [vol_target_col(h) for h in horizons]
    out = df.select(keep).drop_nulls(
        subset=list(dict.fromkeys([*feature_cols, *past_cols, EWMA_VAR]))
    )
    return out, feature_cols
