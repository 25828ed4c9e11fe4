"""What serves each forecast: the walk-forward winner per target and horizon, with intervals.

A user should get the best forecast the hold-out can vouch for, not nothing while the LSTM is
not yet better than everything. So for every target (log return, realized volatility) and
horizon, :func:`serving_plan` picks, from one training run's walk-forward evaluation pooled
over symbols, the candidate with the lowest loss (RMSE for returns, QLIKE for volatility)
among the LSTM and the baselines (zero return and persistence; EWMA and HAR volatility). Ties
go to the simpler model, so the LSTM serves a horizon only when it beats every baseline there.
The plan records why (loss, rows, the runner-up and the Diebold-Mariano p-value against it)
and the interval quantiles: split-conformal quantiles of that model's scale-free hold-out
residuals (:func:`ml.evaluation.conformal_quantiles`) with the coverage they reached when
calibrated on earlier folds only.

The plan is saved with the run's LSTM (``info["serving_plan"]``), so the registered version
that chose it is also the one :func:`serve` loads; the baselines are recomputed from the
candles at the forecast origin (HAR refitted on every realized row).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from ml import har
from ml.evaluation import ALL_SYMBOLS, INTERVAL_LEVELS, MODEL_NAME, RETURN, VOLATILITY
from ml.features import EWMA_VAR, HORIZONS, build_features, past_return_col
from ml.forecaster import TrainedForecaster

#: Candidates per target, simplest first (ties go to the earlier one).
CANDIDATES: dict[str, tuple[str, ...]] = {
    RETURN: ("zero_return", "persistence", MODEL_NAME),
    VOLATILITY: ("ewma_vol", har.NAME, MODEL_NAME),
}
LOSS = {RETURN: "rmse", VOLATILITY: "vol_qlike"}
LOSS_LABEL = {RETURN: "RMSE", VOLATILITY: "QLIKE"}
LEVELS = tuple(f"{round(level * 100)}" for level in INTERVAL_LEVELS)


def _values(evaluation: pl.DataFrame, horizon: str, metric: str) -> dict[str, tuple[float, int]]:
    sel = evaluation.filter(
        (pl.col("symbol") == ALL_SYMBOLS)
        & (pl.col("horizon") == horizon)
        & (pl.col("metric") == metric)
    )
    return {
        r["model"]: (float(r["value"]), int(r["n"]))
        for r in sel.iter_rows(named=True)
        if r["value"] is not None and math.isfinite(r["value"])
    }


def serving_plan(
    evaluation: pl.DataFrame,
    quantiles: Mapping[tuple[str, str, str], Mapping[str, Any]],
    horizons: Mapping[str, int],
) -> dict[str, dict[str, Any]]:
    """``{"<target>:<horizon>": entry}`` for every target and horizon with a scored candidate.

    ``entry``: ``target, horizon, model, metric, value, n, runner_up, runner_up_value,
    dm_pvalue, quantiles {"80": [lo, hi], "95": [lo, hi]}, coverage_80, coverage_95, reason``.
    """
    plan: dict[str, dict[str, Any]] = {}
    for target, names in CANDIDATES.items():
        metric = LOSS[target]
        prefix = "" if target == RETURN else "vol_"
        for h in horizons:
            scores = _values(evaluation, h, metric)
            ranked = sorted(
                (m for m in names if m in scores), key=lambda m: (scores[m][0], names.index(m))
            )
            if not ranked:
                continue
            best = ranked[0]
            value, n = scores[best]
            runner = ranked[1] if len(ranked) > 1 else None
            dm = _values(evaluation, h, f"{prefix}dm_pvalue:{runner}").get(best) if runner else None
            cover = {
                lvl: _values(evaluation, h, f"{prefix}coverage_{lvl}").get(best) for lvl in LEVELS
            }
            q = quantiles.get((target, h, best), {})
            label = LOSS_LABEL[target]
            reason = f"lowest pooled {label} on the walk-forward hold-out ({value:.4g}, n={n})"
            if runner is not None:
                p = f"{dm[0]:.2g}" if dm else "n/a"
                reason += f"; runner-up {runner} ({scores[runner][0]:.4g}), DM p={p}"
            if best == MODEL_NAME:
                reason += "; beats every baseline on this horizon"
            plan[f"{target}:{h}"] = {
                "target": target,
                "horizon": h,
                "model": best,
                "metric": metric,
                "value": value,
                "n": n,
                "runner_up": runner,
                "runner_up_value": scores[runner][0] if runner else None,
                "dm_pvalue": dm[0] if dm else None,
                "quantiles": {lvl: q.get(lvl) for lvl in LEVELS},
                "coverage_80": cover["80"][0] if cover["80"] else None,
                "coverage_95": cover["95"][0] if cover["95"] else None,
                "reason": reason,
            }
    return plan


def serve(
    plan: Mapping[str, Mapping[str, Any]],
    candles: pl.DataFrame,
    lstm: TrainedForecaster | None,
    version: str,
) -> pl.DataFrame:
    """Forecasts from the last usable bar of each symbol, by the plan's model per target and
    horizon, with the plan's intervals: ``symbol, origin_ts, horizon, target, prediction,
    lower_80, upper_80, lower_95, upper_95, model, model_version, reason, coverage_80,
    coverage_95``.

    A symbol whose last bar the LSTM cannot forecast (too short a run of bars for its
    look-back) gets no row for the horizons the LSTM serves; the others are served.
    """
    frame, _ = build_features(candles, HORIZONS)
    if frame.is_empty() or not plan:
        return _empty()
    last = frame.filter(pl.col("ts") == pl.col("ts").max().over("symbol")).sort("symbol")
    needs_har = any(e["model"] == har.NAME for e in plan.values())
    needs_lstm = any(e["model"] == MODEL_NAME for e in plan.values())
    har_pred = None
    if needs_har:
        horizons = {e["horizon"]: HORIZONS[e["horizon"]] for e in plan.values()}
        har_pred = har.fit_har(frame, None, horizons).predict(last)
    lstm_pred = None
    if needs_lstm and lstm is not None:
        window = frame.filter(
            pl.col("ts")
            > pl.col("ts").max().over("symbol") - lstm.config.lookback * lstm.config.bar
        )
        lstm_pred = last.select("symbol", "ts").join(
            lstm.predict(window), on=["symbol", "ts"], how="left"
        )
    rows: list[dict[str, Any]] = []
    for entry in plan.values():
        h, target, model = entry["horizon"], entry["target"], entry["model"]
        k = HORIZONS[h]
        scale = np.sqrt(k * last[EWMA_VAR].to_numpy())
        if model == "zero_return":
            pred = np.zeros(last.height)
        elif model == "persistence":
            pred = last[past_return_col(h)].to_numpy()
        elif model == "ewma_vol":
            pred = scale
        elif model == har.NAME and har_pred is not None:
            pred = har_pred[f"pred_rv_{h}"].to_numpy()
        elif model == MODEL_NAME and lstm_pred is not None:
            col = f"pred_rv_{h}" if target == VOLATILITY else f"pred_{h}"
            if col not in lstm_pred.columns:
                continue
            pred = lstm_pred[col].to_numpy().astype(float)
        else:
            continue
        bounds: dict[str, np.ndarray] = {}
        for lvl in LEVELS:
            q = entry["quantiles"].get(lvl)
            lo, hi = (math.nan, math.nan) if not q or None in q else (float(q[0]), float(q[1]))
            if target == RETURN:
                bounds[f"lower_{lvl}"], bounds[f"upper_{lvl}"] = (
                    pred + lo * scale,
                    pred + hi * scale,
                )
            else:
                bounds[f"lower_{lvl}"] = pred * math.exp(lo)
                bounds[f"upper_{lvl}"] = pred * math.exp(hi)
        for i, (sym, origin) in enumerate(zip(last["symbol"], last["ts"], strict=True)):
            if not math.isfinite(pred[i]):
                continue
            rows.append(
                {
                    "symbol": sym,
                    "origin_ts": origin,
                    "horizon": h,
                    "target": target,
                    "prediction": float(pred[i]),
                    **{c: _finite(v[i]) for c, v in bounds.items()},
                    "model": model,
                    "model_version": version,
                    "reason": entry["reason"],
                    "coverage_80": entry.get("coverage_80"),
                    "coverage_95": entry.get("coverage_95"),
                }
            )
    if not rows:
        return _empty()
    order = {h: i for i, h in enumerate(HORIZONS)}
    out = pl.DataFrame(rows, schema=SERVED_SCHEMA)
    return out.sort("symbol", "target", pl.col("horizon").replace_strict(order))


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


SERVED_SCHEMA: dict[str, Any] = {
    "symbol": pl.String,
    "origin_ts": pl.Datetime("us", "UTC"),
    "horizon": pl.String,
    "target": pl.String,
    "prediction": pl.Float64,
    **{f"{side}_{lvl}": pl.Float64 for lvl in LEVELS for side in ("lower", "upper")},
    "model": pl.String,
    "model_version": pl.String,
    "reason": pl.String,
    "coverage_80": pl.Float64,
    "coverage_95": pl.Float64,
}


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SERVED_SCHEMA)
