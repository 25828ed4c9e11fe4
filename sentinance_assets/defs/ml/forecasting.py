"""Forecasting assets: train + evaluate + register, forecast with the champion, watch drift."""

import json
import uuid
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from ml.drift import InsufficientDataError
from sentinance_assets.lib import forecasting, lake
from sentinance_assets.lib.schemas import DRIFT, FORECAST_EVALUATION, FORECASTS
from sentinance_assets.settings import Settings

FORECASTER = dg.AssetKey(["ml", "forecaster"])
DRIFT_KEY = dg.AssetKey(["ml", "forecast_drift"])
DRIFT_SHARE_LIMIT = 0.5


@dg.asset(
    key=FORECASTER,
    group_name="ml",
    deps=[dg.AssetKey(["marts", "candles"])],
    kinds={"pytorch", "mlflow"},
    description="LSTM seed ensemble over 1-hour features, trained on the first 80 % of the "
    "span and evaluated on the rest against zero-return and persistence baselines; logged and "
    "registered in MLflow, promoted to `champion` only when it beats the current champion.",
)
def forecaster(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    exchange = settings.exchanges[0]
    candles = forecasting.load_hourly_candles(settings.read_path, exchange)
    run = forecasting.train_and_evaluate(
        candles, settings.mlflow_db, settings.mlflow_artifacts, settings.seed
    )
    rows = forecasting.evaluation_rows(run)
    lake.write_partition(settings.lake_dir, FORECAST_EVALUATION, rows, part=f"run-{run.run_id}")
    context.log.info(f"model v{run.version}: {run.decision['reason']}")
    return dg.MaterializeResult(
        metadata={
            "model_version": run.version,
            "mlflow_run_id": run.run_id,
            "promoted": bool(run.decision["promoted"]),
            "decision": run.decision["reason"],
            "train_seconds": run.model.info.get("train_seconds"),
            "train_end_ts": run.train_end_ts.isoformat(),
            "exchange": exchange,
            "evaluation": dg.MetadataValue.md(_table(rows)),
        }
    )


@dg.asset(
    key=["ml", "forecasts"],
    group_name="ml",
    deps=[FORECASTER],
    kinds={"pytorch"},
    description="1h / 4h / 24h log-return forecasts from the last bar of each symbol, made by "
    "the `champion` model; each row records the model version.",
)
def forecasts(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    exchange = settings.exchanges[0]
    model = forecasting.champion(settings.mlflow_db, settings.mlflow_artifacts)
    candles = forecasting.load_hourly_candles(settings.read_path, exchange)
    out = forecasting.forecast_latest(model, candles, exchange)
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
        dg.AssetCheckSpec(
            "input_drift_below_limit",
            asset=DRIFT_KEY,
            description=f"share of drifted model inputs below {DRIFT_SHARE_LIMIT:.0%}",
        )
    ],
    description="evidently data drift of the champion's inputs: training window vs the most "
    "recent two days.",
)
def forecast_drift(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    model = forecasting.champion(settings.mlflow_db, settings.mlflow_artifacts)
    candles = forecasting.load_hourly_candles(settings.read_path, settings.exchanges[0])
    run_id = context.run_id or uuid.uuid4().hex
    try:
        result = forecasting.input_drift(model, candles)
    except InsufficientDataError as exc:
        return dg.MaterializeResult(
            metadata={"skipped": str(exc)},
            check_results=[
                dg.AssetCheckResult(
                    check_name="input_drift_below_limit",
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"reason": str(exc)},
                )
            ],
        )
    row = {
        "run_id": run_id,
        "model": f"{forecasting.REGISTERED_NAME}:{model.info.get('registered_version')}",
        "checked_at": datetime.now(UTC),
        "reference_rows": result.reference_rows,
        "current_rows": result.current_rows,
        "n_features": result.n_features,
        "drifted_features": result.drifted_features,
        "share_drifted": result.share_drifted,
        "dataset_drift": result.dataset_drift,
        "details": result.details_json(),
    }
    lake.write_partition(settings.lake_dir, DRIFT, pl.DataFrame([row]), part=f"run-{run_id}")
    passed = result.share_drifted < DRIFT_SHARE_LIMIT
    return dg.MaterializeResult(
        metadata={
            "share_drifted": result.share_drifted,
            "drifted_features": result.drifted_features,
            "details": dg.MetadataValue.json(json.loads(result.details_json())),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="input_drift_below_limit",
                passed=passed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"share_drifted": result.share_drifted},
            )
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
