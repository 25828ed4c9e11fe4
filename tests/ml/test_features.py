"""ml.features: targets are the sum of the next k returns; features never see the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ml.features import HORIZONS, build_features, past_return_col, target_col

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_candles(
    n: int = 120,
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"),
    seed: int = 0,
    vol: float = 0.01,
) -> pl.DataFrame:
    """Seeded random-walk hourly candles, one block per symbol (shared by the ml tests)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, sym in enumerate(symbols):
        close = (100.0 * (i + 1)) * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
        open_ = np.r_[close[0], close[:-1]]
        wiggle = np.abs(rng.normal(0.0, vol / 2, n))
        parts.append(
            pl.DataFrame(
                {
                    "symbol": sym,
                    "ts": [T0 + timedelta(hours=h) for h in range(n)],
                    "open": open_,
                    "high": np.maximum(open_, close) * (1 + wiggle),
                    "low": np.minimum(open_, close) * (1 - wiggle),
                    "close": close,
                    "volume": rng.lognormal(3.0, 1.0, n),
                }
            )
        )
    return pl.concat(parts).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))


def test_targets_are_sum_of_next_k_log_returns() -> None:
    candles = make_candles(100, symbols=("BTC/USDT",))
    frame, _ = build_features(candles)
    close = candles["close"].to_numpy()
    r = np.diff(np.log(close))  # r[j] = log return of bar j+1
    idx = {ts: i for i, ts in enumerate(candles["ts"].to_list())}
    for row in frame.iter_rows(named=True):
        t = idx[row["ts"]]
        for label, k in HORIZONS.items():
            got = row[target_col(label)]
            if t + k < len(close):
                assert got == pytest.approx(r[t : t + k].sum(), abs=1e-12)
                assert row[past_return_col(label)] == pytest.approx(r[t - k : t].sum(), abs=1e-12)
            else:
                assert got is None


def test_features_do_not_use_future_bars() -> None:
    candles = make_candles(120)
    frame, cols = build_features(candles)
    cut = T0 + timedelta(hours=70)
    rng = np.random.default_rng(99)
    future = pl.col("ts") > cut
    noise = pl.Series(rng.lognormal(0.0, 0.3, candles.height))
    perturbed = candles.with_columns(
        [
            pl.when(future).then(pl.col(c) * noise).otherwise(pl.col(c)).alias(c)
            for c in ("close", "volume")
        ]
    ).with_columns(
        pl.max_horizontal("open", "close", "high").alias("high"),
        pl.min_horizontal("open", "close", "low").alias("low"),
    )
    frame2, _ = build_features(perturbed)
    past1 = frame.filter(pl.col("ts") <= cut).select("symbol", "ts", *cols)
    past2 = frame2.filter(pl.col("ts") <= cut).select("symbol", "ts", *cols)
    assert past1.height > 0
    assert past1.equals(past2)
    # ... while the future did change, and targets of rows before the cut see it.
    assert not frame.filter(pl.col("ts") > cut)["log_ret"].equals(
        frame2.filter(pl.col("ts") > cut)["log_ret"]
    )


def test_symbols_are_independent_and_rows_complete() -> None:
    both, cols = build_features(make_candles(80, symbols=("BTC/USDT", "ETH/USDT")))
    alone, _ = build_features(make_candles(80, symbols=("BTC/USDT",)))
    assert both.filter(pl.col("symbol") == "BTC/USDT").equals(alone)
    assert both.select(cols).null_count().sum_horizontal().item() == 0
    assert both.height == 2 * (80 - 24)  # warm-up: 24 bars of history for rv_24 / ret_past_24h
    assert both["ts"].dtype == pl.Datetime("ms", "UTC")
    assert set(cols) >= {"log_ret", "rv_24", "volume_z_24", "rsi_14", "hour_sin", "hour_cos"}
    assert both["rsi_14"].is_between(-1, 1).all()


def test_gap_starts_new_segment_and_no_window_spans_it() -> None:
    candles = make_candles(120, symbols=("BTC/USDT",))
    gap_ts = T0 + timedelta(hours=60)
    frame, _ = build_features(candles.filter(pl.col("ts") != gap_ts))
    assert frame["segment"].unique().sort().to_list() == [0, 1]
    before = frame.filter(pl.col("ts") == gap_ts - timedelta(hours=1)).row(0, named=True)
    assert before[target_col("1h")] is None  # the next bar is missing: no target, not a guess
    after = frame.filter(pl.col("segment") == 1)
    # the segment after the gap needs its own 24-bar warm-up
    assert after["ts"].min() == gap_ts + timedelta(hours=25)


def test_duplicates_and_bad_input_raise() -> None:
    candles = make_candles(40, symbols=("BTC/USDT",))
    with pytest.raises(ValueError, match="duplicate"):
        build_features(pl.concat([candles, candles.head(1)]))
    with pytest.raises(ValueError, match="lack columns"):
        build_features(candles.drop("volume"))


def test_volatility_targets_and_ewma_variance() -> None:
    from ml.features import EWMA_LAMBDA, EWMA_VAR, vol_target_col

    candles = make_candles(90, symbols=("BTC/USDT",), seed=3)
    frame, cols = build_features(candles)
    assert "ewma_vol" in cols and EWMA_VAR not in cols
    r = np.diff(np.log(candles["close"].to_numpy()))  # r[j] = return of bar j+1
    # RiskMetrics recursion from the first squared return of the segment
    s2 = np.empty_like(r)
    s2[0] = r[0] ** 2
    for j in range(1, r.size):
        s2[j] = EWMA_LAMBDA * s2[j - 1] + (1 - EWMA_LAMBDA) * r[j] ** 2
    idx = {ts: i for i, ts in enumerate(candles["ts"].to_list())}
    for row in frame.iter_rows(named=True):
        t = idx[row["ts"]]
        assert row[EWMA_VAR] == pytest.approx(s2[t - 1], rel=1e-9)
        assert row["ewma_vol"] == pytest.approx(np.sqrt(s2[t - 1]), rel=1e-9)
        for label, k in HORIZONS.items():
            got = row[vol_target_col(label)]
            if t + k < len(r) + 1:
                assert got == pytest.approx(np.sqrt((r[t : t + k] ** 2).sum()), rel=1e-9)
            else:
                assert got is None
