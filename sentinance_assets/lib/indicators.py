"""Technical indicators as polars expressions: the one home for the indicator math.

The dbt Python model ``marts.indicators`` calls :func:`compute_indicators` on the ``candles``
mart; tests and benchmarks import the same functions. Definitions follow TA-Lib's conventions so
numbers can be checked against it:

* SMA(n): plain rolling mean; the first ``n - 1`` bars are NULL.
* EMA(n): seeded with the SMA of the first ``n`` values (at bar ``n - 1``), then
  ``ema = ema_prev + alpha * (x - ema_prev)`` with ``alpha = 2 / (n + 1)``.
* RSI(14), Wilder: gains/losses of close-to-close changes; the averages are seeded with the mean
  of the first 14 gains/losses (bar 14) and then smoothed with ``alpha = 1 / 14``;
  ``rsi = 100 * avg_gain / (avg_gain + avg_loss)``. Where both averages are 0 (a flat start)
  RSI is undefined and NULL (TA-Lib writes 0 there).
* MACD(12, 26, 9): EMA12 - EMA26, signal = EMA9 of MACD (SMA-seeded on the first 9 MACD values),
  histogram = MACD - signal. As in TA-Lib's ``MACD``, the fast EMA is seeded on the bar where the
  slow one starts (with the SMA of the 12 closes ending there), so MACD is defined from bar 25 and
  the signal/histogram from bar 33, and the values equal TA-Lib's exactly.
* Bollinger(20, 2): middle = SMA20, bands = middle +- 2 * population std (ddof = 0).
* ATR(14), Wilder: true range ``max(h - l, |h - c_prev|, |l - c_prev|)`` (undefined on the first
  bar), seeded with the mean of the first 14 true ranges (bar 14), then ``alpha = 1 / 14``.
* log_return: ``ln(close / close_prev)``.
* realized_vol: rolling std (ddof = 1) of log returns over 20 bars, annualised with
  ``sqrt(bars per 365-day year)`` of the bar's timeframe (NULL for an unknown timeframe).

Warm-up rows are NULL. Every expression assumes rows sorted by time within a series and no
interior NULLs in the inputs; :func:`compute_indicators` applies them per contiguous *segment*
of usable bars of a ``(exchange, symbol, timeframe)`` series with ``.over``:

* a bar flagged ``implausible`` or ``maintenance`` in the candles' ``quality`` (or with a
  non-positive or non-finite price) is *excluded*: its indicators are NULL, and it is never a
  value inside anyone's window;
* a segment ends where the next usable bar is more than ``max_gap_bars + 1`` bar lengths later
  (default 0: any missing or excluded bar ends it). Every indicator restarts, warm-up included,
  in the next segment, so no window and no recursion ever spans a gap: the values are exactly
  TA-Lib's on each segment's bars.

``bars_in_segment`` and ``null_reason`` say why a row's indicators are NULL: ``warm_up`` (the
series' first segment is still shorter than the longest window, 200 bars), ``gap`` (the same
after a gap), ``implausible`` / ``maintenance`` (the bar itself is excluded). A short series
simply stays in warm-up. No output is ever NaN or infinite: a non-finite result becomes NULL.
"""

from __future__ import annotations

import math

import polars as pl

from sentinance_assets.lib.schemas import bar_length

SERIES_KEYS: tuple[str, ...] = ("exchange", "symbol", "timeframe")

MINUTES_PER_YEAR = 365 * 24 * 60
TIMEFRAME_MINUTES: dict[str, int] = {
    "1m": 1,
    "5m": 5,
    "15m": 15,
    "1h": 60,
    "4h": 240,
    "1d": 1440,
}
BARS_PER_YEAR: dict[str, float] = {
    tf: MINUTES_PER_YEAR / minutes for tf, minutes in TIMEFRAME_MINUTES.items()
}

INDICATOR_COLUMNS: tuple[str, ...] = (
    "close",
    "log_return",
    "sma_20",
    "sma_50",
    "ema_20",
    "ema_50",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr_14",
    "realized_vol",
    "sma_200",
    "ema_200",
)
OUTPUT_COLUMNS: tuple[str, ...] = (
    "exchange",
    "symbol",
    "timeframe",
    "ts",
    *INDICATOR_COLUMNS,
    "bars_in_segment",
    "null_reason",
)
# quality flags (marts.candles) that keep a bar out of every indicator window
EXCLUDED_FLAGS: tuple[str, ...] = ("implausible", "maintenance")
# the longest warm-up: SMA/EMA-200 are defined from a segment's 200th bar
LONGEST_WARM_UP = 200
NULL_REASONS: tuple[str, ...] = ("warm_up", "gap", *EXCLUDED_FLAGS)
YEAR_MS = 365 * 86_400_000


