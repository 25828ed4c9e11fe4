"""ml.forecaster: leak-free scaling and splits, reproducibility, persistence."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import torch

from ml.features import build_features
from ml.forecaster import (
    ForecasterConfig,
    TrainedForecaster,
    pred_col,
    pred_vol_col,
    train_forecaster,
)
from tests.ml.test_features import T0, make_candles

TINY = ForecasterConfig(lookback=8, hidden=8, epochs=4, batch_size=32, patience=2, seeds=(0, 1))
TRAIN_END = T0 + timedelta(hours=100)


@pytest.fixture(scope="module")
def features() -> tuple[pl.DataFrame, list[str]]:
    return build_features(make_candles(160, symbols=("BTC/USDT", "ETH/USDT")))


@pytest.fixture(scope="module")
def model(features: tuple[pl.DataFrame, list[str]]) -> TrainedForecaster:
    frame, cols = features
    return train_forecaster(frame, cols, TINY, TRAIN_END)


def test_scaler_fitted_on_training_rows_only(features, model) -> None:
    frame, cols = features
    train = frame.filter(pl.col("ts") <= TRAIN_END).select(cols).to_numpy()
    everything = frame.select(cols).to_numpy()
    np.testing.assert_allclose(model.feature_mean, train.mean(axis=0))
    assert not np.allclose(model.feature_mean, everything.mean(axis=0))
    assert model.info["n_train_rows"] == train.shape[0]


def test_validation_split_leaves_horizon_gap(model) -> None:
    info = model.info
    fit_end = np.datetime64(info["fit_end_ts"].rstrip("Z"))
    val_start = np.datetime64(info["val_start_ts"].rstrip("Z"))
    assert val_start - fit_end >= np.timedelta64(24, "h")
    assert info["n_fit_windows"] > 0 and info["n_val_windows"] > 0
    assert len(info["per_seed"]) == 2


def test_future_after_train_window_does_not_change_the_model(features, model) -> None:
    # Training targets reach max-horizon bars past TRAIN_END; anything later must not matter.
    candles = make_candles(160, symbols=("BTC/USDT", "ETH/USDT"))
    later = pl.col("ts") > TRAIN_END + timedelta(hours=24)
    shocked = candles.with_columns(
        [
            pl.when(later).then(pl.col(c) * 1.5).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close", "volume")
        ]
    )
    frame2, cols = build_features(shocked)
    model2 = train_forecaster(frame2, cols, TINY, TRAIN_END)
    frame, _ = features
    assert model2.predict(frame).equals(model.predict(frame))


def test_training_is_reproducible_and_seed_sensitive(features, model) -> None:
    frame, cols = features
    again = train_forecaster(frame, cols, TINY, TRAIN_END)
    assert again.predict(frame).equals(model.predict(frame))
    other = train_forecaster(
        frame, cols, ForecasterConfig(**{**TINY.to_dict(), "seeds": (5, 6)}), TRAIN_END
    )
    assert not other.predict(frame).equals(model.predict(frame))
    # process-wide torch settings are restored after training
    assert not torch.are_deterministic_algorithms_enabled()


def test_predict_covers_rows_with_full_lookback(features, model) -> None:
    frame, _ = features
    pred = model.predict(frame)
    per_symbol = frame.group_by("symbol").len()["len"].to_list()
    assert pred.height == sum(n - (TINY.lookback - 1) for n in per_symbol)
    assert pred.columns == [
        "symbol",
        "ts",
        *(pred_col(h) for h in TINY.horizons),
        *(pred_vol_col(h) for h in TINY.horizons),
    ]
    assert pred.select(pl.exclude("symbol", "ts")).null_count().sum_horizontal().item() == 0
    # volatility heads are exp(log-vol): positive, and of the order of the realized volatility
    vol = pred.select(pred_vol_col(h) for h in TINY.horizons).to_numpy()
    assert (vol > 0).all()
    realized = frame["rv_target_4h"].drop_nulls().median()
    assert 0.2 * realized < float(np.median(pred["pred_rv_4h"])) < 5 * realized
    # the ensemble averages its members
    single = [
        TrainedForecaster(**{**model.__dict__, "nets": [net]}).predict(frame) for net in model.nets
    ]
    mean = (single[0]["pred_4h"] + single[1]["pred_4h"]) / 2
    np.testing.assert_allclose(pred["pred_4h"].to_numpy(), mean.to_numpy(), rtol=1e-6)
    long = model.predict_long(frame)
    assert long.columns == ["symbol", "origin_ts", "horizon", "target", "prediction"]
    assert long.height == 6 * pred.height
    assert long["horizon"].head(6).to_list() == ["1h", "4h", "24h"] * 2
    assert long["target"].head(6).to_list() == ["log_return"] * 3 + ["realized_vol"] * 3
    first = long.head(6)["prediction"].to_list()
    row = pred.row(0, named=True)
    assert first == [row[c] for c in TINY.output_cols()]


def test_windows_never_span_gaps(model) -> None:
    candles = make_candles(160, symbols=("BTC/USDT",))
    frame, _ = build_features(candles.filter(pl.col("ts") != T0 + timedelta(hours=80)))
    pred = model.predict(frame)
    for _, seg in frame.group_by("segment"):
        lo = seg["ts"].min() + timedelta(hours=TINY.lookback - 1)
        hi = seg["ts"].max()
        n = pred.filter(pl.col("ts").is_between(seg["ts"].min(), hi)).height
        assert n == seg.filter(pl.col("ts") >= lo).height


def test_save_load_round_trip(tmp_path, features, model) -> None:
    frame, _ = features
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["forecaster.json", "seed_0.safetensors", "seed_1.safetensors"]
    meta = json.loads((tmp_path / "m" / "forecaster.json").read_text())
    assert meta["config"]["lookback"] == TINY.lookback
    loaded = TrainedForecaster.load(tmp_path / "m")
    assert loaded.predict(frame).equals(model.predict(frame))
    assert loaded.config == model.config
    assert loaded.feature_cols == model.feature_cols


def test_too_little_history_is_a_clear_error(features) -> None:
    frame, cols = features
    with pytest.raises(ValueError, match="need more history|not enough training windows"):
        train_forecaster(frame, cols, TINY, T0 + timedelta(hours=40))


def test_volatility_forecast_is_bias_corrected_from_validation_residuals(features, model) -> None:
    import copy

    frame, _ = features
    s2 = model.vol_log_var  # the smearing correction (also absorbs a validation bias)
    assert s2 is not None and s2.shape == (len(TINY.horizons),) and np.isfinite(s2).all()
    assert model.info["vol_log_var"] == s2.tolist()
    raw = copy.copy(model)
    raw.vol_log_var = None  # exp(m): the conditional median
    a, b = model.predict(frame), raw.predict(frame)
    for j, h in enumerate(TINY.horizons):
        ratio = (a[f"pred_rv_{h}"] / b[f"pred_rv_{h}"]).to_numpy()
        np.testing.assert_allclose(ratio, np.exp(s2[j]), rtol=1e-9)
        np.testing.assert_array_equal(a[f"pred_{h}"].to_numpy(), b[f"pred_{h}"].to_numpy())
