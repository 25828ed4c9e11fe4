"""HAR-RV: the heterogeneous autoregressive model of realized volatility (Corsi 2009).

The literature's bar for volatility forecasts: a linear model of the next ``k`` bars' realized
variance on the mean bar variance of the last hour, day and week (``har_1``, ``har_24``,
``har_168`` of :mod:`ml.features`), which well-tuned machine-learning models rarely beat
("HARd to Beat", 2024; on Bitcoin, Miura et al. 2019). It is a baseline the LSTM must beat to
serve a volatility horizon, and it serves the horizons where it wins.

The form used here is the log HAR, fitted by least squares per horizon and pooled over symbols
(the regressors are log variances, so the fit is scale-free across markets, as the LSTM is)::

    ln(RV_k^2 + c) = b0 + b1 ln(har_1 + c) + b2 ln(har_24 + c) + b3 ln(har_168 + c) + e

and the forecast is the volatility whose square is the expected variance,
``sqrt(exp(yhat) * mean(exp(e)) - c)`` (the forecast QLIKE rewards), with Duan's (1983) smearing
estimate ``mean(exp(e))`` over the training residuals: the log of one hour's squared return is
far from normal (a log chi-square, left-skewed), so the log-normal ``exp(s^2 / 2)`` would
overstate the variance several-fold. ``c`` is a stabiliser of
1e-4 times the median bar variance of the training rows, so a bar without a price change (an
hourly variance of exactly 0) does not become ``-inf``. Logs rather than levels because crypto
variance is heavy-tailed: a level fit is dragged by a few crash hours and can predict a
negative variance. The choice was made from the literature, not from any data reported in the
README.

Fitted on the training rows only (origins up to ``train_end_ts`` whose target is realized),
refitted for every walk-forward fold, and refitted on all realized rows when it serves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from ml.errors import InsufficientDataError
from ml.features import HAR_LAGS, HORIZONS, vol_target_col

NAME = "har"
#: The stabiliser ``c`` as a share of the training rows' median bar variance.
STABILISER = 1e-4
#: Fewer realized training rows than this for a horizon: no fit (the baseline is not scored).
MIN_ROWS = 8


@dataclass(frozen=True)
class HarModel:
    """Coefficients per horizon label: ``(b0, b1, b2, b3)``, smearing factor, rows."""

    coefs: dict[str, tuple[float, ...]]
    smear: dict[str, float]
    rows: dict[str, int]
    stabiliser: float

    def predict(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``symbol, ts, pred_rv_<h>...`` for every row of ``frame`` (a features frame)."""
        x = _design(frame, self.stabiliser)
        out = frame.select("symbol", "ts")
        for h, b in self.coefs.items():
            var = np.maximum(np.exp(x @ np.asarray(b)) * self.smear[h] - self.stabiliser, 0.0)
            out = out.with_columns(pl.Series(f"pred_rv_{h}", np.sqrt(var)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "coefs": {h: list(b) for h, b in self.coefs.items()},
            "smear": self.smear,
            "rows": self.rows,
            "stabiliser": self.stabiliser,
        }


def _design(frame: pl.DataFrame, c: float) -> np.ndarray:
    lags = frame.select(list(HAR_LAGS)).to_numpy().astype(float)
    return np.column_stack([np.ones(len(lags)), np.log(np.maximum(lags, 0.0) + c)])


def fit_har(
    frame: pl.DataFrame,
    train_end_ts: datetime | None = None,
    horizons: Mapping[str, int] = HORIZONS,
) -> HarModel:
    """Fit one log-HAR per horizon on the rows with ``ts <= train_end_ts`` (all rows when
    ``None``) whose volatility target is realized.

    A horizon with fewer than :data:`MIN_ROWS` such rows is left out; when none has them:
    :class:`~ml.errors.InsufficientDataError`.
    """
    rows = frame if train_end_ts is None else frame.filter(pl.col("ts") <= train_end_ts)
    lags = rows.select(list(HAR_LAGS)).to_numpy().astype(float)
    median = float(np.median(lags[:, 0])) if len(lags) else 0.0
    c = STABILISER * median if median > 0 else 1e-12
    coefs: dict[str, tuple[float, ...]] = {}
    smear: dict[str, float] = {}
    counts: dict[str, int] = {}
    for h in horizons:
        fit = rows.drop_nulls(vol_target_col(h))
        if fit.height < MIN_ROWS:
            continue
        x = _design(fit, c)
        y = np.log(fit[vol_target_col(h)].to_numpy().astype(float) ** 2 + c)
        b, *_ = np.linalg.lstsq(x, y, rcond=None)
        coefs[h] = tuple(float(v) for v in b)
        smear[h] = float(np.mean(np.exp(y - x @ b)))
        counts[h] = int(len(y))
    if not coefs:
        raise InsufficientDataError(
            f"too little history for the HAR baseline: needs {MIN_ROWS} realized rows",
            needs=f"{MIN_ROWS} realized rows",
            has=str(rows.height),
        )
    if any(not math.isfinite(v) for b in coefs.values() for v in b):
        raise ValueError(f"HAR fit is not finite: {coefs}")
    return HarModel(coefs, smear, counts, c)