def _col(x: str | pl.Expr) -> pl.Expr:
    return pl.col(x) if isinstance(x, str) else x


def seeded_ewm(x: str | pl.Expr, n: int, alpha: float, seed_at: int | None = None) -> pl.Expr:
    """Recursive EWM seeded with the SMA of ``n`` values, TA-Lib style.

    The seed sits on the ``seed_at``-th non-NULL value (default ``n``) and is the mean of the
    ``n`` values ending there; earlier rows are NULL; later rows follow
    ``y = (1 - alpha) * y_prev + alpha * x``. Leading NULLs in ``x`` are skipped.
    """
    x = _col(x)
    seed_at = n if seed_at is None else seed_at
    if seed_at < n:
        raise ValueError("seed_at must be >= n")
    k = x.is_not_null().cum_sum()
    seeded = (
        pl.when(k < seed_at)
        .then(None)
        .when((k == seed_at) & x.is_not_null())
        .then(x.rolling_mean(n))
        .otherwise(x)
    )
    return seeded.ewm_mean(alpha=alpha, adjust=False, min_samples=1)


def sma(x: str | pl.Expr, n: int) -> pl.Expr:
    return _col(x).rolling_mean(n)


def ema(x: str | pl.Expr, n: int, seed_at: int | None = None) -> pl.Expr:
    return seeded_ewm(x, n, 2.0 / (n + 1), seed_at)


def wilder(x: str | pl.Expr, n: int) -> pl.Expr:
    """Wilder smoothing (an EWM with alpha 1/n), seeded with the mean of the first n values."""
    return seeded_ewm(x, n, 1.0 / n)


def log_return(close: str | pl.Expr = "close") -> pl.Expr:
    c = _col(close)
    return (c / c.shift(1)).log()


def rsi(close: str | pl.Expr = "close", n: int = 14) -> pl.Expr:
    change = _col(close).diff()
    avg_gain = wilder(change.clip(lower_bound=0.0), n)
    avg_loss = wilder((-change).clip(lower_bound=0.0), n)
    total = avg_gain + avg_loss
    # gain / total <= 1 exactly in floating point; (100 * gain) / total can exceed 100 by an ulp
    return pl.when(total > 0).then(100.0 * (avg_gain / total)).otherwise(None)


