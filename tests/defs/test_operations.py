"""Operators are told once per incident: failed runs, failed ERROR checks, late assets, drift."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from sentinance_assets.defs.operations.notifications import (
    build_sensors,
    health_incidents,
    notify_new,
)
from sentinance_assets.lib.operations.notify import (
    Incident,
    log_path,
    notify_operators,
)
from tests.fakes.live_market import WebhookReceiver

K = dg.AssetKey.from_user_string


@pytest.fixture
def webhook():
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def settings(tiny_settings, webhook):
    return tiny_settings.replace(alert_webhook=webhook.url)


def _check(instance, passed: bool, severity=dg.AssetCheckSeverity.ERROR) -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=K("raw/trades"),
            check_name="quality_score",
            passed=passed,
            severity=severity,
            description=None if passed else "quality 90.00% is below 99% and 95%",
        )
    )


def test_one_notification_per_incident_through_the_webhook(settings, webhook):
    incident = Incident("run_failure:abc", "run_failure", "Dagster run of ingest_job failed")
    assert notify_operators(incident, settings)
    assert not notify_operators(incident, settings)  # already told
    ((key, body),) = webhook.received
    assert key == incident.notification_id
    assert body["type"] == "ops_run_failure" and body["exchange"] == "sentinance"
    assert body["message"] == "Dagster run of ingest_job failed"
    assert body["details"]["key"] == "run_failure:abc"
    (line,) = log_path(settings).read_text().splitlines()
    assert json.loads(line)["kind"] == "run_failure"


def test_failed_error_checks_and_drift_open_incidents_once(settings, webhook):
    with dg.instance_for_test() as instance:
        _check(instance, passed=True)
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), {}, settings)
        assert sent == [] and cursor == {}
        _check(instance, passed=False, severity=dg.AssetCheckSeverity.WARN)
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), cursor, settings)
        assert sent == []  # a WARN check is not an incident
        _check(instance, passed=False)
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), cursor, settings)
        assert [i.kind for i in sent] == ["check_failed"]
        _check(instance, passed=False)  # still failing: the same incident
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), cursor, settings)
        assert sent == []
        _check(instance, passed=True)  # resolved
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), cursor, settings)
        assert sent == [] and cursor == {}
        _check(instance, passed=False)  # a new incident
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), cursor, settings)
        assert [i.kind for i in sent] == ["check_failed"]

        instance.report_runless_asset_event(
            dg.AssetMaterialization(K("ml/forecast_drift"), metadata={"share_drifted": 0.8})
        )
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), cursor, settings)
        assert [i.kind for i in sent] == ["drift"]
        cursor, sent = notify_new(health_incidents(instance, settings, 0.0), cursor, settings)
        assert sent == []
    kinds = [body["type"] for body in webhook.bodies()]
    assert kinds == ["ops_check_failed", "ops_check_failed", "ops_drift"]


def test_a_failed_run_is_notified_once(settings, webhook):
    @dg.asset
    def broken() -> None:
        raise RuntimeError("boom")

    run_failure_sensor = build_sensors(settings)[0]
    with dg.instance_for_test() as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = next(
            e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE
        )
        for _ in range(2):
            ctx = dg.build_run_status_sensor_context(
                sensor_name="operator_run_failure_sensor",
                dagster_instance=instance,
                dagster_run=run,
                dagster_event=failure,
            ).for_run_failure()
            run_failure_sensor(ctx)
    (body,) = webhook.bodies()
    assert body["type"] == "ops_run_failure"
    assert result.run_id[:8] in body["message"]


def test_sensors_run_by_default_only_in_live_mode(tiny_settings):
    offline = build_sensors(tiny_settings)
    live = build_sensors(tiny_settings.replace(source="live"))
    assert {s.default_status for s in offline} == {dg.DefaultSensorStatus.STOPPED}
    assert {s.default_status for s in live} == {dg.DefaultSensorStatus.RUNNING}
