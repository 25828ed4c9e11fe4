"""Forecasting assets: train + evaluate + register, serve the hold-out winners, watch drift.

Thin wiring: the lifecycle is :mod:`ml.forecast_lifecycle`, candles in and rows out are
:mod:`sentinance_assets.lib.forecast_io`, and the drift plumbing is
:mod:`sentinance_assets.defs.ml.drift`. Thin input (less than three days of hourly history, no
trained forecaster yet, too few rows for a drift test) skips with the reason in the shape of
:mod:`sentinance_assets.defs.skips`; it never fails the run.
"""

import json

import dagster as dg
import polars as pl

from ml import forecast_lifecycle
from ml.forecaster import TrainedForecaster
from ml.tracking import MlflowStore
from sentinance_assets.defs import skips
from sentinance_assets.defs.ml import drift
from sentinance_assets.lib import forecast_io, lake
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS
from sentinance_assets.settings import Settings

FORECASTER = dg.AssetKey(["ml", "forecaster"])
FORECASTS_KEY = dg.AssetKey(["ml", "forecasts"])
DRIFT_KEY = dg.AssetKey(["ml", "forecast_drift"])
INPUT_CHECK = "input_drift_below_limit"
RESIDUAL_CHECK = "residual_drift_below_limit"
#: metadata key prefix -> (check, drift subject); the retraining sensor reads the prefixes.
CHECKS = {"": (INPUT_CHECK, "inputs"), "residual_": (RESIDUAL_CHECK, "residuals")}
HISTORY = f"{forecast_lifecycle.MIN_HISTORY_DAYS} days of hourly history per symbol"
NOT_TRAINED = "no trained forecaster yet: materialize ml/forecaster"

#: Counts of the candles' quality shown as plain numbers (all of them are in ``data_quality``).
QUALITY_METADATA = (
    "missing_bars",
    "duplicate_rows",
    "maintenance_bars",
    "implausible_bars",
    "flagged_bars",
    "masked_feature_rows",
    "masked_lookback_rows",
)


@dg.asset(
    key=FORECASTER,
    group_name="ml",
    deps=[dg.AssetKey(["marts", "candles"])],
    kinds={"pytorch", "mlflow"},
    check_specs=[skips.enough_input_spec(FORECASTER, HISTORY)],
    description="LSTM seed ensemble (log return + realized volatility per horizon) evaluated "
    "walk-forward (expanding window, gap = max horizon) on the last 20 % of the span against "
    "zero-return, persistence and EWMA-volatility baselines; logged and registered in MLflow, "
    "promoted to `champion` only when it beats every baseline and the current champion on the "
    "same hold-out (the decision and its numbers are recorded either way). Missing, "
    "duplicated, maintenance and implausible bars are counted in `data_quality`; with less "
    f"than {HISTORY} it skips with the reason.",
)
def forecaster(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
) -> dg.MaterializeResult:
    exchange = settings.exchanges[0]
    candles = forecast_io.load_hourly_candles(settings.read_path, exchange)
    return skips.skip_on_thin(
        FORECASTER,
        lambda: _train(context, settings, mlflow_store, candles, exchange),
        exchange=exchange,
        hourly_bars=candles.height,
    )


def _train(
    context: dg.AssetExecutionContext,
    settings: Settings,
    mlflow_store: MlflowStore,
    candles: pl.DataFrame,
    exchange: str,
) -> dg.MaterializeResult:
    run = forecast_lifecycle.train_and_register(candles, mlflow_store, settings.seed)
    rows = forecast_io.evaluation_rows(run)
    lake.write_partition(settings.lake_dir, FORECAST_EVALUATION, rows, part=f"run-{run.run_id}")
    context.log.info(f"model v{run.version}: {run.decision['reason']}")
    quality = run.walk.quality.to_dict() if run.walk.quality else {"total": {}}
    total = quality["total"]
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
            "left_out_symbols": ", ".join(run.walk.short_symbols) or "none",
            "realized_volatility_from": run.walk.realized_from,
            "serving": dg.MetadataValue.json(run.model.info.get("serving_plan", {})),
            **{k: total.get(k, 0) for k in QUALITY_METADATA},
            "data_quality": dg.MetadataValue.json(quality),
            "evaluation": dg.MetadataValue.md(_table(rows)),
        },
        check_results=[skips.enough_input(FORECASTER, usable_bars=total.get("usable_bars", 0))],
    )


