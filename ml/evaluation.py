"""Out-of-sample evaluation of return forecasts against naive baselines on the same rows.

A forecaster of crypto returns is only interesting if it beats doing nothing, so every metric
is computed for the model and for the baselines on exactly the same rows:

* ``zero_return`` predicts a log return of 0 (the random-walk forecast);
* ``persistence`` predicts that the last ``k`` bars' log return repeats (``ret_past_<h>``);
* ``ewma_vol`` (volatility target) predicts the realized volatility over the next ``k`` bars as
  ``sqrt(k * ewma_var)``, the RiskMetrics EWMA variance (lambda 0.94) scaled by the square-root
  of time.

Other models (e.g. the current champion, under ``model = "champion"``) can be scored on the
same rows too: rows are those where *every* model has a prediction.

Test rows start ``max horizon`` bars after ``train_end_ts`` (:func:`holdout_rows`): a training
row at ``train_end_ts`` has a target reaching ``max horizon`` bars past it, so any earlier test
row would share returns with a training target. The same gap is used for every horizon because
the horizons share one network: its 24h head has seen the returns the 1h head would be tested
on.

Metrics (long format, one row per ``symbol, horizon, model, metric``):

* ``mae``, ``rmse`` in log-return units, ``n`` = rows;
* ``vol_mae`` (volatility units) and ``vol_qlike`` for the realized-volatility target, with
  ``QLIKE = mean(ln(p^2) + rv^2 / p^2)`` for predicted volatility ``p`` and realized ``rv``
  (Patton 2011; robust to noise in the realized proxy, finite when ``rv = 0``; it equals the
  normalized form ``rv^2/p^2 - ln(rv^2/p^2) - 1`` plus a term that does not depend on the
  model, so differences between models are the same; lower is better, values can be negative);
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

Each symbol is also pooled into ``symbol = "ALL"``. Walk-forward evaluation
(:func:`evaluate_windows`) takes one window per fold of :func:`walk_forward_splits` (each scored
by the model trained up to that fold's ``train_end_ts``) and scores the out-of-sample rows of
all folds together.

This module only measures; whether a challenger may replace the champion is decided from these
tables by :func:`ml.forecast_lifecycle.decide`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import binomtest
from scipy.stats import t as student_t

from ml.features import EWMA_VAR, HORIZONS, past_return_col, target_col, vol_target_col

ALL_SYMBOLS = "ALL"
MODEL_NAME = "lstm"
CHAMPION = "champion"
BASELINES = ("zero_return", "persistence")
VOL_BASELINES = ("ewma_vol", "har")
#: The two targets of a forecast, as ``ml.forecasts.target`` names them.
RETURN, VOLATILITY = "log_return", "realized_vol"
#: Nominal coverage of the split-conformal intervals.
INTERVAL_LEVELS = (0.8, 0.95)
#: Round-trip cost of one trade in the sign-trading check (basis points).
TRADE_COST_BP = 10.0
METRICS = ("mae", "rmse", "direction_accuracy", "direction_pvalue")
VOL_METRICS = ("vol_mae", "vol_qlike")
#: Predicted volatilities are floored here before QLIKE (a zero forecast has infinite loss).
QLIKE_FLOOR = 1e-12

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


def qlike(pred_vol: np.ndarray, realized_vol: np.ndarray) -> float:
    """``mean(ln(p^2) + rv^2 / p^2)`` (see module docstring); NaN for no rows."""
    p2 = np.maximum(np.asarray(pred_vol, dtype=float), QLIKE_FLOOR) ** 2
    a2 = np.asarray(realized_vol, dtype=float) ** 2
    return float(np.mean(np.log(p2) + a2 / p2)) if p2.size else math.nan


def _vol_metrics(pred: np.ndarray, actual: np.ndarray) -> list[tuple[str, float, int]]:
    n = int(actual.size)
    mae = float(np.mean(np.abs(pred - actual))) if n else math.nan
    return [("vol_mae", mae, n), ("vol_qlike", qlike(pred, actual), n)]


def _pred_cols(h: str) -> tuple[str, str]:
    return f"pred_{h}", f"pred_rv_{h}"


def _window_rows(
    frame: pl.DataFrame,
    train_end_ts: datetime,
    test_end_ts: datetime | None,
    models: Mapping[str, pl.DataFrame],
    horizons: Mapping[str, int],
    bar: timedelta,
) -> pl.DataFrame:
    """Test rows of one window joined with every model's predictions (columns
    ``<pred col>@<model>``) and ``_bar`` = bars since the window's first allowed origin."""
    rows = holdout_rows(frame, train_end_ts, horizons, bar, test_end_ts)
    for name, preds in models.items():
        cols = [c for h in horizons for c in _pred_cols(h) if c in preds.columns]
        if not cols:
            raise ValueError(f"predictions of {name!r} have no pred_<h> column for {horizons}")
        rows = rows.join(
            preds.select("symbol", "ts", *[pl.col(c).alias(f"{c}@{name}") for c in cols]),
            on=["symbol", "ts"],
            how="inner",
        )
    start = train_end_ts + max(horizons.values()) * bar
    step = int(bar.total_seconds() * 1e6)
    return rows.with_columns(((pl.col("ts") - start).dt.total_microseconds() // step).alias("_bar"))


@dataclass
class _Scored:
    """The rows of one target and horizon where every candidate has a prediction."""

    target: str  # RETURN or VOLATILITY
    k: int
    symbol: np.ndarray
    ts: np.ndarray
    block: np.ndarray  # conformal blocks: calibrate on earlier blocks, measure on this one
    independent: np.ndarray  # non-overlapping origins
    actual: np.ndarray
    scale: np.ndarray  # the EWMA volatility over the horizon (standardises return residuals)
    preds: dict[str, np.ndarray]

    def residual(self, model: str) -> np.ndarray:
        """Scale-free residual: return error / EWMA volatility, or ln(realized / predicted)."""
        pred = self.preds[model]
        if self.target == RETURN:
            return (self.actual - pred) / np.maximum(self.scale, QLIKE_FLOOR)
        return np.log(np.maximum(self.actual, QLIKE_FLOOR) / np.maximum(pred, QLIKE_FLOOR))

    def interval(self, model: str, z: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """The interval of residual quantiles ``z`` around the model's predictions."""
        pred = self.preds[model]
        if self.target == RETURN:
            return pred + z[0] * self.scale, pred + z[1] * self.scale
        return pred * math.exp(z[0]), pred * math.exp(z[1])

    def loss(self, model: str) -> np.ndarray:
        """Per-row loss: squared error (returns), QLIKE (volatility)."""
        pred = self.preds[model]
        if self.target == RETURN:
            return (pred - self.actual) ** 2
        p2 = np.maximum(pred, QLIKE_FLOOR) ** 2
        return np.log(p2) + self.actual**2 / p2


def _blocks(joined: pl.DataFrame) -> pl.Expr:
    """Conformal blocks: the walk-forward folds; a single fold is cut in two halves in time."""
    if joined["_fold"].n_unique() > 1:
        return pl.col("_fold")
    return (pl.col("_bar") > pl.col("_bar").median()).cast(pl.Int64)


def _scored(
    frame: pl.DataFrame,
    windows: Sequence[tuple[datetime, datetime | None, Mapping[str, pl.DataFrame]]],
    horizons: Mapping[str, int],
    bar: timedelta,
) -> list[tuple[str, _Scored]]:
    """Per horizon and target, the rows every candidate (models and baselines) is scored on."""
    if not windows:
        raise ValueError("no evaluation windows")
    names = list(windows[0][2])
    if any(list(w[2]) != names for w in windows):
        raise ValueError("every window must hold predictions of the same models")
    parts = [
        _window_rows(frame, tr, te, models, horizons, bar).with_columns(pl.lit(i).alias("_fold"))
        for i, (tr, te, models) in enumerate(windows)
    ]
    joined = pl.concat(parts, how="diagonal_relaxed")
    joined = joined.with_columns(_blocks(joined).alias("_block")) if joined.height else joined
    out: list[tuple[str, _Scored]] = []
    for h, k in horizons.items():
        pcol, vcol = _pred_cols(h)
        tcol, bcol, rvcol = target_col(h), past_return_col(h), vol_target_col(h)
        ret_models = [m for m in names if f"{pcol}@{m}" in joined.columns]
        vol_models = [m for m in names if f"{vcol}@{m}" in joined.columns]
        for col in (tcol, bcol):
            if ret_models and col not in joined.columns:
                raise ValueError(f"missing column {col!r} for horizon {h}")
        specs = []
        if ret_models:
            ewma = [EWMA_VAR] if EWMA_VAR in joined.columns else []  # scales the intervals
            specs.append((RETURN, tcol, [tcol, bcol, *ewma], pcol, ret_models))
        if vol_models and rvcol in joined.columns and EWMA_VAR in joined.columns:
            specs.append((VOLATILITY, rvcol, [rvcol, EWMA_VAR], vcol, vol_models))
        for target, actual_col, needed, col, models in specs:
            cols = [*needed, *[f"{col}@{m}" for m in models]]
            r = joined.drop_nulls(cols).filter(pl.all_horizontal(pl.col(cols).is_finite()))
            r = r.sort("ts", "symbol")
            scale = (
                np.sqrt(k * r[EWMA_VAR].to_numpy())
                if EWMA_VAR in r.columns
                else np.full(r.height, math.nan)
            )
            preds = {m: r[f"{col}@{m}"].to_numpy() for m in models}
            if target == RETURN:
                preds["zero_return"] = np.zeros(r.height)
                preds["persistence"] = r[bcol].to_numpy()
            else:
                preds["ewma_vol"] = scale
            scored = _Scored(
                target=target,
                k=k,
                symbol=r["symbol"].to_numpy(),
                ts=r["ts"].to_numpy(),
                block=r["_block"].to_numpy() if r.height else np.zeros(0, dtype=int),
                independent=(r["_bar"] % k == 0).to_numpy(),
                actual=r[actual_col].to_numpy(),
                scale=scale,
                preds=preds,
            )
            out.append((h, scored))
    return out


def conformal_z(z: np.ndarray, level: float) -> tuple[float, float]:
    """Equal-tailed split-conformal quantiles of residuals ``z`` for coverage ``level``: the
    order statistics at ``floor((n + 1) a/2)`` and ``ceil((n + 1)(1 - a/2))`` (Vovk et al.
    2005; Lei et al. 2018), so the interval covers at least ``level`` of exchangeable new
    residuals; the extremes when ``n`` is too small for that."""
    z = np.sort(z[np.isfinite(z)])
    n = z.size
    if n == 0:
        return math.nan, math.nan
    alpha = 1.0 - level
    lo = math.floor((n + 1) * alpha / 2) - 1
    hi = math.ceil((n + 1) * (1 - alpha / 2)) - 1
    return float(z[max(lo, 0)]), float(z[min(hi, n - 1)])


def dm_test(d: np.ndarray, ts: np.ndarray, k: int) -> tuple[float, float, int]:
    """Diebold-Mariano test of equal predictive accuracy on loss differentials ``d``.

    Differentials of the same origin (several symbols) are averaged first, so the series has
    one value per origin; its long-run variance uses the ``k - 1`` autocovariances a
    ``k``-step forecast's errors share (Diebold & Mariano 1995), with the small-sample
    correction of Harvey, Leybourne & Newbold (1997) and a Student t with ``n - 1`` degrees of
    freedom. Returns ``(statistic, two-sided p-value, origins)``; NaN with fewer than 3
    origins or no variation.
    """
    if d.size == 0:
        return math.nan, math.nan, 0
    order = np.argsort(ts, kind="stable")
    uniq, idx = np.unique(ts[order], return_inverse=True)
    series = np.bincount(idx, weights=d[order]) / np.bincount(idx)
    n = series.size
    if n < 3:
        return math.nan, math.nan, n
    e = series - series.mean()
    h = max(1, min(k, n - 1))
    var = float(e @ e / n) + 2.0 * sum(float(e[j:] @ e[:-j] / n) for j in range(1, h))
    if var <= 0:
        var = float(e @ e / n)
    if var <= 0:
        return math.nan, math.nan, n
    stat = float(series.mean() / math.sqrt(var / n))
    stat *= math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 1e-12) / n)
    return stat, float(2 * student_t.sf(abs(stat), n - 1)), n


def _trading(pred: np.ndarray, actual: np.ndarray) -> tuple[float, int]:
    """Mean net log return per trade, in basis points, of trading the forecast's sign with a
    round-trip cost of :data:`TRADE_COST_BP` (one trade per non-overlapping origin that makes
    a call); NaN and 0 without a call."""
    calls = pred != 0
    n = int(calls.sum())
    if n == 0:
        return math.nan, 0
    net = np.sign(pred[calls]) * actual[calls] - TRADE_COST_BP * 1e-4
    return float(net.mean() * 1e4), n


def _interval_metrics(
    sc: _Scored, model: str, mask: np.ndarray, prefix: str
) -> list[tuple[str, float, int]]:
    """Coverage and mean width of the conformal intervals on the rows of ``mask`` in blocks
    after the first, each calibrated on the residuals of every earlier block (all symbols)."""
    z = sc.residual(model)
    out: list[tuple[str, float, int]] = []
    for level in INTERVAL_LEVELS:
        covered, widths = [], []
        for b in np.unique(sc.block):
            calib = sc.block < b
            test = (sc.block == b) & mask
            if not calib.any() or not test.any():
                continue
            q = conformal_z(z[calib], level)
            if not all(map(math.isfinite, q)):
                continue
            lo, hi = sc.interval(model, q)
            covered.append((lo[test] <= sc.actual[test]) & (sc.actual[test] <= hi[test]))
            widths.append((hi - lo)[test])
        tag = f"{round(level * 100)}"
        n = int(sum(c.size for c in covered))
        cov = float(np.concatenate(covered).mean()) if n else math.nan
        width = float(np.concatenate(widths).mean()) if n else math.nan
        out += [(f"{prefix}coverage_{tag}", cov, n), (f"{prefix}width_{tag}", width, n)]
    return out


def _normalised_qlike(sc: _Scored, model: str, mask: np.ndarray) -> float:
    """Mean ``rv^2/p^2 - ln(rv^2/p^2) - 1`` over the rows with ``rv > 0`` (zero at a perfect
    forecast, so ratios of it mean something, unlike ratios of QLIKE)."""
    keep = mask & (sc.actual > 0)
    if not keep.any():
        return math.nan
    ratio = sc.actual[keep] ** 2 / np.maximum(sc.preds[model][keep], QLIKE_FLOOR) ** 2
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def _group_metrics(sc: _Scored, mask: np.ndarray) -> list[tuple[str, str, float, int]]:
    """``(model, metric, value, n)`` of every candidate on the rows of ``mask``."""
    out: list[tuple[str, str, float, int]] = []
    actual = sc.actual[mask]
    prefix = "" if sc.target == RETURN else "vol_"
    losses = {m: sc.loss(m) for m in sc.preds}
    point: dict[str, list[tuple[str, float, int]]] = {}
    scale: dict[str, float] = {}  # the loss skill compares: RMSE, or normalised QLIKE
    for model, full in sc.preds.items():  # once per model, not once per pair
        if sc.target == RETURN:
            point[model] = _metrics(full[mask], actual, sc.independent[mask])
            scale[model] = point[model][1][1]
        else:
            point[model] = _vol_metrics(full[mask], actual)
            scale[model] = _normalised_qlike(sc, model, mask)
    for model, full in sc.preds.items():
        rows = list(point[model])
        if sc.target == RETURN:
            indep = sc.independent[mask]
            net, trades = _trading(full[mask][indep], actual[indep])
            rows.append(("net_bp", net, trades))
        rows += _interval_metrics(sc, model, mask, prefix)
        own = scale[model]
        for other in sc.preds:
            if other == model:
                continue
            theirs = scale[other]
            skill = 1.0 - own / theirs if theirs and math.isfinite(theirs) else math.nan
            _, p, n = dm_test((losses[model] - losses[other])[mask], sc.ts[mask], sc.k)
            rows += [
                (f"{prefix}skill:{other}", skill, int(mask.sum())),
                (f"{prefix}dm_pvalue:{other}", p, n),
            ]
        out += [(model, metric, value, n) for metric, value, n in rows]
    return out


def evaluate_windows(
    frame: pl.DataFrame,
    windows: Sequence[tuple[datetime, datetime | None, Mapping[str, pl.DataFrame]]],
    horizons: Mapping[str, int] = HORIZONS,
    bar: timedelta = timedelta(hours=1),
    pooled: bool = True,
) -> pl.DataFrame:
    """Score several models and the baselines on the test rows of one or more windows.

    Args:
        frame: features frame from :func:`ml.features.build_features`.
        windows: ``(train_end_ts, test_end_ts, {model name: predictions})`` per fold; each
            fold's rows are ``holdout_rows(frame, train_end_ts, horizons, bar, test_end_ts)``
            and each model's predictions (``symbol, ts, pred_<h>..., pred_rv_<h>...``) must
            come from a model trained on data up to that ``train_end_ts``. Every window must
            name the same models. Rows of all windows are scored together (walk-forward).
        horizons: label -> bars (the full horizon set of the models: the gap is its max).
        pooled: also emit ``symbol = "ALL"`` rows.

    Returns:
        ``symbol, horizon, model, metric, value, n``. Per ``(symbol, horizon)`` and target,
        every model and baseline is scored on the same rows: those with a realized target, the
        baseline inputs and a prediction from every model that predicts that horizon.
    """
    out: list[tuple[str, str, str, str, float, int]] = []
    for h, sc in _scored(frame, windows, horizons, bar):
        symbols = sorted(set(sc.symbol.tolist()))
        groups = [(s, sc.symbol == s) for s in symbols]
        if pooled and symbols:
            groups.append((ALL_SYMBOLS, np.ones(sc.symbol.size, dtype=bool)))
        for sym, mask in groups:
            for model, metric, value, n in _group_metrics(sc, mask):
                out.append((sym, h, model, metric, value, n))
    return pl.DataFrame(out, schema=EVALUATION_SCHEMA, orient="row")


def conformal_quantiles(
    frame: pl.DataFrame,
    windows: Sequence[tuple[datetime, datetime | None, Mapping[str, pl.DataFrame]]],
    horizons: Mapping[str, int] = HORIZONS,
    bar: timedelta = timedelta(hours=1),
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The residual quantiles a served interval uses, from every hold-out row of every window
    (all symbols): ``{(target, horizon, model): {"80": [lo, hi], "95": [lo, hi], "n": rows}}``
    with the residuals of :meth:`_Scored.residual` (returns: error / EWMA volatility over the
    horizon; volatility: ``ln(realized / predicted)``)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for h, sc in _scored(frame, windows, horizons, bar):
        for model in sc.preds:
            z = sc.residual(model)
            entry: dict[str, Any] = {"n": int(np.isfinite(z).sum())}
            for level in INTERVAL_LEVELS:
                entry[f"{round(level * 100)}"] = list(conformal_z(z, level))
            out[(sc.target, h, model)] = entry
    return out


def evaluate_forecasts(
    frame: pl.DataFrame,
    predictions: pl.DataFrame,
    train_end_ts: datetime,
    horizons: Mapping[str, int] = HORIZONS,
    model_name: str = MODEL_NAME,
    bar: timedelta = timedelta(hours=1),
    test_end_ts: datetime | None = None,
    pooled: bool = True,
    others: Mapping[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Score ``predictions`` (and ``others``) against the baselines after ``train_end_ts``.

    One window of :func:`evaluate_windows`: ``predictions`` are named ``model_name``;
    ``others`` maps more model names (e.g. ``"champion"``) to predictions scored on the same
    rows. ``horizons`` should be the model's full horizon set (the hold-out gap is its max).
    """
    models = {model_name: predictions, **dict(others or {})}
    return evaluate_windows(
        frame, [(train_end_ts, test_end_ts, models)], horizons, bar, pooled=pooled
    )


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
