"""ml.evaluation: baselines scored on the model's rows; metrics checked by hand."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest

from ml.evaluation import (
    conformal_z,
    dm_test,
    evaluate_forecasts,
    evaluate_windows,
    evaluation_metrics,
    holdout_rows,
    skill_scores,
    walk_forward_splits,
)
from ml.features import build_features
from tests.ml.test_features import T0, make_candles

H = {"1h": 1, "2h": 2}
N = None


def _hand_case() -> tuple[pl.DataFrame, pl.DataFrame]:
    ts = [T0 + timedelta(hours=h) for h in range(6)]
    frame = pl.DataFrame(
        {
            "symbol": ["X"] * 6,
            "ts": ts,
            "target_1h": [0.1, 0.1, 0.02, -0.01, 0.03, N],
            "target_2h": [0.1, 0.1, 0.01, 0.02, N, N],
            "ret_past_1h": [0.0, 0.0, -0.01, 0.02, 0.0, 0.01],
            "ret_past_2h": [0.0, 0.0, 0.01, -0.02, 0.01, 0.02],
        }
    )
    preds = pl.DataFrame(
        {
            "symbol": ["X"] * 6,
            "ts": ts,
            "pred_1h": [9.0, 9.0, 0.01, 0.01, -0.02, 0.05],
            "pred_2h": [9.0, 9.0, 0.0, 0.03, 0.01, 0.0],
        }
    )
    return frame, preds


def _get(ev: pl.DataFrame, horizon: str, model: str, metric: str, symbol: str = "X"):
    row = ev.filter(
        (pl.col("symbol") == symbol)
        & (pl.col("horizon") == horizon)
        & (pl.col("model") == model)
        & (pl.col("metric") == metric)
    )
    assert row.height == 1
    return row["value"].item(), row["n"].item()


def test_hand_computed_metrics() -> None:
    frame, preds = _hand_case()
    ev = evaluate_forecasts(frame, preds, train_end_ts=T0, horizons=H)
    assert ev.columns == ["symbol", "horizon", "model", "metric", "value", "n"]

    # 1h: test rows start at T0 + 2h (gap = max horizon); ts 5 has no realized target.
    assert _get(ev, "1h", "lstm", "mae") == (pytest.approx(0.08 / 3), 3)
    assert _get(ev, "1h", "lstm", "rmse") == (pytest.approx(math.sqrt(0.001)), 3)
    assert _get(ev, "1h", "lstm", "direction_accuracy") == (pytest.approx(1 / 3), 3)
    assert _get(ev, "1h", "lstm", "direction_pvalue") == (
        pytest.approx(binomtest(1, 3, 0.5).pvalue),
        3,
    )
    assert _get(ev, "1h", "zero_return", "mae") == (pytest.approx(0.02), 3)
    assert _get(ev, "1h", "zero_return", "rmse") == (pytest.approx(math.sqrt(14e-4 / 3)), 3)
    acc, n = _get(ev, "1h", "zero_return", "direction_accuracy")
    assert math.isnan(acc) and n == 0  # zero predictions are "no call"
    assert _get(ev, "1h", "persistence", "mae") == (pytest.approx(0.03), 3)
    assert _get(ev, "1h", "persistence", "direction_accuracy") == (0.0, 2)
    assert _get(ev, "1h", "persistence", "direction_pvalue") == (pytest.approx(0.5), 2)

    # 2h: rows ts 2, 3; the p-value uses non-overlapping origins only (ts 2).
    assert _get(ev, "2h", "lstm", "mae") == (pytest.approx(0.01), 2)
    assert _get(ev, "2h", "lstm", "direction_accuracy") == (1.0, 1)
    pval, n = _get(ev, "2h", "lstm", "direction_pvalue")
    assert math.isnan(pval) and n == 0  # ts 2's prediction is 0: no independent call
    assert _get(ev, "2h", "persistence", "direction_accuracy") == (0.5, 2)
    assert _get(ev, "2h", "persistence", "direction_pvalue") == (pytest.approx(1.0), 1)

    # pooled over the single symbol equals the symbol
    assert _get(ev, "1h", "lstm", "mae", "ALL") == _get(ev, "1h", "lstm", "mae")


def test_baselines_use_exactly_the_model_rows() -> None:
    frame, preds = _hand_case()
    preds = preds.filter(pl.col("ts") != T0 + timedelta(hours=3))  # model skipped a row
    ev = evaluate_forecasts(frame, preds, train_end_ts=T0, horizons=H)
    n = (
        ev.filter(pl.col("metric") == "mae", pl.col("symbol") == "X")
        .group_by("horizon")
        .agg(pl.col("n").unique())
    )
    assert dict(n.iter_rows()) == {"1h": [2], "2h": [1]}


def test_holdout_rows_leave_max_horizon_gap() -> None:
    frame, _ = build_features(make_candles(100, symbols=("BTC/USDT",)))
    train_end = T0 + timedelta(hours=50)
    rows = holdout_rows(frame, train_end)
    assert rows["ts"].min() == train_end + timedelta(hours=24)
    capped = holdout_rows(frame, train_end, test_end_ts=train_end + timedelta(hours=30))
    assert capped.height == 7


def test_skill_and_flat_metrics() -> None:
    frame, preds = _hand_case()
    ev = evaluate_forecasts(frame, preds, train_end_ts=T0, horizons=H)
    skill = skill_scores(ev)
    assert skill["1h"] == pytest.approx(1 - math.sqrt(0.001) / math.sqrt(14e-4 / 3))
    flat = evaluation_metrics(ev)
    assert flat["lstm.mae.1h.X"] == pytest.approx(0.08 / 3)
    assert "zero_return.direction_accuracy.1h.X" not in flat  # NaN is not logged


def test_walk_forward_splits_are_ordered_and_disjoint() -> None:
    frame, _ = build_features(make_candles(300, symbols=("BTC/USDT",)))
    folds = walk_forward_splits(frame, n_folds=3, test_bars=24)
    assert len(folds) == 3
    for (train_end, test_end), nxt in zip(folds, folds[1:] + [None], strict=True):
        first_test = train_end + timedelta(hours=24)
        assert test_end - first_test == timedelta(hours=23)
        if nxt is not None:
            assert nxt[0] + timedelta(hours=24) == test_end + timedelta(hours=1)
    assert folds[-1][1] == frame["ts"].max() - timedelta(hours=24)
    with pytest.raises(ValueError):
        walk_forward_splits(frame, n_folds=20, test_bars=24)


def _vol_case() -> tuple[pl.DataFrame, pl.DataFrame]:
    frame, preds = _hand_case()
    frame = frame.with_columns(
        pl.Series("ewma_var", [1e-4] * 6),
        pl.Series("rv_target_1h", [0.1, 0.1, 0.02, 0.01, 0.03, N]),
        pl.Series("rv_target_2h", [0.1, 0.1, 0.03, 0.04, N, N]),
    )
    preds = preds.with_columns(
        pl.Series("pred_rv_1h", [1.0, 1.0, 0.02, 0.02, 0.01, 0.01]),
        pl.Series("pred_rv_2h", [1.0, 1.0, 0.03, 0.02, 0.01, 0.01]),
    )
    return frame, preds


def test_volatility_metrics_against_ewma_baseline() -> None:
    from ml.evaluation import qlike

    frame, preds = _vol_case()
    ev = evaluate_forecasts(frame, preds, train_end_ts=T0, horizons=H)
    # 1h rows: ts 2, 3, 4 (realized 0.02, 0.01, 0.03)
    assert _get(ev, "1h", "lstm", "vol_mae") == (pytest.approx((0 + 0.01 + 0.02) / 3), 3)
    expected = np.mean(
        [np.log(p**2) + a**2 / p**2 for p, a in [(0.02, 0.02), (0.02, 0.01), (0.01, 0.03)]]
    )
    assert _get(ev, "1h", "lstm", "vol_qlike") == (pytest.approx(expected), 3)
    # EWMA baseline: sqrt(k * ewma_var) = 0.01 for 1h, sqrt(2e-4) for 2h
    assert _get(ev, "1h", "ewma_vol", "vol_mae") == (pytest.approx((0.01 + 0 + 0.02) / 3), 3)
    assert _get(ev, "2h", "ewma_vol", "vol_qlike") == (
        pytest.approx(qlike(np.full(2, np.sqrt(2e-4)), np.array([0.03, 0.04]))),
        2,
    )
    # the normalized form differs by a model-independent term only
    a, p1, p2 = np.array([0.02, 0.01, 0.03]), np.full(3, 0.02), np.full(3, 0.01)

    def norm(p):
        return np.mean(a**2 / p**2 - np.log(a**2 / p**2) - 1)

    assert qlike(p1, a) - qlike(p2, a) == pytest.approx(norm(p1) - norm(p2))
    # perfect forecasts minimize QLIKE
    assert qlike(a, a) < qlike(a * 1.1, a) and qlike(a, a) < qlike(a * 0.9, a)


def test_champion_and_walk_forward_windows_share_rows() -> None:
    from ml.evaluation import evaluate_windows

    frame, preds = _vol_case()
    champ = preds.with_columns(pl.col("pred_1h") * 0.5).filter(
        pl.col("ts") != T0 + timedelta(hours=4)
    )
    ev = evaluate_forecasts(frame, preds, T0, H, others={"champion": champ})
    n = ev.filter(pl.col("metric") == "rmse", pl.col("symbol") == "X", pl.col("horizon") == "1h")
    assert dict(n.select("model", "n").iter_rows()) == {
        "lstm": 2,
        "champion": 2,
        "zero_return": 2,
        "persistence": 2,
    }
    # two folds scored together: rows of both windows, each after its own gap
    folds = [
        (T0 - timedelta(hours=2), T0 + timedelta(hours=1), {"lstm": preds}),
        (T0 + timedelta(hours=1), None, {"lstm": preds}),
    ]
    wf = evaluate_windows(frame, folds, H)
    # fold 1: ts 0..1; fold 2: ts 3..4 (ts 5 has no 1h target)
    assert _get(wf, "1h", "lstm", "mae")[1] == 4
    assert _get(wf, "1h", "zero_return", "mae") == (pytest.approx((0.1 + 0.1 + 0.01 + 0.03) / 4), 4)
    with pytest.raises(ValueError, match="same models"):
        evaluate_windows(frame, [folds[0], (T0, None, {"other": preds})], H)


def test_sign_trading_pays_the_round_trip_cost() -> None:
    frame, preds = _hand_case()
    ev = evaluate_forecasts(frame, preds, train_end_ts=T0, horizons=H)
    # 1h calls (all origins independent): +0.01 vs 0.02, +0.01 vs -0.01, -0.02 vs 0.03
    net = (0.02 - 0.01 - 0.03) / 3 * 1e4 - 10.0
    assert _get(ev, "1h", "lstm", "net_bp") == (pytest.approx(net), 3)
    nb, n = _get(ev, "1h", "zero_return", "net_bp")
    assert math.isnan(nb) and n == 0  # no call, no trade


def test_conformal_quantiles_cover_new_draws_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    for level in (0.8, 0.95):
        # the guarantee is on average over calibration samples: at least nominal, barely more
        covered = []
        for _ in range(400):
            lo, hi = conformal_z(rng.standard_t(4, 100), level)
            fresh = rng.standard_t(4, 200)
            covered.append(((fresh >= lo) & (fresh <= hi)).mean())
        assert level - 0.005 < np.mean(covered) < level + 0.025
    assert conformal_z(np.array([1.0, 2.0]), 0.95) == (1.0, 2.0)  # too few: the extremes
    assert all(math.isnan(v) for v in conformal_z(np.array([]), 0.8))


def test_diebold_mariano_separates_better_from_equal() -> None:
    rng = np.random.default_rng(3)
    ts = np.arange(400)
    e1, e2 = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    _, p_equal, n = dm_test(e1**2 - e2**2, ts, 1)
    assert n == 400 and p_equal > 0.05
    _, p_better, _ = dm_test((0.7 * e1) ** 2 - e2**2, ts, 1)
    assert p_better < 0.001
    # two symbols at the same origins are averaged into one series
    stat, _, n = dm_test(np.r_[e1, e1] ** 2 - np.r_[e2, e2] ** 2, np.r_[ts, ts], 4)
    assert n == 400 and np.isfinite(stat)
    assert math.isnan(dm_test(np.zeros(10), np.arange(10), 1)[1])  # no variation


def test_walk_forward_rows_carry_coverage_skill_and_dm() -> None:
    frame, _ = build_features(make_candles(400), H)
    folds = walk_forward_splits(frame, 3, 40, H)
    rng = np.random.default_rng(0)

    def noisy(scale: float) -> pl.DataFrame:
        return frame.select(
            "symbol",
            "ts",
            *[
                (pl.col(f"target_{h}") + rng.normal(0, scale, frame.height)).alias(f"pred_{h}")
                for h in H
            ],
            *[pl.col(f"rv_target_{h}").alias(f"pred_rv_{h}") for h in H],
        ).drop_nulls()

    ev = evaluate_windows(frame, [(tr, te, {"lstm": noisy(0.001)}) for tr, te in folds], H)
    skill, _ = _get(ev, "1h", "lstm", "skill:zero_return", "ALL")
    p, _ = _get(ev, "1h", "lstm", "dm_pvalue:zero_return", "ALL")
    assert skill > 0.5 and p < 1e-6  # a near-oracle beats the random walk, decisively
    cov80, n = _get(ev, "1h", "zero_return", "coverage_80", "ALL")
    cov95, _ = _get(ev, "1h", "zero_return", "coverage_95", "ALL")
    assert n == 2 * 2 * 40 and 0.6 < cov80 < cov95 <= 1.0  # folds 2-3, calibrated on earlier ones
    assert _get(ev, "1h", "zero_return", "width_80", "ALL")[0] > 0
    vol_skill, _ = _get(ev, "2h", "lstm", "vol_skill:ewma_vol", "ALL")
    assert vol_skill == pytest.approx(1.0)  # the realized volatility itself: zero loss
    assert _get(ev, "2h", "ewma_vol", "vol_coverage_95", "ALL")[1] == 2 * 2 * 40
