"""ml.features: targets are the sum of the next k returns; features never see the future."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ml.features import (
    HORIZONS,
    FeatureSet,
    build_feature_set,
    build_features,
    past_return_col,
    target_col,
)

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


def test_bad_input_raises() -> None:
    candles = make_candles(40, symbols=("BTC/USDT",))
    with pytest.raises(ValueError, match="lack columns"):
        build_features(candles.drop("volume"))


def _at(candles: pl.DataFrame, hours: list[int], **values: float) -> pl.DataFrame:
    """``candles`` with the bars ``T0 + hours`` changed to ``values``."""
    hit = pl.col("ts").is_in([T0 + timedelta(hours=h) for h in hours])
    return candles.with_columns(
        pl.when(hit).then(pl.lit(v, dtype=pl.Float64)).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def _finite(fs: FeatureSet) -> bool:
    return bool(np.isfinite(fs.frame.select(fs.feature_cols).to_numpy()).all())


def test_clean_candles_have_nothing_to_report() -> None:
    fs = build_feature_set(make_candles(80, symbols=("BTC/USDT",)))
    q = fs.quality.totals()
    assert q["rows"] == q["expected_bars"] == q["present_bars"] == q["usable_bars"] == 80
    zero = ("missing_bars", "gaps", "duplicate_rows", "flagged_bars", "masked_feature_rows")
    assert all(q[k] == 0 for k in zero)
    assert q["segments"] == 1 and q["warmup_rows"] == 24 and q["feature_rows"] == 56
    assert q["masked_target_24h"] == 0  # the last rows lack a future, which is not masking


def test_missing_bars_are_counted_and_never_filled() -> None:
    candles = make_candles(120, symbols=("BTC/USDT",))
    gone = [50, 51, 52, 90]
    fs = build_feature_set(
        candles.filter(~pl.col("ts").is_in([T0 + timedelta(hours=h) for h in gone]))
    )
    q = fs.quality.totals()
    assert (q["expected_bars"], q["present_bars"], q["missing_bars"]) == (120, 116, 4)
    assert q["gaps"] == 2 and q["segments"] == 3
    # no row was invented: every ts of the frame is a bar of the input
    assert not set(fs.frame["ts"].to_list()) & {T0 + timedelta(hours=h) for h in gone}
    # each segment after a gap re-warms: its first 24 rows have no full feature window
    assert q["masked_feature_rows"] == 24 + 24 and q["feature_rows"] == 116 - 24 - 48
    # targets whose horizon crosses a gap are masked, not bridged
    assert q["masked_target_1h"] == 2  # the bars just before each gap (49 and 89)
    assert q["masked_target_24h"] == 24 + 13  # rows 26..49, and all rows 77..89
    assert fs.frame.filter(pl.col("ts") == T0 + timedelta(hours=49))[target_col("1h")][0] is None
    assert _finite(fs)


def test_maintenance_runs_are_flagged_and_split_the_series() -> None:
    candles = make_candles(150, symbols=("BTC/USDT",))
    price = float(candles["close"][59])
    flat = {c: price for c in ("open", "high", "low", "close")}
    candles = _at(candles, [60, 61, 62, 63], **flat, volume=0.0)  # one run of 4 bars
    candles = _at(candles, [100], **flat, volume=0.0)  # and a single bar
    # a flat bar with volume (all trades at one price) is a real bar
    candles = _at(candles, [140], **flat, volume=5.0)
    fs = build_feature_set(candles)
    q = fs.quality.totals()
    assert (q["maintenance_runs"], q["maintenance_bars"]) == (2, 5)
    assert q["flagged_bars"] == 5 and q["usable_bars"] == 145 and q["segments"] == 3
    assert q["missing_bars"] == 0  # present but flagged: not missing
    maint = {T0 + timedelta(hours=h) for h in (60, 61, 62, 63, 100)}
    assert not set(fs.frame["ts"].to_list()) & maint
    assert T0 + timedelta(hours=140) in set(fs.frame["ts"].to_list())
    assert _finite(fs)


def test_duplicates_keep_the_first_and_conflicts_are_flagged() -> None:
    candles = make_candles(80, symbols=("BTC/USDT",))
    same = candles.filter(pl.col("ts") == T0 + timedelta(hours=30)).with_columns(
        pl.col("close") * (1 + 1e-5)  # the same bar written again, rounded
    )
    other = candles.filter(pl.col("ts") == T0 + timedelta(hours=50)).with_columns(
        pl.col("close") * 1.05, pl.col("high") * 1.05
    )
    fs = build_feature_set(pl.concat([candles, same, other, same]))
    q = fs.quality.totals()
    assert q["duplicate_rows"] == 3 and q["conflicting_duplicates"] == 1
    assert q["flagged_bars"] == 1 and q["usable_bars"] == 79
    row = fs.frame.filter(pl.col("ts") == T0 + timedelta(hours=30))
    assert row["close"][0] == candles["close"][30]  # the first in input order wins
    assert fs.frame.filter(pl.col("ts") == T0 + timedelta(hours=50)).is_empty()
    assert fs.frame.select("symbol", "ts").is_unique().all()


@pytest.mark.parametrize(
    "broken",
    [
        {"high": 1e9},  # a high far above 4x the close
        {"low": 1e-3},  # a low far below the close / 4
        {"low": 0.0},
        {"close": -1.0},
        {"open": float("nan")},
        {"close": float("inf")},
        {"volume": -3.0},
        {"volume": float("nan")},
    ],
)
def test_implausible_bars_are_flagged(broken: dict[str, float]) -> None:
    fs = build_feature_set(_at(make_candles(100, symbols=("BTC/USDT",)), [70], **broken))
    q = fs.quality.totals()
    assert q["implausible_bars"] == q["flagged_bars"] == 1 and q["segments"] == 2
    assert T0 + timedelta(hours=70) not in set(fs.frame["ts"].to_list())
    assert _finite(fs)
    assert (
        fs.frame.select(pl.col("^target_.*$", "^rv_target_.*$").is_infinite().any())
        .sum_horizontal()
        .item()
        == 0
    )


def test_a_move_inside_the_ratio_is_a_price_not_a_defect() -> None:
    candles = make_candles(60, symbols=("BTC/USDT",))
    close = float(candles["close"][40])
    fs = build_feature_set(_at(candles, [40], high=close * 3.9, low=close / 3.9))
    assert fs.quality.totals()["flagged_bars"] == 0


def test_off_grid_bars_are_flagged() -> None:
    candles = make_candles(60, symbols=("BTC/USDT",))
    odd = candles.tail(1).with_columns(pl.col("ts") + timedelta(minutes=30))
    fs = build_feature_set(pl.concat([candles, odd]))
    q = fs.quality.totals()
    assert q["off_grid_bars"] == 1 and q["flagged_bars"] == 1 and q["usable_bars"] == 60


def test_quality_per_symbol_and_as_json() -> None:
    candles = make_candles(60, symbols=("BTC/USDT", "ETH/USDT"))
    candles = candles.filter(
        ~((pl.col("symbol") == "ETH/USDT") & (pl.col("ts") == T0 + timedelta(hours=30)))
    )
    fs = build_feature_set(candles)
    d = fs.quality.to_dict()
    assert d["per_symbol"]["ETH/USDT"]["missing_bars"] == 1
    assert d["per_symbol"]["BTC/USDT"]["missing_bars"] == 0
    assert d["total"]["missing_bars"] == 1
    assert fs.quality.with_counts("extra", {"BTC/USDT": 2}).totals()["extra"] == 2


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


def test_intraday_variance_replaces_squared_returns_where_present() -> None:
    candles = make_candles(80, symbols=("X/USDT",))
    plain = build_feature_set(candles)
    assert plain.quality.totals()["intraday_var_rows"] == 0
    # an intraday variance on every bar but the last ten (those fall back to r^2)
    rv = pl.Series([4e-4] * 70 + [None] * 10, dtype=pl.Float64)
    fs = build_feature_set(candles.with_columns(rv.alias("realized_var")))
    assert fs.quality.totals()["intraday_var_rows"] == 70
    row = fs.frame.filter(pl.col("ts") == T0 + timedelta(hours=40)).row(0, named=True)
    assert row["har_1"] == pytest.approx(4e-4) and row["har_24"] == pytest.approx(4e-4)
    assert row["rv_target_4h"] == pytest.approx(math.sqrt(4 * 4e-4))
    assert row["rv_24"] == pytest.approx(math.sqrt(24 * 4e-4))
    # the weekly mean is partial in the first week (no longer warm-up than the daily one)
    assert row["har_168"] == pytest.approx(4e-4)
    assert fs.frame["ts"].min() == plain.frame["ts"].min()
    late = fs.frame.filter(pl.col("ts") == fs.frame["ts"].max()).row(0, named=True)
    assert late["har_1"] == pytest.approx(late["log_ret"] ** 2)
