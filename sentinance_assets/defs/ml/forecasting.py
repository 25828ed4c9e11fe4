"""Forecasting assets: train + evaluate + register, forecast with the champion, watch drift.

Thin wiring: the lifecycle is :mod:`ml.forecast_lifecycle`, candles in and rows out are
:mod:`sentinance_assets.lib.forecast_io`, and the drift plumbing is
:mod:`sentinance_assets.defs.ml.drift`.
"""

import json

import dagster as dg
import polars as pl

from ml import forecast_lifecycle
from ml.forecaster import TrainedForecaster
from ml.tracking import MlflowStore
from sentinance_assets.defs.ml import drift
from sentinance_assets.lib import forecast_io, lake
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS
from sentinance_assets.settings import Settings

FORECASTER = dg.AssetKey(["ml", "forecaster"])
DRIFT_KEY = dg.AssetKey(["ml", "forecast_drift"])
INPUT_CHECK = "input_drift_below_limit"
RESIDUAL_CHECK = "residual_drift_below_limit"
#: metadata key prefix -> (check, drift subject); the retraining sensor reads the prefixes.
CHECKS = {"": (INPUT_CHECK, "inputs"), "residual_": (RESIDUAL_CHECK, "residuals")}


@dg.asset(
    key=FORECASTER,
    group_name="ml",
    deps=[dg.AssetKey(["marts", "candles"])],
    kinds={"pytorch", "mlflow"},
    description="LSTM seed ensemble (log return + realized volatility per horizon) evaluated "
    "walk-forward (expanding window, gap = max horizon) on the last 20 % of the span against "
    "zero-return, persistence and EWMA-volatility baselines; logged and registered in MLflow, "
    "promoted to `champion` only when it beats every baseline and the current champion on the "
    "same hold-out (the decision and its numbers are recorded either way).",
)
def forecaster(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
) -> dg.MaterializeResult:
    exchange = settings.exchanges[0]
    candles = forecast_io.load_hourly_candles(settings.read_path, exchange)
    run = forecast_lifecycle.train_and_register(candles, mlflow_store, settings.seed)
    rows = forecast_io.evaluation_rows(run)
    lake.write_partition(settings.lake_dir, FORECAST_EVALUATION, rows, part=f"run-{run.run_id}")
    context.log.info(f"model v{run.version}: {run.decision['reason']}")
    return dg.MaterializeResult(
        metadata={
            "model_version": run.version,
            "mlflow_run_id": run.run_id,
            "promoted": bool(run.decision["promoted"]),
            "decision": run.decision["reason"],
            "previous_champion": str(run.decision.get("champion_version")),
            "comparisons": dg.MetadataValue.json(
                json.loads(forecast_lifecycle.decision_summary(run.decision))
            ),
            "train_seconds": run.model.info.get("train_seconds"),
            "mean_epoch_seconds": run.model.info.get("mean_epoch_seconds"),
            "walk_forward_seconds": round(run.walk.seconds, 3),
            "folds": len(run.walk.folds),
            "horizons": ", ".join(run.walk.config.horizons),
            "train_end_ts": run.train_end_ts.isoformat(),
            "test_start_ts": run.walk.test_start_ts.isoformat(),
            "exchange": exchange,
            "evaluation": dg.MetadataValue.md(_table(rows)),
        }
    )


@dg.asset(
    key=["ml", "forecasts"],
    group_name="ml",
    deps=[FORECASTER],
    kinds={"pytorch"},
    description="Log-return and realized-volatility forecasts per horizon from the last bar of "
    "each symbol, made by the `champion` model; each row records the model version. Nothing is "
    "written while no version has earned the champion alias.",
)
def forecasts(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
) -> dg.MaterializeResult:
    exchange = settings.exchanges[0]
    model = forecast_lifecycle.load_champion(mlflow_store)
    if model is None:
        reason = "no champion: no registered version has beaten the baselines yet"
        context.log.warning(reason)
        return dg.MaterializeResult(metadata={"rows": 0, "skipped": reason})
    candles = forecast_io.load_hourly_candles(settings.read_path, exchange)
    out = forecast_io.forecast_rows(model, candles, exchange)
    origin = out["origin_ts"].max()
    part = f"origin-{origin:%Y%m%dT%H%M}" if origin is not None else "empty"
    lake.write_partition(settings.lake_dir, FORECASTS, out, part=part)
    return dg.MaterializeResult(
        metadata={"rows": out.height, "model_version": str(model.info.get("registered_version"))}
    )


@dg.asset(
    key=DRIFT_KEY,
    group_name="ml",
    deps=[FORECASTER],
    kinds={"evidently"},
    check_specs=[
        drift.check_spec(INPUT_CHECK, DRIFT_KEY, "model inputs"),
        drift.check_spec(RESIDUAL_CHECK, DRIFT_KEY, "prediction residuals"),
    ],
    description="evidently data drift of the champion's inputs and of its prediction residuals "
    "(of the most recently trained version while there is no champion): training window vs "
    "the most recent two days. The retraining sensor reads "
    "`share_drifted` from this asset's materializations.",
)
def forecast_drift(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
) -> dg.MaterializeResult:
    model, role = forecast_lifecycle.monitored_model(mlflow_store)
    if model is None:
        return _nothing_to_watch("no trained forecaster to monitor yet")
    candles = forecast_io.load_hourly_candles(settings.read_path, settings.exchanges[0])
    limit = settings.drift_share
    name = f"{forecast_lifecycle.REGISTERED_NAME}:{model.info.get('registered_version')}"
    checks = {
        prefix: drift.measure(check, limit, _measurement(model, candles, name, subject, limit))
        for prefix, (check, subject) in CHECKS.items()
    }
    metadata = {"drift_share_limit": limit, "model": name, "role": role}
    return drift.report(context, settings.lake_dir, checks, metadata)


def _measurement(
    model: TrainedForecaster, candles: pl.DataFrame, name: str, subject: str, limit: float
) -> drift.Measure:
    """One subject's drift measurement, its ``ml.drift`` row named ``<model>:<subject>``."""
    return lambda: (
        f"{name}:{subject}",
        forecast_lifecycle.model_drift(model, candles, subject, drift_share=limit),
    )


def _nothing_to_watch(reason: str) -> dg.MaterializeResult:
    """No model yet: the checks pass (with a WARN severity and the reason) rather than fail,
    since there is nothing wrong to report."""
    return dg.MaterializeResult(
        metadata={"skipped": reason},
        check_results=[
            dg.AssetCheckResult(
                check_name=c,
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"skipped": reason},
            )
            for c, _ in CHECKS.values()
        ],
    )


def _table(rows: pl.DataFrame) -> str:
    pooled = rows.filter(pl.col("symbol") == "ALL")
    lines = ["| horizon | model | metric | value | n |", "|---|---|---|---|---|"]
    for r in pooled.iter_rows(named=True):
        lines.append(
            f"| {r['horizon']} | {r['model']} | {r['metric']} | {r['value']:.6g} | {r['n']} |"
        )
    return "\n".join(lines)