@dg.asset(
    key=FORECASTS_KEY,
    group_name="ml",
    deps=[FORECASTER],
    kinds={"pytorch"},
    check_specs=[
        skips.enough_input_spec(FORECASTS_KEY, "a trained forecaster and a usable last bar")
    ],
    description="Log-return and realized-volatility forecasts per horizon from the last bar of "
    "each symbol, each made by the model that won that target and horizon on the latest "
    "forecaster's walk-forward hold-out (the LSTM only where it beats every baseline; else "
    "zero return, persistence, EWMA or HAR), with split-conformal 80 % and 95 % intervals and "
    "their measured coverage; each row names the model, the version and why. While no "
    "version has been trained, or the candles have no usable last bar, "
    "it writes nothing and skips with the reason.",
)
def forecasts(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
) -> dg.MaterializeResult:
    return skips.skip_on_thin(
        FORECASTS_KEY, lambda: _forecast(context, settings, mlflow_store), rows=0
    )


def _forecast(
    context: dg.AssetExecutionContext, settings: Settings, mlflow_store: MlflowStore
) -> dg.MaterializeResult:
    exchange = settings.exchanges[0]
    model = forecast_lifecycle.load_serving(mlflow_store)
    if model is None:
        upstream = skips.upstream_skip(context, FORECASTER)
        reason = f"no trained forecaster yet ({upstream})" if upstream else NOT_TRAINED
        raise skips.ThinInputError(reason, needs="a trained forecaster", has="none")
    candles = forecast_io.load_hourly_candles(settings.read_path, exchange)
    out = forecast_io.forecast_rows(model, candles, exchange)
    symbols = sorted(candles["symbol"].unique().to_list())
    missing = sorted(set(symbols) - set(out["symbol"].to_list()))
    if out.is_empty():
        raise forecast_lifecycle.too_short_for(model, candles)
    origin = out["origin_ts"].max()
    lake.write_partition(settings.lake_dir, FORECASTS, out, part=f"origin-{origin:%Y%m%dT%H%M}")
    serving = out.unique(["target", "horizon"]).sort("target", "horizon")
    return dg.MaterializeResult(
        metadata={
            "rows": out.height,
            "model_version": str(model.info.get("registered_version")),
            "serving": dg.MetadataValue.md(_serving_table(serving)),
            "symbols_without_forecast": ", ".join(missing) or "none",
        },
        check_results=[skips.enough_input(FORECASTS_KEY, symbols=len(symbols) - len(missing))],
    )


@dg.asset(
    key=DRIFT_KEY,
    group_name="ml",
    deps=[FORECASTER],
    kinds={"evidently"},
    check_specs=[
        skips.enough_input_spec(DRIFT_KEY, f"a trained forecaster; {drift.NEEDS}"),
        drift.check_spec(INPUT_CHECK, DRIFT_KEY, "model inputs"),
        drift.check_spec(RESIDUAL_CHECK, DRIFT_KEY, "prediction residuals"),
    ],
    description="evidently data drift of the champion's inputs and of its prediction residuals "
    "(of the most recently trained version while there is no champion): training window vs "
    "the most recent two days. The retraining sensor reads "
    "`share_drifted` from this asset's materializations. Skips with the reason while there is "
    "no trained forecaster or too little data on either side.",
)
def forecast_drift(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
) -> dg.MaterializeResult:
    model, role = forecast_lifecycle.monitored_model(mlflow_store)
    if model is None:
        upstream = skips.upstream_skip(context, FORECASTER)
        reason = "no trained forecaster yet" + (f" ({upstream})" if upstream else "")
        return skips.skip(DRIFT_KEY, reason, checks=[c for c, _ in CHECKS.values()])
    candles = forecast_io.load_hourly_candles(settings.read_path, settings.exchanges[0])
    limit = settings.drift_share
    name = f"{forecast_lifecycle.REGISTERED_NAME}:{model.info.get('registered_version')}"
    checks = {
        prefix: drift.measure(
            check, limit, _measurement(model, candles, name, subject, limit), what=subject
        )
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


def _serving_table(serving: pl.DataFrame) -> str:
    lines = [
        "| target | horizon | model | 80 % cover | 95 % cover | why |",
        "|---|---|---|---|---|---|",
    ]
    for r in serving.iter_rows(named=True):
        cov = [f"{r[c]:.0%}" if r[c] is not None else "n/a" for c in ("coverage_80", "coverage_95")]
        cells = [r["target"], r["horizon"], r["model"], *cov, r["reason"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table(rows: pl.DataFrame) -> str:
    pooled = rows.filter(pl.col("symbol") == "ALL")
    lines = ["| horizon | model | metric | value | n |", "|---|---|---|---|---|"]
    for r in pooled.iter_rows(named=True):
        lines.append(
            f"| {r['horizon']} | {r['model']} | {r['metric']} | {r['value']:.6g} | {r['n']} |"
        )
    return "\n".join(lines)
