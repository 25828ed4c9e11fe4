"""Operator notifications: a failed run, a failed ERROR-level check, a late asset or detected
drift becomes one notification (``lib/operations/notify.py``: the alert webhook today).

* ``operator_run_failure_sensor`` - Dagster's run-failure sensor over this code location: one
  notification per failed run (its cursor follows the run events, so each run is seen once).
* ``operator_health_sensor`` - every minute: each ERROR-level check whose latest evaluation
  failed, each asset past its freshness limit (live mode) and each drift measurement at or above
  the drift share. A check or a late asset is an *incident* from the tick it starts failing to
  the tick it passes again (the open incidents are the sensor's cursor): one notification when
  it opens, none while it stays open, a new one if it fails again after passing. Each drift
  measurement over the limit is one incident (drift is measured daily).

Both are RUNNING by default in live mode and STOPPED offline, like the rest of live operation.
"""

from __future__ import annotations

import json
import time
from typing import Any

import dagster as dg

from sentinance_assets.defs.automation import deployment_settings, sensor_status
from sentinance_assets.defs.ml.retraining import drift_exceeds
from sentinance_assets.lib.operations.notify import Incident, notify_operators
from sentinance_assets.lib.operations.status import failed_checks, freshness_states
from sentinance_assets.settings import Settings

DRIFT_ASSETS = (dg.AssetKey(["ml", "forecast_drift"]), dg.AssetKey(["ml", "sentiment_drift"]))


def run_failure_incident(run: dg.DagsterRun, error: str | None) -> Incident:
    job = "automation" if run.job_name == "__ASSET_JOB" else run.job_name
    return Incident(
        key=f"run_failure:{run.run_id}",
        kind="run_failure",
        title=f"Dagster run of {job} failed (run {run.run_id[:8]})",
        details={
            "run_id": run.run_id,
            "job": run.job_name,
            "partition": run.tags.get("dagster/partition"),
            "error": (error or "")[:2000],
        },
    )


def health_incidents(
    instance: dg.DagsterInstance, settings: Settings, now: float
) -> dict[str, Incident]:
    """Every incident open right now, by key."""
    open_: dict[str, Incident] = {}
    for check in failed_checks(instance):
        if check["severity"] != "ERROR":
            continue
        key = f"check_failed:{check['check']}"
        open_[key] = Incident(
            key=f"{key}@{check['evaluation_id']}",
            kind="check_failed",
            title=f"ERROR check failed: {check['check']}",
            details=check,
        )
    if settings.source == "live":
        for state in freshness_states(instance, settings, now):
            if state["state"] != "late":
                continue
            key = f"freshness:{state['asset']}"
            open_[key] = Incident(
                key=f"{key}@{state['last_update']}",
                kind="freshness",
                title=f"{state['asset']} is late: last updated {state['lag_s']:.0f} s ago "
                f"(limit {state['limit_s']:.0f} s)",
                details=state,
            )
    latest = instance.get_latest_materialization_events(list(DRIFT_ASSETS))
    for asset, event in latest.items():
        mat = event.asset_materialization if event is not None else None
        if event is None or mat is None:
            continue
        exceeded, why = drift_exceeds(dict(mat.metadata), settings.drift_share)
        if exceeded:
            name = asset.to_user_string()
            open_[f"drift:{name}"] = Incident(
                key=f"drift:{name}@{event.run_id}:{event.timestamp}",
                kind="drift",
                severity="warning",
                title=f"drift detected by {name}: {why}",
                details={"asset": name, "run_id": event.run_id, "why": why},
            )
    return open_


def notify_new(
    open_: dict[str, Incident], previously_open: dict[str, str], settings: Settings
) -> tuple[dict[str, str], list[Incident]]:
    """Notify the incidents not open at the previous tick; the new cursor (open key -> incident
    key) and what was notified."""
    sent = []
    for key, incident in open_.items():
        if previously_open.get(key) == incident.key:
            continue
        if key in previously_open and not key.startswith("drift:"):
            continue  # still the same failure streak (its evaluation time moved on)
        if notify_operators(incident, settings):
            sent.append(incident)
    return {key: incident.key for key, incident in open_.items()}, sent


def build_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    status = sensor_status(settings)

    @dg.run_failure_sensor(
        name="operator_run_failure_sensor",
        minimum_interval_seconds=30,
        default_status=status,
        description="One operator notification per failed run (SENTINANCE_ALERT_WEBHOOK).",
    )
    def operator_run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
        error = context.failure_event.message if context.failure_event else None
        notify_operators(run_failure_incident(context.dagster_run, error), settings)

    @dg.sensor(
        name="operator_health_sensor",
        minimum_interval_seconds=60,
        default_status=status,
        description="One operator notification per incident: a failed ERROR-level check, an "
        "asset past its freshness limit (live mode), drift over the drift share.",
    )
    def operator_health_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        previously: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        open_ = health_incidents(context.instance, settings, time.time())
        cursor, sent = notify_new(open_, previously, settings)
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if sent:
            return dg.SkipReason(f"notified: {', '.join(i.title for i in sent)}")
        return dg.SkipReason(f"{len(open_)} incident(s) open, nothing new")

    return [operator_run_failure_sensor, operator_health_sensor]


@dg.definitions
def notifications() -> dg.Definitions:
    return dg.Definitions(sensors=build_sensors(deployment_settings()))
