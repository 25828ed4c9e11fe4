"""ml.forecast_lifecycle: walk-forward evaluation, promotion, registry, serving, drift."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ml import forecast_lifecycle as fc
from ml.errors import InsufficientDataError
from ml.evaluation import EVALUATION_SCHEMA
from ml.tracking import MlflowStore
from tests.ml.test_features import T0, make_candles

FAST = {"epochs": 3, "hidden": 4, "seeds": (0,), "patience": 1, "lookback": 8}


@pytest.fixture(scope="module")
def candles() -> pl.DataFrame:
    return make_candles(300, symbols=("BTC/USDT", "ETH/USDT"), seed=5)


@pytest.fixture(scope="module")
def walk(candles) -> fc.WalkForward:
    return fc.walk_forward(candles, seed=0, n_folds=2, **FAST)


def test_config_shrinks_horizons_to_the_history() -> None:
    frame = pl.DataFrame({"symbol": "X", "ts": [T0 + timedelta(hours=h) for h in range(60)]})
    cfg = fc.config_for(frame, T0 + timedelta(hours=47), seed=3)
    # 48 training rows (4k <= 48 -> k <= 12) and 12 hold-out rows (2k + 4 <= 12 -> k <= 4)
    assert cfg.horizons == {"1h": 1, "4h": 4}
    assert cfg.lookback == 16 and cfg.seeds == (3, 4, 5)
    with pytest.raises(ValueError, match="too little history"):
        fc.config_for(frame, T0 + timedelta(hours=2), seed=0)


def test_long_histories_sample_each_epoch() -> None:
    n = fc.LONG_HISTORY_WINDOWS // 2 + 100  # per symbol: two symbols exceed the bound
    ts = [T0 + timedelta(hours=h) for h in range(n)]
    frame = pl.DataFrame({"symbol": ["A"] * n + ["B"] * n, "ts": ts + ts})
    cfg = fc.config_for(frame, ts[-100], seed=0)
    assert cfg.epoch_windows == fc.LONG_HISTORY_WINDOWS
    assert cfg.batch_size == fc.LONG_HISTORY_BATCH
    short = fc.config_for(frame.filter(pl.col("symbol") == "A"), ts[-100], seed=0)
    assert short.epoch_windows is None and short.batch_size == 64


@pytest.mark.parametrize(("bars", "has"), [(24, "1"), (48, "2"), (0, "0")])
def test_thin_history_raises_what_it_needs_and_has(bars: int, has: str) -> None:
    candles = make_candles(bars) if bars else make_candles(1).clear()
    with pytest.raises(InsufficientDataError) as err:
        fc.walk_forward(candles, seed=0)
    assert err.value.needs == "3 days of hourly history" and err.value.has == has
    assert "needs 3 days of hourly history" in str(err.value)


def test_flagged_bars_do_not_count_as_history() -> None:
    candles = make_candles(80, symbols=("BTC/USDT",))
    flat = candles["close"][9]
    broken = candles.with_columns(  # 10 hours of maintenance: 70 usable bars < 72
        pl.when(pl.col("ts").is_between(T0 + timedelta(hours=10), T0 + timedelta(hours=19)))
        .then(pl.lit(v))
        .otherwise(pl.col(c))
        .alias(c)
        for c, v in {"open": flat, "high": flat, "low": flat, "close": flat, "volume": 0.0}.items()
    )
    with pytest.raises(InsufficientDataError, match="10 flagged bars left out"):
        fc.walk_forward(broken, seed=0)


def test_a_symbol_too_short_is_left_out_and_the_rest_trains() -> None:
    candles = pl.concat(
        [
            make_candles(120, symbols=("BTC/USDT",), seed=1),
            make_candles(40, symbols=("NEW/USDT",), seed=2),
        ]
    )
    walk = fc.walk_forward(candles, seed=0, n_folds=1, **FAST)
    assert walk.short_symbols == ["NEW/USDT"]
    assert set(walk.frame["symbol"]) == {"BTC/USDT"}
    assert walk.quality is not None
    q = walk.quality.per_symbol()
    assert q["NEW/USDT"]["usable_bars"] == 40 and "masked_lookback_rows" in q["BTC/USDT"]


def test_walk_forward_folds_expand_with_a_gap_and_share_rows(walk) -> None:
    gap = walk.config.max_horizon
    assert walk.config.horizons == {"1h": 1, "4h": 4, "24h": 24}
    assert len(walk.folds) == len(walk.models) == 2
    (tr0, te0), (tr1, te1) = walk.folds
    assert tr0 < tr1 and tr1 + timedelta(hours=gap) == te0 + timedelta(hours=1)
    # each fold's model was trained up to its own train end (expanding window)
    for (tr, _), m in zip(walk.folds, walk.models, strict=True):
        assert m.info["train_end_ts"] == tr.isoformat()
    # predictions scored start one gap after the fold's train end
    for (tr, _), p in zip(walk.folds, walk.predictions, strict=True):
        assert p["ts"].min() <= tr + timedelta(hours=gap)
    ev = walk.evaluation.filter(pl.col("symbol") == "ALL")
    models = set(ev["model"].unique())
    assert models == {"lstm", "zero_return", "persistence", "ewma_vol", "har"}
    for h in walk.config.horizons:
        n = ev.filter(pl.col("horizon") == h, pl.col("metric").is_in(["mae", "vol_mae"]))
        assert n["n"].n_unique() == 1  # every model on the same rows
    # rows scored = the origins of both test windows (pooled over 2 symbols)
    origins = int((te1 - tr0 - timedelta(hours=gap)) / timedelta(hours=1)) + 1
    mae_n = ev.filter(pl.col("horizon") == "24h", pl.col("metric") == "mae")["n"][0]
    assert mae_n == 2 * origins
    assert walk.fold_evaluation["fold"].unique().sort().to_list() == [0, 1]


def test_decide_against_a_champion_uses_only_rows_it_has_not_seen(walk, candles) -> None:
    early = fc.walk_forward(
        candles.filter(pl.col("ts") < T0 + timedelta(hours=200)), 1, n_folds=1, **FAST
    )
    champ = early.model
    champ.info["registered_version"] = "1"
    decision, rows = fc.decide(walk, champ)
    assert decision["champion_version"] == "1" and decision["vs_champion"] is not None
    base = fc.promotion_decision(walk.evaluation, champion=None)
    assert decision["promoted"] == (base["promoted"] and decision["vs_champion"]["promoted"])
    assert set(rows["model"].unique()) == {"champion", "lstm_vs_champion"}
    trained_to = datetime.fromisoformat(champ.info["train_end_ts"])
    n_rows = rows.filter(pl.col("symbol") == "ALL", pl.col("metric") == "rmse")
    assert n_rows["n"].n_unique() == 1
    # a champion trained on everything has no unseen hold-out row: never replaced
    late = copy.copy(walk.model)
    late.info = {**late.info, "train_end_ts": walk.frame["ts"].max().isoformat()}
    late.info["registered_version"] = "9"
    d, r = fc.decide(walk, late)
    assert not d["promoted"] and "no unseen hold-out row" in d["reason"] and r.is_empty()
    assert trained_to < walk.frame["ts"].max()


def test_an_unloadable_champion_blocks_promotion_but_not_the_decision(walk) -> None:
    d, rows = fc.decide(walk, fc.UnloadableChampion("4", "OSError: gone"))
    assert not d["promoted"] and d["champion_version"] == "4" and rows.is_empty()
    assert d["reason"] == "not promoted: current champion could not be loaded (OSError: gone)"
    assert d["baselines"] == fc.promotion_decision(walk.evaluation, champion=None)


def test_train_and_register_records_and_serves(
    candles, mlflow_store: MlflowStore, tmp_path
) -> None:
    assert fc.load_champion(mlflow_store) is None and not mlflow_store.exists()
    assert fc.monitored_model(mlflow_store) == (None, "none")
    run = fc.train_and_register(candles, mlflow_store, seed=0, n_folds=1, **FAST)
    client = mlflow_store.client()
    mv = client.get_model_version(fc.REGISTERED_NAME, run.version)
    assert mv.tags["promotion_decision"] == ("promoted" if run.decision["promoted"] else "rejected")
    assert mv.tags["promotion_reason"] == run.decision["reason"]
    assert (
        client.get_run(run.run_id).data.tags["promotion_decision"] == mv.tags["promotion_decision"]
    )
    arts = {a.path for a in client.list_artifacts(run.run_id, "tables")}
    assert {"tables/evaluation.csv", "tables/evaluation_24h.csv"} <= arts
    # drift is watched on the latest version while there is no champion
    if not run.decision["promoted"]:
        latest, role = fc.monitored_model(mlflow_store)
        assert role == fc.LATEST_ALIAS and latest.info["registered_version"] == run.version
    # force a champion to exercise serving (the rule would reject a 3-epoch model)
    mlflow_store.record_decision(fc.REGISTERED_NAME, run.version, True, "test")
    champ = fc.load_champion(mlflow_store)
    assert champ is not None and champ.info["registered_version"] == run.version
    out = fc.forecast_latest(champ, candles)
    assert out.height == 2 * 2 * len(champ.config.horizons)
    assert set(out["target"]) == {"log_return", "realized_vol"}
    assert (out["model_version"] == run.version).all()
    assert (out["origin_ts"] == candles["ts"].max()).all()
    # a second run is compared with that champion on the same hold-out
    run2 = fc.train_and_register(candles, mlflow_store, seed=1, n_folds=1, **FAST)
    assert run2.decision["champion_version"] == run.version
    assert "vs champion" in run2.decision["reason"] or "unseen" in run2.decision["reason"]
    versions = client.search_model_versions(f"name = '{fc.REGISTERED_NAME}'")
    assert len(versions) == 2  # rejected or not, both stay registered
    # drift of inputs and residuals against the champion's training window
    drift = fc.model_drift(champ, candles, "residuals", recent=timedelta(hours=60))
    assert set(drift.per_feature) == set(fc.residual_columns(champ))
    assert drift.current_rows > 0 and drift.reference_rows > 0
    inputs = fc.model_drift(champ, candles, "inputs", recent=timedelta(hours=60))
    assert inputs.n_features == len(champ.feature_cols)
    with pytest.raises(ValueError, match="unknown drift subject"):
        fc.model_drift(champ, candles, "labels")
    # a second store is independent of the first: nothing to reset between them
    other = MlflowStore(tmp_path / "other.db", tmp_path / "other-artifacts")
    assert fc.load_champion(other) is None
    assert fc.load_champion(mlflow_store).info["registered_version"] == run.version


def test_residuals_are_realized_minus_predicted(walk) -> None:
    m = walk.model
    res = fc.residuals(m, walk.frame)
    pred = m.predict(walk.frame).join(walk.frame, on=["symbol", "ts"])
    row = pred.drop_nulls("target_24h").row(0, named=True)
    got = res.filter(pl.col("symbol") == row["symbol"], pl.col("ts") == row["ts"]).row(
        0, named=True
    )
    assert got["resid_4h"] == pytest.approx(row["target_4h"] - row["pred_4h"])
    assert got["resid_rv_24h"] == pytest.approx(row["rv_target_24h"] - row["pred_rv_24h"])
    assert np.isfinite(res.select(pl.exclude("symbol", "ts")).to_numpy()).all()


def test_promotion_needs_every_baseline_and_the_champion() -> None:
    def ev(rows):
        return pl.DataFrame(
            [("ALL", h, m, k, v, 10) for h, m, k, v in rows], schema=EVALUATION_SCHEMA, orient="row"
        )

    base = [
        ("1h", "zero_return", "rmse", 1.0),
        ("1h", "persistence", "rmse", 1.2),
        ("1h", "ewma_vol", "vol_qlike", -5.0),
    ]
    good = ev([*base, ("1h", "lstm", "rmse", 0.9), ("1h", "lstm", "vol_qlike", -5.5)])
    d = fc.promotion_decision(good)
    assert d["promoted"] and len(d["comparisons"]) == 3  # HAR not scored (too few rows): skipped
    with_har = ev([*base, ("1h", "har", "vol_qlike", -5.6), ("1h", "lstm", "rmse", 0.9)])
    d = fc.promotion_decision(with_har.vstack(ev([("1h", "lstm", "vol_qlike", -5.5)])))
    assert not d["promoted"] and "1h vol_qlike vs har" in d["reason"]
    # beats the baselines but not the champion
    d = fc.promotion_decision(
        ev(
            [
                *base,
                ("1h", "lstm", "rmse", 0.9),
                ("1h", "lstm", "vol_qlike", -5.5),
                ("1h", "champion", "rmse", 0.8),
                ("1h", "champion", "vol_qlike", -5.2),
            ]
        )
    )
    assert not d["promoted"] and "vs champion" in d["reason"]
    assert [c["better"] for c in d["comparisons"] if c["against"] == "champion"] == [False, True]
    # loses to one baseline on one target
    d = fc.promotion_decision(
        ev([*base, ("1h", "lstm", "rmse", 1.1), ("1h", "lstm", "vol_qlike", -6)])
    )
    assert not d["promoted"] and "1h rmse vs zero_return" in d["reason"]
    # a missing challenger score fails the comparison instead of being skipped
    assert not fc.promotion_decision(ev([*base, ("1h", "lstm", "rmse", 0.5)]))["promoted"]
