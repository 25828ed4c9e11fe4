"""sentinance_assets.lib.forecasting: walk-forward evaluation, promotion, registry, drift."""

from __future__ import annotations

import copy
from datetime import timedelta

import mlflow
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from ml import tracking
from ml.evaluation import promotion_decision
from sentinance_assets.lib import forecasting as fc
from tests.ml.test_features import T0, make_candles

FAST = {"epochs": 3, "hidden": 4, "seeds": (0,), "patience": 1, "lookback": 8}


@pytest.fixture(scope="module")
def candles() -> pl.DataFrame:
    return make_candles(300, symbols=("BTC/USDT", "ETH/USDT"), seed=5)


@pytest.fixture(scope="module")
def walk(candles) -> fc.WalkForward:
    return fc.walk_forward(candles, seed=0, n_folds=2, **FAST)


def test_read_candles_file_handles_ms_seconds_iso_and_duplicates(tmp_path) -> None:
    base = 1_600_000_000  # seconds
    rows = [
        # descending, mixed units, one duplicate bar (same time in s and ms)
        (str((base + 7200) * 1000), "X/USDT", 3.0),
        (str(base + 3600), "X/USDT", 2.0),
        (str(base * 1000), "X/USDT", 1.0),
        (f"{base}.0", "X/USDT", 9.0),
    ]
    csv = tmp_path / "c.csv"
    csv.write_text(
        "Timestamp,Symbol,Open,High,Low,Close,Volume\n"
        + "".join(f"{t},{s},{c},{c},{c},{c},1\n" for t, s, c in rows)
    )
    got = fc.read_candles_file(csv)
    assert got.columns == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    assert got["close"].to_list() == [1.0, 2.0, 3.0]  # sorted, first duplicate kept
    assert got["ts"].dt.epoch("s").to_list() == [base, base + 3600, base + 7200]
    iso = tmp_path / "c.parquet"
    pl.DataFrame(
        {
            "timestamp": ["2020-09-13T12:26:40Z", "2020-09-13 13:26:40"],
            "symbol": ["X/USDT"] * 2,
            **{c: [1.0, 2.0] for c in ("open", "high", "low", "close", "volume")},
        }
    ).write_parquet(iso)
    assert fc.read_candles_file(iso)["ts"].dt.epoch("s").to_list() == [base, base + 3600]
    (tmp_path / "bad.csv").write_text("ts,symbol\n1,X\n")
    with pytest.raises(ValueError, match="missing columns"):
        fc.read_candles_file(tmp_path / "bad.csv")


def test_config_shrinks_horizons_to_the_history() -> None:
    frame = pl.DataFrame({"symbol": "X", "ts": [T0 + timedelta(hours=h) for h in range(60)]})
    cfg = fc.config_for(frame, T0 + timedelta(hours=47), seed=3)
    # 48 training rows (4k <= 48 -> k <= 12) and 12 hold-out rows (2k + 4 <= 12 -> k <= 4)
    assert cfg.horizons == {"1h": 1, "4h": 4}
    assert cfg.lookback == 16 and cfg.seeds == (3, 4, 5)
    with pytest.raises(ValueError, match="too little history"):
        fc.config_for(frame, T0 + timedelta(hours=2), seed=0)


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
    assert models == {"lstm", "zero_return", "persistence", "ewma_vol"}
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
    base = promotion_decision(walk.evaluation, champion=None)
    assert decision["promoted"] == (base["promoted"] and decision["vs_champion"]["promoted"])
    assert set(rows["model"].unique()) == {"champion", "lstm_vs_champion"}
    trained_to = fc.datetime.fromisoformat(champ.info["train_end_ts"])
    n_rows = rows.filter(pl.col("symbol") == "ALL", pl.col("metric") == "rmse")
    assert n_rows["n"].n_unique() == 1
    # a champion trained on everything has no unseen hold-out row: never replaced
    late = copy.copy(walk.model)
    late.info = {**late.info, "train_end_ts": walk.frame["ts"].max().isoformat()}
    late.info["registered_version"] = "9"
    d, r = fc.decide(walk, late)
    assert not d["promoted"] and "no unseen hold-out row" in d["reason"] and r.is_empty()
    assert trained_to < walk.frame["ts"].max()


def test_train_and_evaluate_registers_records_and_serves(tmp_path, candles) -> None:
    previous = mlflow.get_tracking_uri()
    try:
        db, art = tmp_path / "m.db", tmp_path / "art"
        run = fc.train_and_evaluate(candles, db, art, seed=0, n_folds=1, **FAST)
        client = MlflowClient()
        mv = client.get_model_version(fc.REGISTERED_NAME, run.version)
        assert mv.tags["promotion_decision"] == (
            "promoted" if run.decision["promoted"] else "rejected"
        )
        assert mv.tags["promotion_reason"] == run.decision["reason"]
        assert (
            client.get_run(run.run_id).data.tags["promotion_decision"]
            == mv.tags["promotion_decision"]
        )
        arts = {a.path for a in client.list_artifacts(run.run_id, "tables")}
        assert {"tables/evaluation.csv", "tables/evaluation_24h.csv"} <= arts
        rows = fc.evaluation_rows(run)
        assert (rows["run_id"] == run.run_id).all() and (rows["model_version"] == run.version).all()
        # force a champion to exercise serving (the rule would reject a 3-epoch model)
        tracking.record_decision(fc.REGISTERED_NAME, run.version, True, "test")
        champ = fc.champion(db, art)
        assert champ is not None and champ.info["registered_version"] == run.version
        out = fc.forecast_latest(champ, candles, "binance")
        assert out.height == 2 * 2 * len(champ.config.horizons)
        assert set(out["target"]) == {"log_return", "realized_vol"}
        assert (out["model_version"] == run.version).all()
        assert (out["origin_ts"] == candles["ts"].max()).all()
        # a second run is compared with that champion on the same hold-out
        run2 = fc.train_and_evaluate(candles, db, art, seed=1, n_folds=1, **FAST)
        assert run2.decision["champion_version"] == run.version
        assert "vs champion" in run2.decision["reason"] or "unseen" in run2.decision["reason"]
        versions = client.search_model_versions(f"name = '{fc.REGISTERED_NAME}'")
        assert len(versions) == 2  # rejected or not, both stay registered
        # drift of inputs and residuals against the champion's training window
        drift = fc.residual_drift(champ, candles, recent=timedelta(hours=60))
        assert set(drift.per_feature) == set(fc.residual_columns(champ))
        assert drift.current_rows > 0 and drift.reference_rows > 0
        inputs = fc.input_drift(champ, candles, recent=timedelta(hours=60))
        assert inputs.n_features == len(champ.feature_cols)
    finally:
        mlflow.set_tracking_uri(previous)
        tracking._state["artifact_root"] = None


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
