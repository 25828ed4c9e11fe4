"""Forecasting wiring: retraining job, weekly schedule, drift sensor, drift checks."""

import dagster as dg

from sentinance_assets.defs.ml.forecasting import DRIFT_KEY, FORECASTER
from sentinance_assets.defs.ml.retraining import (
    drift_exceeds,
    forecast_drift_sensor,
    forecast_retraining_job,
    weekly_forecast_retraining,
)
from sentinance_assets.settings import Settings


def test_job_schedule_and_sensor_are_in_the_code_location():
    from sentinance_assets.definitions import defs

    d = defs()
    assert "forecast_retraining_job" in {j.name for j in d.resolve_all_job_defs()}
    schedule = d.resolve_schedule_def("weekly_forecast_retraining")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    sensor = d.resolve_sensor_def("forecast_drift_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    job = d.resolve_job_def("forecast_retraining_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"ml/forecaster", "ml/forecasts", "ml/forecast_drift"}
    checks = {c.name for c in d.resolve_asset_graph().get(DRIFT_KEY).check_keys}
    assert checks == {"input_drift_below_limit", "residual_drift_below_limit"}
    assert FORECASTER in d.resolve_asset_graph().get(DRIFT_KEY).parent_keys


def test_drift_exceeds_reads_input_and_residual_shares():
    assert drift_exceeds({"share_drifted": 0.6}, 0.5)[0]
    assert drift_exceeds({"share_drifted": 0.1, "residual_share_drifted": 0.5}, 0.5)[0]
    over, why = drift_exceeds({"share_drifted": dg.MetadataValue.float(0.2)}, 0.5)
    assert not over and "below" in why
    assert not drift_exceeds({"skipped": "no champion"}, 0.5)[0]


def _tick(instance, settings):
    ctx = dg.build_sensor_context(instance=instance, resources={"settings": settings})
    return forecast_drift_sensor.evaluate_tick(ctx)


def test_sensor_launches_retraining_once_per_drifted_result(tmp_path):
    settings = Settings.from_env({"SENTINANCE_HOME": str(tmp_path / "home")})
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(DRIFT_KEY, metadata={"share_drifted": 0.1})
        )
        result = _tick(instance, settings)
        assert not result.run_requests and "below" in (result.skip_message or "")
        instance.report_runless_asset_event(
            dg.AssetMaterialization(DRIFT_KEY, metadata={"share_drifted": 0.75})
        )
        result = _tick(instance, settings)
        assert len(result.run_requests) == 1
        assert result.run_requests[0].tags["sentinance/trigger"] == "drift"
        assert forecast_retraining_job.name == "forecast_retraining_job"
        assert weekly_forecast_retraining.job_name == "forecast_retraining_job"