def macd(
    close: str | pl.Expr = "close", fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(macd, signal, histogram) with TA-Lib's alignment of the fast EMA seed."""
    c = _col(close)
    line = ema(c, fast, seed_at=max(fast, slow)) - ema(c, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def bollinger(
    close: str | pl.Expr = "close", n: int = 20, k: float = 2.0
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(upper, middle, lower) with population standard deviation."""
    c = _col(close)
    middle = c.rolling_mean(n)
    width = k * c.rolling_std(n, ddof=0)
    return middle + width, middle, middle - width


def true_range(
    high: str | pl.Expr = "high", low: str | pl.Expr = "low", close: str | pl.Expr = "close"
) -> pl.Expr:
    h, lo, c_prev = _col(high), _col(low), _col(close).shift(1)
    return (
        pl.when(c_prev.is_null())
        .then(None)
        .otherwise(pl.max_horizontal(h - lo, (h - c_prev).abs(), (lo - c_prev).abs()))
    )


def atr(
    high: str | pl.Expr = "high",
    low: str | pl.Expr = "low",
    close: str | pl.Expr = "close",
    n: int = 14,
) -> pl.Expr:
    return wilder(true_range(high, low, close), n)


def realized_vol(
    close: str | pl.Expr = "close",
    n: int = 20,
    timeframe: str | pl.Expr = "timeframe",
) -> pl.Expr:
    bar_ms = bar_length(_col(timeframe).cast(pl.String)).dt.total_milliseconds()
    bars = YEAR_MS / bar_ms.cast(pl.Float64)
    return log_return(close).rolling_std(n, ddof=1) * bars.sqrt()


def indicator_exprs() -> dict[str, pl.Expr]:
    """The indicator columns as expressions over one series (no grouping applied)."""
    macd_line, macd_signal, macd_hist = macd("close", 12, 26, 9)
    bb_upper, bb_middle, bb_lower = bollinger("close", 20, 2.0)
    return {
        "log_return": log_return("close"),
        "sma_20": sma("close", 20),
        "sma_50": sma("close", 50),
        "ema_20": ema("close", 20),
        "ema_50": ema("close", 50),
        "rsi_14": rsi("close", 14),
        "macd": macd_line,
        "macd_signal": macd_signal,
        "macd_hist": macd_hist,
        "bb_upper": bb_upper,
        "bb_middle": bb_middle,
        "bb_lower": bb_lower,
        "atr_14": atr("high", "low", "close", 14),
        "realized_vol": realized_vol("close", 20, "timeframe"),
        "sma_200": sma("close", 200),
        "ema_200": ema("close", 200),
    }


def compute_indicators(candles: pl.DataFrame | pl.LazyFrame, max_gap_bars: int = 0) -> pl.DataFrame:
    """Indicators per contiguous segment of usable bars of each ``(exchange, symbol,
    timeframe)`` series, ordered by ``ts`` (see the module docstring).

    ``candles`` needs ``exchange, symbol, timeframe, ts, high, low, close``; an optional
    ``quality`` column (marts.candles) marks excluded bars; extra columns are ignored.
    ``max_gap_bars``: missing bars a segment may bridge (0: none). Returns
    :data:`OUTPUT_COLUMNS`, one row per input row, sorted by series and time, indicator columns
    as Float64 even for an empty input. Duplicate ``(series, ts)`` rows are an error upstream
    (``marts.candles`` is unique on that key) and are not repaired here.
    """
    if max_gap_bars < 0:
        raise ValueError("max_gap_bars must be >= 0")
    lf = candles.lazy() if isinstance(candles, pl.DataFrame) else candles
    keys = list(SERIES_KEYS)
    has_quality = "quality" in lf.collect_schema().names()
    quality = pl.col("quality").cast(pl.String) if has_quality else pl.lit(None, pl.String)
    prices = [pl.col(c) for c in ("high", "low", "close")]
    broken = ~pl.all_horizontal([(p.is_finite() & (p > 0)).fill_null(False) for p in prices])
    excluded = (
        pl.when(broken | quality.str.contains("implausible").fill_null(False))
        .then(pl.lit("implausible"))
        .when(quality.str.contains("maintenance").fill_null(False))
        .then(pl.lit("maintenance"))
        .otherwise(pl.lit(None, pl.String))
    )
    lf = (
        lf.select(
            *[pl.col(k).cast(pl.String) for k in keys],
            pl.col("ts"),
            *[pl.col(c).cast(pl.Float64) for c in ("high", "low", "close")],
            quality.alias("quality"),
        )
        .with_columns(excluded.alias("excluded"))
        .sort([*keys, "ts"])
    )

    step = pl.col("ts").diff().over(keys)
    limit = bar_length(pl.col("timeframe")) * (max_gap_bars + 1)
    new_segment = step.is_null() | (step > limit).fill_null(False)
    segment = [*keys, "segment"]
    usable = (
        lf.filter(pl.col("excluded").is_null())
        .with_columns(segment=new_segment.cum_sum().over(keys))
        .with_columns(
            bars_in_segment=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(segment),
            **{
                name: expr.over(segment).cast(pl.Float64)
                for name, expr in indicator_exprs().items()
            },
        )
        .with_columns(
            null_reason=pl.when(pl.col("bars_in_segment") < LONGEST_WARM_UP)
            .then(pl.when(pl.col("segment") == 1).then(pl.lit("warm_up")).otherwise(pl.lit("gap")))
            .otherwise(pl.lit(None, pl.String))
        )
    )
    dropped = lf.filter(pl.col("excluded").is_not_null()).with_columns(
        bars_in_segment=pl.lit(None, pl.Int64),
        null_reason=pl.col("excluded"),
        **{c: pl.lit(None, pl.Float64) for c in INDICATOR_COLUMNS if c != "close"},
    )
    columns = list(OUTPUT_COLUMNS)
    out = pl.concat([usable.select(columns), dropped.select(columns)]).sort([*keys, "ts"])
    # never NaN or inf: a non-finite value (a price too large for a square, say) becomes NULL
    out = out.with_columns(
        [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in INDICATOR_COLUMNS]
    )
    return out.collect()


def annualisation_factor(timeframe: str) -> float:
    """``sqrt(bars per 365-day year)`` for a timeframe such as ``"1h"``."""
    return math.sqrt(BARS_PER_YEAR[timeframe])
