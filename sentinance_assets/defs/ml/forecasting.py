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
DRIFT_SHARE_LIMIT = 0.5  # default; Settings.drift_share (SENTINANCE_DRIFT_SHARE) overrides


def drift_share(settings: Settings) -> float:
    return settings.drift_share


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
            "previous_champion": str(run.decision.get("champion_version")),
            "comparisons": dg.MetadataValue.json(
                json.loads(forecasting.decision_summary(run.decision))
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
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    exchange = settings.exchanges[0]
    model = forecasting.champion(settings.mlflow_db, settings.mlflow_artifacts)
    if model is None:
        reason = "no champion: no registered version has beaten the baselines yet"
        context.log.warning(reason)
        return dg.MaterializeResult(metadata={"rows": 0, "skipped": reason})
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
            description="share of drifted model inputs below the drift share (default "
            f"{DRIFT_SHARE_LIMIT:.0%}, SENTINANCE_DRIFT_SHARE)",
        ),
        dg.AssetCheckSpec(
            "residual_drift_below_limit",
            asset=DRIFT_KEY,
            description="share of drifted prediction residuals below the drift share",
        ),
    ],
    description="evidently data drift of the champion's inputs and of its prediction residuals "
    "(of the most recently trained version while there is no champion): training window vs "
    "the most recent two days. The retraining sensor reads "
    "`share_drifted` from this asset's materializations.",
)
def forecast_drift(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    model, role = forecasting.monitored_model(settings.mlflow_db, settings.mlflow_artifacts)
    checks = ("input_drift_below_limit", "residual_drift_below_limit")
    if model is None:
        reason = "no trained forecaster to monitor yet"
        return dg.MaterializeResult(
            metadata={"skipped": reason},
            check_results=[
                dg.AssetCheckResult(
                    check_name=c,
                    passed=True,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"skipped": reason},
                )
                for c in checks
            ],
        )
    candles = forecasting.load_hourly_candles(settings.read_path, settings.exchanges[0])
    run_id = context.run_id or uuid.uuid4().hex
    limit = drift_share(settings)
    name = f"{forecasting.REGISTERED_NAME}:{model.info.get('registered_version')}"
    metadata: dict = {"drift_share_limit": limit, "model": name, "role": role}
    check_results, rows = [], []
    for check, subject, fn in (
        (checks[0], "inputs", forecasting.input_drift),
        (checks[1], "residuals", forecasting.residual_drift),
    ):
        try:
            result = fn(model, candles, drift_share=limit)
        except InsufficientDataError as exc:
            metadata[f"{subject}_skipped"] = str(exc)
            check_results.append(
                dg.AssetCheckResult(
                    check_name=check,
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"reason": str(exc)},
                )
            )
            continue
        rows.append(
            {
                "run_id": run_id,
                # the subject travels in the model column until ml.drift has its own column
                "model": f"{name}:{subject}",
                "checked_at": datetime.now(UTC),
                "reference_rows": result.reference_rows,
                "current_rows": result.current_rows,
                "n_features": result.n_features,
                "drifted_features": result.drifted_features,
                "share_drifted": result.share_drifted,
                "dataset_drift": result.dataset_drift,
                "details": result.details_json(),
            }
        )
        prefix = "" if subject == "inputs" else "residual_"
        metadata[f"{prefix}share_drifted"] = result.share_drifted
        metadata[f"{prefix}drifted_features"] = result.drifted_features
        metadata[f"{prefix}details"] = dg.MetadataValue.json(json.loads(result.details_json()))
        check_results.append(
            dg.AssetCheckResult(
                check_name=check,
                passed=result.share_drifted < limit,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"share_drifted": result.share_drifted, "limit": limit},
            )
        )
    if rows:
        lake.write_partition(
            settings.lake_dir, DRIFT, DRIFT.conform(pl.DataFrame(rows)), part=f"run-{run_id}"
        )
    return dg.MaterializeResult(metadata=metadata, check_results=check_results)


def _table(rows: pl.DataFrame) -> str:
    pooled = rows.filter(pl.col("symbol") == "ALL")
    lines = ["| horizon | model | metric | value | n |", "|---|---|---|---|---|"]
    for r in pooled.iter_rows(named=True):
        lines.append(
            f"| {r['horizon']} | {r['model']} | {r['metric']} | {r['value']:.6g} | {r['n']} |"
        )
    return "\n".join(lines)
