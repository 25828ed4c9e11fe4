"""Out-of-sample evaluation of return forecasts against naive baselines on the same rows.

A forecaster of crypto returns is only interesting if it beats doing nothing, so every metric
is computed for the model and for two baselines on exactly the same rows:

* ``zero_return`` predicts a log return of 0 (the random-walk forecast);
* ``persistence`` predicts that the last ``k`` bars' log return repeats (``ret_past_<h>``).

Test rows start ``max horizon`` bars after ``train_end_ts`` (:func:`holdout_rows`): a training
row at ``train_end_ts`` has a target reaching ``max horizon`` bars past it, so any earlier test
row would share returns with a training target. The same gap is used for every horizon because
the horizons share one network: its 24h head has seen the returns the 1h head would be tested
on.

Metrics (long format, one row per ``symbol, horizon, model, metric``):

* ``mae``, ``rmse`` in log-return units, ``n`` = rows;
* ``direction_accuracy``: share of *calls* whose sign matches the realized return (``n`` =
  calls). A prediction of exactly 0 is "no call" and is left out, so ``zero_return`` has
  ``n = 0`` and NaN accuracy / p-value: it has no directional view, which is not the same as
  being wrong half the time. A call against a realized return of exactly 0 counts as a miss.
* ``direction_pvalue``: two-sided exact binomial test (``scipy.stats.binomtest``) of the hit
  count against 50%, on *non-overlapping* origins only (every ``k``-th bar from the test
  start, ``n`` = those calls). Consecutive k-bar targets share ``k - 1`` returns, so hits are
  autocorrelated and a test on all rows would be wildly over-confident (on a pure random walk
  it gave p ~ 1e-12 for 24h persistence). For 1h all rows are used. The pooled ``ALL`` test
  still treats symbols as independent, which correlated crypto markets are not: read it as
  optimistic.

Each symbol is also pooled into ``symbol = "ALL"``. Walk-forward evaluation is a loop over
:func:`walk_forward_splits`: train up to each split's ``train_end_ts``, evaluate its window,
concatenate the frames with a fold column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from scipy.stats import binomtest

from ml.features import HORIZONS, past_return_col, target_col

ALL_SYMBOLS = "ALL"
MODEL_NAME = "lstm"
BASELINES = ("zero_return", "persistence")
METRICS = ("mae", "rmse", "direction_accuracy", "direction_pvalue")

EVALUATION_SCHEMA = {
    "symbol": pl.String,
    "horizon": pl.String,
    "model": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "n": pl.Int64,
}


def holdout_rows(
    frame: pl.DataFrame,
    train_end_ts: datetime,
    horizons: Mapping[str, int] = HORIZONS,
    bar: timedelta = timedelta(hours=1),
    test_end_ts: datetime | None = None,
) -> pl.DataFrame:
    """Rows with ``train_end_ts + max_horizon * bar <= ts`` (and ``ts <= test_end_ts``)."""
    start = train_end_ts + max(horizons.values()) * bar
    cond = pl.col("ts") >= start
    if test_end_ts is not None:
        cond = cond & (pl.col("ts") <= test_end_ts)
    return frame.filter(cond)


def direction_stats(pred: np.ndarray, actual: np.ndarray) -> tuple[float, float, int]:
    """``(accuracy, two-sided binomial p-value vs 0.5, calls)``; zero predictions are no call.

    With no calls, accuracy and p-value are NaN.
    """
    pred = np.asarray(pred, dtype=float)
    actual = np.asarray(actual, dtype=float)
    calls = pred != 0
    n = int(calls.sum())
    if n == 0:
        return math.nan, math.nan, 0
    hits = int((np.sign(pred[calls]) == np.sign(actual[calls])).sum())
    return hits / n, float(binomtest(hits, n, 0.5, alternative="two-sided").pvalue), n


def _metrics(
    pred: np.ndarray, actual: np.ndarray, independent: np.ndarray
) -> list[tuple[str, float, int]]:
    err = pred - actual
    n = int(err.size)
    mae = float(np.mean(np.abs(err))) if n else math.nan
    rmse = float(np.sqrt(np.mean(err**2))) if n else math.nan
    acc, _, calls = direction_stats(pred, actual)
    _, pval, calls_indep = direction_stats(pred[independent], actual[independent])
    return [
        ("mae", mae, n),
        ("rmse", rmse, n),
        ("direction_accuracy", acc, calls),
        ("direction_pvalue", pval, calls_indep),
    ]


def evaluate_forecasts(
    frame: pl.DataFrame,
    predictions: pl.DataFrame,
    train_end_ts: datetime,
    horizons: Mapping[str, int] = HORIZONS,
    model_name: str = MODEL_NAME,
    bar: timedelta = timedelta(hours=1),
    test_end_ts: datetime | None = None,
    pooled: bool = True,
) -> pl.DataFrame:
    """Score ``predictions`` and the baselines on the test rows after ``train_end_ts``.

    Args:
        frame: features frame from :func:`ml.features.build_features` (``symbol, ts``,
            ``target_<h>`` and ``ret_past_<h>`` for each horizon).
        predictions: ``symbol, ts, pred_<h>...`` (:meth:`TrainedForecaster.predict`).
        train_end_ts: the ``train_end_ts`` the model was trained with.
        horizons: label -> bars; pass the model's full horizon set even when scoring a subset
            would do, since the hold-out gap is its max (the horizons share one network).
        model_name: value of the ``model`` column for the predictions.
        test_end_ts: optional last origin of the test window (walk-forward folds).
        pooled: also emit ``symbol = "ALL"`` rows over all symbols.

    Returns:
        ``symbol, horizon, model, metric, value, n`` (see module docstring). Per
        ``(symbol, horizon)`` every model is scored on the same rows: those in the test
        window with a realized target and a model prediction.
    """
    rows = holdout_rows(frame, train_end_ts, horizons, bar, test_end_ts)
    joined = rows.join(predictions, on=["symbol", "ts"], how="inner")
    start = train_end_ts + max(horizons.values()) * bar
    bar_index = (pl.col("ts") - start).dt.total_microseconds() // int(bar.total_seconds() * 1e6)
    out: list[tuple[str, str, str, str, float, int]] = []
    symbols = sorted(joined["symbol"].unique().to_list())
    groups: list[tuple[str, pl.DataFrame]] = [
        (s, joined.filter(pl.col("symbol") == s)) for s in symbols
    ]
    if pooled and symbols:
        groups.append((ALL_SYMBOLS, joined))
    for h in horizons:
        pcol, tcol, bcol = f"pred_{h}", target_col(h), past_return_col(h)
        for col in (pcol, tcol, bcol):
            if col not in joined.columns:
                raise ValueError(f"missing column {col!r} for horizon {h}")
        for sym, g in groups:
            g = g.drop_nulls([pcol, tcol, bcol]).filter(
                pl.all_horizontal(pl.col(pcol, tcol, bcol).is_finite())
            )
            independent = g.select(bar_index % horizons[h] == 0).to_series().to_numpy()
            actual = g[tcol].to_numpy()
            candidates = {
                model_name: g[pcol].to_numpy(),
                "zero_return": np.zeros_like(actual),
                "persistence": g[bcol].to_numpy(),
            }
            for model, pred in candidates.items():
                for metric, value, n in _metrics(pred, actual, independent):
                    out.append((sym, h, model, metric, value, n))
    return pl.DataFrame(out, schema=EVALUATION_SCHEMA, orient="row")


def skill_scores(
    evaluation: pl.DataFrame,
    model: str = MODEL_NAME,
    baseline: str = "zero_return",
    metric: str = "rmse",
    symbol: str = ALL_SYMBOLS,
) -> dict[str, float]:
    """Per horizon ``1 - metric(model) / metric(baseline)`` (higher is better, > 0 beats the
    baseline); a single number per horizon for promotion decisions."""
    sel = evaluation.filter((pl.col("symbol") == symbol) & (pl.col("metric") == metric))
    out: dict[str, float] = {}
    for h in sel["horizon"].unique(maintain_order=True).to_list():
        vals = {
            r["model"]: r["value"] for r in sel.filter(pl.col("horizon") == h).iter_rows(named=True)
        }
        m, b = vals.get(model), vals.get(baseline)
        out[h] = 1.0 - m / b if m is not None and b not in (None, 0.0) else math.nan
    return out


def evaluation_metrics(evaluation: pl.DataFrame) -> dict[str, float]:
    """Flatten an evaluation frame to MLflow metric names ``<model>.<metric>.<horizon>.<symbol>``
    (``/`` in symbols becomes ``-``; NaN values are dropped because MLflow charts skip them)."""
    out: dict[str, float] = {}
    for r in evaluation.iter_rows(named=True):
        if r["value"] is None or (isinstance(r["value"], float) and math.isnan(r["value"])):
            continue
        sym = re.sub(r"[^0-9A-Za-z_.\- ]", "-", r["symbol"])
        out[f"{r['model']}.{r['metric']}.{r['horizon']}.{sym}"] = float(r["value"])
    return out


def walk_forward_splits(
    frame: pl.DataFrame,
    n_folds: int,
    test_bars: int,
    horizons: Mapping[str, int] = HORIZONS,
    bar: timedelta = timedelta(hours=1),
) -> list[tuple[datetime, datetime]]:
    """Expanding-window folds ``(train_end_ts, test_end_ts)``, oldest first, tiling the end of
    the data: each fold's test window holds ``test_bars`` origins with realized targets for the
    max horizon, starting ``max horizon`` bars after its ``train_end_ts``."""
    if n_folds < 1 or test_bars < 1:
        raise ValueError("n_folds and test_bars must be >= 1")
    gap = max(horizons.values()) * bar
    last_origin = frame["ts"].max() - gap  # last origin whose longest target is observed
    folds = []
    for i in range(n_folds):
        test_end = last_origin - i * test_bars * bar
        test_start = test_end - (test_bars - 1) * bar
        folds.append((test_start - gap, test_end))
    folds.reverse()
    if folds[0][0] <= frame["ts"].min():
        raise ValueError("not enough history for the requested folds")
    return folds
