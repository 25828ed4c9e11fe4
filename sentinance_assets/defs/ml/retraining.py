"""Retraining of the forecaster: a job, a weekly schedule and a drift sensor.

* ``forecast_retraining_job`` materializes ``ml/forecaster`` (walk-forward evaluation, register,
  promotion decision), then ``ml/forecasts`` and ``ml/forecast_drift`` with the (possibly new)
  champion.
* ``weekly_forecast_retraining`` runs it every Monday 03:00 UTC regardless of drift. Its default
  status is STOPPED (like the other schedules): switch it on in the UI or with
  ``dagster schedule start``.
* ``forecast_drift_sensor`` watches ``ml/forecast_drift`` materializations and launches the job
  when the share of drifted model inputs (or of residual columns) reaches the drift share
  (``Settings.drift_share`` / ``SENTINANCE_DRIFT_SHARE``, default 0.5). It is RUNNING
  by default: it only reacts to new drift results, once per materialization (the run key is the
  event id), and ignores drift results produced by the retraining job itself, so a retraining
  cannot re-trigger itself in a loop.
"""

import dagster as dg

from sentinance_assets.defs.ml.forecasting import DRIFT_KEY, FORECASTER
from sentinance_assets.settings import Settings

RETRAINING_JOB = "forecast_retraining_job"

forecast_retraining_job = dg.define_asset_job(
    RETRAINING_JOB,
    selection=dg.AssetSelection.assets(FORECASTER).downstream(),
    description="Retrain the forecaster (walk-forward evaluation, registry, promotion), then "
    "forecast and check drift with the champion.",
    tags={"sentinance/purpose": "retraining"},
)

weekly_forecast_retraining = dg.ScheduleDefinition(
    name="weekly_forecast_retraining",
    job=forecast_retraining_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Retrain the forecaster every Monday at 03:00 UTC, drift or not.",
)


def drift_exceeds(metadata: dict, limit: float) -> tuple[bool, str]:
    """Whether a drift materialization's metadata crosses ``limit`` (pure; tested)."""
    shares = {}
    for key in ("share_drifted", "residual_share_drifted"):
        entry = metadata.get(key)
        value = getattr(entry, "value", entry)
        if isinstance(value, (int, float)):
            shares[key] = float(value)
    if not shares:
        return False, "no drift share in the materialization (drift check was skipped)"
    over = {k: v for k, v in shares.items() if v >= limit}
    if over:
        detail = ", ".join(f"{k}={v:.0%}" for k, v in over.items())
        return True, f"{detail} >= {limit:.0%}"
    detail = ", ".join(f"{k}={v:.0%}" for k, v in shares.items())
    return False, f"{detail} below {limit:.0%}"


@dg.asset_sensor(
    asset_key=DRIFT_KEY,
    job=forecast_retraining_job,
    name="forecast_drift_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch forecaster retraining when the drift check reports a share of drifted "
    "features at or above the drift share.",
)
def forecast_drift_sensor(
    context: dg.SensorEvaluationContext,
    asset_event: dg.EventLogEntry,
    settings: dg.ResourceParam[Settings],
):
    mat = asset_event.asset_materialization
    if mat is None:
        return dg.SkipReason("event without a materialization")
    run = context.instance.get_run_by_id(asset_event.run_id) if asset_event.run_id else None
    if run is not None and run.job_name == RETRAINING_JOB:
        return dg.SkipReason("drift measured right after a retraining: not retraining again")
    limit = settings.drift_share
    exceeded, why = drift_exceeds(dict(mat.metadata), limit)
    if not exceeded:
        return dg.SkipReason(why)
    return dg.RunRequest(
        run_key=f"drift-{asset_event.run_id}-{asset_event.timestamp}",
        tags={"sentinance/trigger": "drift", "sentinance/drift": why[:200]},
    )
