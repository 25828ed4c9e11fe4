"""compute_indicators against hand-computed cases, TA-Lib (exact) and `ta` (after burn-in)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from sentinance_assets.lib import indicators as ind
from sentinance_assets.lib.indicators import OUTPUT_COLUMNS, compute_indicators
from sentinance_assets.lib.schemas import TS

T0 = datetime(2026, 11, 1, tzinfo=UTC)


STEP = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440, "3d": 3 * 1440}


def series(close, high=None, low=None, timeframe="1h", exchange="x", symbol="A/USD"):
    """One series of consecutive bars of ``timeframe`` (hourly spacing for an unknown one)."""
    close = np.asarray(close, dtype=float)
    n = len(close)
    step = timedelta(minutes=STEP.get(timeframe, 60))
    return pl.DataFrame(
        {
            "exchange": [exchange] * n,
            "symbol": [symbol] * n,
            "timeframe": [timeframe] * n,
            "ts": [T0 + i * step for i in range(n)],
            "high": close if high is None else np.asarray(high, dtype=float),
            "low": close if low is None else np.asarray(low, dtype=float),
            "close": close,
        }
    ).with_columns(pl.col("ts").cast(TS))


def random_walk(n=1_000, seed=1):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0, 0.004, n)))
    low = close * (1 - np.abs(rng.normal(0, 0.004, n)))
    return close, high, low


def on(values, expr):
    return pl.DataFrame({"close": values}).select(expr.alias("y"))["y"].to_list()


def approx_list(got, expected, rel=1e-12):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            assert g == pytest.approx(e, rel=rel)


# --- hand-computed cases -------------------------------------------------------------------


def test_sma_and_sma_seeded_ema():
    x = [2.0, 4.0, 6.0, 8.0, 4.0]
    approx_list(on(x, ind.sma("close", 3)), [None, None, 4.0, 6.0, 6.0])
    # EMA(3): alpha 0.5, seeded with mean(2, 4, 6) = 4 at the third value
    approx_list(on(x, ind.ema("close", 3)), [None, None, 4.0, 6.0, 5.0])


def test_ema_skips_leading_nulls_and_delayed_seed():
    x = [None, None, 2.0, 4.0, 6.0, 8.0]
    approx_list(on(x, ind.ema("close", 3)), [None, None, None, None, 4.0, 6.0])
    # seed on the 4th value with the mean of the 3 values ending there (TA-Lib MACD alignment)
    approx_list(
        on([2.0, 4.0, 6.0, 8.0, 4.0], ind.ema("close", 3, seed_at=4)), [None, None, None, 6.0, 5.0]
    )


def test_rsi_wilder_hand_computed():
    # gains 1, 0, 2, 0 and losses 0, 1, 0, 0; RSI(2) seeds with the means (0.5, 0.5)
    got = on([10.0, 11.0, 10.0, 12.0, 12.0], ind.rsi("close", 2))
    approx_list(got, [None, None, 50.0, 100 * 1.25 / 1.5, 100 * 0.625 / 0.75])


def test_rsi_undefined_on_flat_prices_is_null():
    assert on([5.0] * 6, ind.rsi("close", 2)) == [None] * 6


def test_atr_wilder_hand_computed():
    df = pl.DataFrame(
        {
            "high": [10.0, 12.0, 11.0, 15.0],
            "low": [9.0, 10.0, 8.0, 13.0],
            "close": [9.5, 11.0, 9.0, 14.0],
        }
    )
    # true ranges: -, max(2, 2.5, 0.5) = 2.5, max(3, 0, 3) = 3, max(2, 6, 4) = 6
    got = df.select(ind.atr("high", "low", "close", 2).alias("a"))["a"].to_list()
    approx_list(got, [None, None, 2.75, 2.75 + 0.5 * (6 - 2.75)])


def test_bollinger_population_std():
    x = [1.0, 2.0, 3.0, 4.0]
    upper, middle, lower = ind.bollinger("close", 3, 2.0)
    sd = math.sqrt(2 / 3)  # population std of (1, 2, 3) and of (2, 3, 4)
    approx_list(on(x, middle), [None, None, 2.0, 3.0])
    approx_list(on(x, upper), [None, None, 2 + 2 * sd, 3 + 2 * sd])
    approx_list(on(x, lower), [None, None, 2 - 2 * sd, 3 - 2 * sd])


def test_realized_vol_annualised_by_timeframe():
    close, _, _ = random_walk(60, seed=4)
    for tf, bars in (("1m", 525_600), ("1h", 8_760), ("4h", 2_190), ("1d", 365), ("3d", 365 / 3)):
        out = compute_indicators(series(close, timeframe=tf))
        r = np.diff(np.log(close))
        expected = np.std(r[-20:], ddof=1) * math.sqrt(bars)
        assert out["realized_vol"][-1] == pytest.approx(expected, rel=1e-9)
        assert out["realized_vol"].head(20).null_count() == 20
        assert out["realized_vol"][20] is not None
    unknown = compute_indicators(series(close, timeframe="1M"))  # a month has no fixed length
    assert unknown["realized_vol"].null_count() == len(close)


def test_log_return():
    out = compute_indicators(series([100.0, 110.0, 99.0]))
    approx_list(out["log_return"].to_list(), [None, math.log(1.1), math.log(0.9)])


def test_warm_up_rows_are_null():
    close, high, low = random_walk(300)
    out = compute_indicators(series(close, high, low))
    first_valid = {
        "log_return": 1,
        "sma_20": 19,
        "sma_50": 49,
        "ema_20": 19,
        "ema_50": 49,
        "rsi_14": 14,
        "macd": 25,
        "macd_signal": 33,
        "macd_hist": 33,
        "bb_upper": 19,
        "bb_middle": 19,
        "bb_lower": 19,
        "atr_14": 14,
        "realized_vol": 20,
        "sma_200": 199,
        "ema_200": 199,
    }
    for col, k in first_valid.items():
        s = out[col]
        assert s.head(k).null_count() == k, col
        assert s.slice(k).null_count() == 0, col
        assert s.slice(k).is_finite().all(), col


def test_series_are_independent_and_output_sorted():
    c1, h1, l1 = random_walk(120, seed=1)
    c2, h2, l2 = random_walk(90, seed=2)
    a = series(c1, h1, l1, symbol="A/USD")
    b = series(c2, h2, l2, symbol="B/USD", timeframe="4h")
    mixed = pl.concat([a, b]).sample(fraction=1.0, shuffle=True, seed=9)
    together = compute_indicators(mixed)
    assert tuple(together.columns) == OUTPUT_COLUMNS
    separate = pl.concat([compute_indicators(a), compute_indicators(b)])
    assert together.equals(separate)


def test_empty_input_keeps_typed_columns():
    out = compute_indicators(series([]))
    assert out.height == 0
    assert tuple(out.columns) == OUTPUT_COLUMNS
    assert all(out.schema[c] == pl.Float64 for c in ind.INDICATOR_COLUMNS)


# --- references ------------------------------------------------------------------------------


def max_rel_diff(got: np.ndarray, ref: np.ndarray, start: int = 0) -> float:
    g, r = got[start:], ref[start:]
    mask = ~np.isnan(r)
    assert not np.isnan(g[mask]).any()
    return float(np.max(np.abs(g[mask] - r[mask]) / np.maximum(np.abs(r[mask]), 1e-12)))


def test_matches_talib_exactly():
    talib = pytest.importorskip("talib", reason="TA-Lib (ta-lib) not installed")
    close, high, low = random_walk()
    out = compute_indicators(series(close, high, low)).to_pandas()
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    refs = {
        "sma_20": talib.SMA(close, 20),
        "sma_50": talib.SMA(close, 50),
        "sma_200": talib.SMA(close, 200),
        "ema_20": talib.EMA(close, 20),
        "ema_50": talib.EMA(close, 50),
        "ema_200": talib.EMA(close, 200),
        "rsi_14": talib.RSI(close, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "atr_14": talib.ATR(high, low, close, 14),
    }
    for col, ref in refs.items():
        got = out[col].to_numpy(dtype=float)
        if col != "macd":  # TA-Lib hides MACD until the signal exists (bar 33)
            assert np.array_equal(np.isnan(got), np.isnan(ref)), col
        assert max_rel_diff(got, ref) <= 1e-9, col


def test_matches_ta_after_burn_in():
    ta = pytest.importorskip("ta", reason="`ta` not installed (optional reference)")
    import pandas as pd

    close, high, low = random_walk(1_500, seed=3)
    out = compute_indicators(series(close, high, low)).to_pandas()
    c, h, lo = pd.Series(close), pd.Series(high), pd.Series(low)
    macd = ta.trend.MACD(c, window_slow=26, window_fast=12, window_sign=9)
    bb = ta.volatility.BollingerBands(c, window=20, window_dev=2)
    refs = {
        # `ta` seeds EMAs/Wilder averages with the first value, not an SMA: the difference
        # decays geometrically, so compare after a burn-in
        "ema_20": ta.trend.EMAIndicator(c, window=20).ema_indicator(),
        "ema_50": ta.trend.EMAIndicator(c, window=50).ema_indicator(),
        "rsi_14": ta.momentum.RSIIndicator(c, window=14).rsi(),
        "macd": macd.macd(),
        "macd_signal": macd.macd_signal(),
        "macd_hist": macd.macd_diff(),
        "bb_upper": bb.bollinger_hband(),
        "bb_middle": bb.bollinger_mavg(),
        "bb_lower": bb.bollinger_lband(),
        "atr_14": ta.volatility.AverageTrueRange(h, lo, c, window=14).average_true_range(),
        "sma_20": ta.trend.SMAIndicator(c, window=20).sma_indicator(),
    }
    burn_in = 500
    for col, ref in refs.items():
        got = out[col].to_numpy(dtype=float)
        assert max_rel_diff(got, ref.to_numpy(dtype=float), start=burn_in) <= 1e-6, col


# --- gaps, excluded bars, thin data --------------------------------------------------------


def with_quality(df: pl.DataFrame, flags: dict[int, str]) -> pl.DataFrame:
    return (
        df.with_row_index("i")
        .with_columns(
            quality=pl.col("i").replace_strict(flags, default="ok", return_dtype=pl.String)
        )
        .drop("i")
    )


def test_every_indicator_restarts_after_a_gap():
    close, high, low = random_walk(300, seed=5)
    full = series(close, high, low)
    gapped = full.filter(pl.int_range(pl.len()) != 100)  # hour 100 missing
    out = compute_indicators(gapped)
    before, after = out.head(100), out.slice(100)
    assert before["bars_in_segment"].to_list() == list(range(1, 101))
    assert after["bars_in_segment"].to_list() == list(range(1, 200))
    assert after["null_reason"].to_list() == ["gap"] * 199  # still warming up: EMA-200
    assert set(before["null_reason"]) == {"warm_up"}
    # each segment equals the indicators of its bars alone: no window spans the gap
    alone = compute_indicators(full.slice(101))
    cols = list(ind.INDICATOR_COLUMNS)
    assert after.select(cols).equals(alone.select(cols))
    assert after["log_return"][0] is None and after["rsi_14"][13] is None
    assert after["rsi_14"][14] is not None


def test_excluded_bars_are_null_and_break_the_window():
    close, high, low = random_walk(80, seed=6)
    df = with_quality(series(close, high, low), {30: "implausible", 50: "maintenance,filled"})
    out = compute_indicators(df)
    for i, reason in ((30, "implausible"), (50, "maintenance")):
        row = out.row(i, named=True)
        assert row["null_reason"] == reason and row["bars_in_segment"] is None
        assert all(row[c] is None for c in ind.INDICATOR_COLUMNS if c != "close")
        assert row["close"] == close[i]
    assert out["bars_in_segment"][31] == 1 and out["null_reason"][31] == "gap"
    # a bar with a broken price is excluded even without a quality column
    broken = compute_indicators(series([100.0, 0.0, 101.0, 102.0]))
    assert broken["null_reason"].to_list() == ["warm_up", "implausible", "gap", "gap"]
    assert broken["log_return"].to_list()[1:3] == [None, None]


def test_gap_tolerance_bridges_short_gaps():
    close, high, low = random_walk(120, seed=7)
    gapped = series(close, high, low).filter(~pl.int_range(pl.len()).is_in([40, 80, 81]))
    strict = compute_indicators(gapped)
    assert (strict["bars_in_segment"] == 1).sum() == 3
    bridged = compute_indicators(gapped, max_gap_bars=1)
    assert (bridged["bars_in_segment"] == 1).sum() == 2  # 40 bridged, 80-81 (two bars) not
    # a bridged segment is computed over the bars present, as TA-Lib would on them
    present = [np.delete(x, 40)[:79] for x in (close, high, low)]
    ref = compute_indicators(series(*present))
    cols = list(ind.INDICATOR_COLUMNS)
    assert bridged.head(79).select(cols).equals(ref.select(cols))
    with pytest.raises(ValueError):
        compute_indicators(gapped, max_gap_bars=-1)


def test_short_series_and_extreme_values_never_give_nan_or_inf():
    for n in (0, 1, 2, 5, 13):
        out = compute_indicators(series(np.linspace(100, 101, n)))
        assert out.height == n
        assert out["sma_20"].null_count() == n
        assert set(out["null_reason"].to_list()) <= {"warm_up"}
    # flat prices: RSI undefined (NULL), std 0, nothing NaN
    flat = compute_indicators(series([5.0] * 60))
    huge = compute_indicators(series(np.full(40, 1e200) * np.linspace(1, 2, 40)))
    for out in (flat, huge):
        for col in ind.INDICATOR_COLUMNS:
            assert out[col].drop_nulls().is_finite().all(), col
            assert out[col].is_nan().sum() == 0, col
    assert flat["rsi_14"].null_count() == 60
