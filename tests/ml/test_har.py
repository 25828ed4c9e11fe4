"""ml.har: the HAR-RV baseline is fitted on training rows only and forecasts positive vols."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from ml.errors import InsufficientDataError
from ml.features import build_features
from ml.har import fit_har
from tests.ml.test_features import T0, make_candles


def _garch_candles(n: int, seed: int = 0) -> pl.DataFrame:
    """Hourly candles whose variance clusters (GARCH(1,1)), so past variance predicts it."""
    rng = np.random.default_rng(seed)
    var, rets = 1e-4, []
    for _ in range(n):
        r = rng.normal(0.0, np.sqrt(var))
        rets.append(r)
        var = 2e-6 + 0.1 * r**2 + 0.88 * var
    close = 100 * np.exp(np.cumsum(rets))
    open_ = np.r_[close[0], close[:-1]]
    return pl.DataFrame(
        {
            "symbol": "X/USDT",
            "ts": [T0 + timedelta(hours=h) for h in range(n)],
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1.0,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))


def test_har_uses_training_rows_only_and_predicts_positive_vols() -> None:
    frame, _ = build_features(make_candles(400, symbols=("X/USDT",)))
    train_end = frame["ts"].min() + timedelta(hours=250)
    model = fit_har(frame, train_end, {"1h": 1, "24h": 24})
    # changing anything after the training end leaves the fit unchanged
    later = frame.with_columns(
        pl.when(pl.col("ts") > train_end)
        .then(pl.col("har_1") * 50)
        .otherwise(pl.col("har_1"))
        .alias("har_1")
    )
    assert fit_har(later, train_end, {"1h": 1, "24h": 24}).coefs == model.coefs
    pred = model.predict(frame)
    assert pred.columns == ["symbol", "ts", "pred_rv_1h", "pred_rv_24h"]
    assert (pred["pred_rv_1h"] > 0).all() and (pred["pred_rv_24h"] > pred["pred_rv_1h"]).all()
    assert model.rows == {"1h": 251, "24h": 251}  # origins up to the training end


def test_har_beats_ewma_where_variance_clusters() -> None:
    """On a volatility-clustering series HAR's QLIKE is finite and no worse than a constant."""
    frame, _ = build_features(_garch_candles(3000))
    train_end = frame["ts"].min() + timedelta(hours=2000)
    model = fit_har(frame, train_end, {"1h": 1})
    b = model.coefs["1h"]
    assert b[1] + b[2] + b[3] > 0.3  # past variance carries information
    test = frame.filter(pl.col("ts") > train_end + timedelta(hours=1)).drop_nulls("rv_target_1h")
    p = model.predict(test)["pred_rv_1h"].to_numpy()
    rv = test["rv_target_1h"].to_numpy()
    const = np.full_like(p, np.sqrt(np.mean(rv**2)))

    def qlike(x):
        return float(np.mean(np.log(x**2) + rv**2 / x**2))

    assert qlike(p) < qlike(const)


def test_har_needs_realized_rows() -> None:
    frame, _ = build_features(make_candles(40, symbols=("X/USDT",)))
    with pytest.raises(InsufficientDataError, match="HAR"):
        fit_har(frame, frame["ts"].min(), {"1h": 1})
