"""Forecasting wiring: retraining job, weekly schedule, drift sensor, drift checks, and thin
history: the forecaster and everything downstream skip with the reason, never fail."""

from datetime import timedelta

import dagster as dg
import polars as pl
import pytest

from sentinance_assets.defs.ml.forecasting import (
    DRIFT_KEY,
    FORECASTER,
    forecast_drift,
    forecaster,
    forecasts,
)
from sentinance_assets.defs.ml.retraining import (
    drift_exceeds,
    forecast_drift_sensor,
    forecast_retraining_job,
    weekly_forecast_retraining,
)
from sentinance_assets.defs.resources import mlflow_store
from sentinance_assets.defs.skips import skips_in
from sentinance_assets.lib import forecast_io
from sentinance_assets.settings import Settings
from tests.ml.test_features import T0, make_candles


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
    assert checks == {"input_drift_below_limit", "residual_drift_below_limit", "enough_input"}
    for key in (FORECASTER, dg.AssetKey(["ml", "forecasts"])):
        assert {c.name for c in d.resolve_asset_graph().get(key).check_keys} == {"enough_input"}
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


def _run(settings: Settings, candles: pl.DataFrame, monkeypatch) -> dg.ExecuteInProcessResult:
    """The three forecasting assets on ``candles`` (standing in for ``marts.candles``)."""
    monkeypatch.setattr(forecast_io, "load_hourly_candles", lambda path, exchange: candles)
    resources = {"settings": settings, "mlflow_store": mlflow_store(settings)}
    return dg.materialize([forecaster, forecasts, forecast_drift], resources=resources)


@pytest.mark.parametrize("days", [1, 2])
def test_thin_history_skips_the_forecaster_and_its_downstream(tiny_settings, monkeypatch, days):
    res = _run(tiny_settings, make_candles(24 * days), monkeypatch)
    assert res.success
    thin = (
        f"too little history: the forecaster needs 3 days of hourly history per symbol, has "
        f"{days} ({24 * days} usable hourly bars)"
    )
    upstream = f"ml/forecaster skipped: {thin}"
    assert dict(skips_in(res.all_events)) == {
        "ml/forecaster": thin,
        "ml/forecasts": f"no trained forecaster yet ({upstream})",
        "ml/forecast_drift": f"no trained forecaster yet ({upstream})",
    }
    meta = res.asset_materializations_for_node("ml__forecaster")[0].metadata
    assert (meta["needs"].value, meta["has"].value) == ("3 days of hourly history", str(days))
    checks = res.get_asset_check_evaluations()
    assert {(c.asset_key.to_user_string(), c.check_name) for c in checks} == {
        ("ml/forecaster", "enough_input"),
        ("ml/forecasts", "enough_input"),
        ("ml/forecast_drift", "enough_input"),
        ("ml/forecast_drift", "input_drift_below_limit"),
        ("ml/forecast_drift", "residual_drift_below_limit"),
    }
    assert all(not c.passed and c.severity == dg.AssetCheckSeverity.WARN for c in checks)
    assert not mlflow_store(tiny_settings).exists()  # nothing trained, nothing registered


def test_enough_history_trains_and_reports_what_the_candles_held(tiny_settings, monkeypatch):
    candles = make_candles(84, symbols=("BTC/USDT",))
    price = candles["close"][59]
    maintenance = pl.col("ts").is_between(T0 + timedelta(hours=60), T0 + timedelta(hours=62))
    candles = candles.with_columns(
        pl.when(maintenance).then(pl.lit(v)).otherwise(pl.col(c)).alias(c)
        for c, v in {
            "open": price,
            "high": price,
            "low": price,
            "close": price,
            "volume": 0.0,
        }.items()
    ).filter(pl.col("ts") != T0 + timedelta(hours=70))  # and one missing bar
    res = _run(tiny_settings, candles, monkeypatch)
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in res.get_asset_check_evaluations()
    }
    assert checks[("ml/forecaster", "enough_input")]
    meta = res.asset_materializations_for_node("ml__forecaster")[0].metadata
    assert "skipped" not in meta and meta["model_version"].value == "1"
    assert (meta["maintenance_bars"].value, meta["missing_bars"].value) == (3, 1)
    assert meta["flagged_bars"].value == 3 and meta["masked_feature_rows"].value > 0
    quality = meta["data_quality"].value
    assert quality["per_symbol"]["BTC/USDT"]["maintenance_runs"] == 1
    # the hold-out winners serve at once: every target and horizon the run evaluated
    skipped = dict(skips_in(res.all_events))
    assert "ml/forecaster" not in skipped and "ml/forecasts" not in skipped
    served = res.asset_materializations_for_node("ml__forecasts")[0].metadata
    assert served["rows"].value == 2 * len(meta["horizons"].value.split(", "))
    assert "| realized_vol | 1h |" in served["serving"].value
    assert res.success


def test_too_short_candles_skip_the_lstm_served_forecasts(tiny_settings, monkeypatch):
    from ml import forecast_lifecycle
    from ml.features import build_features
    from ml.forecaster import ForecasterConfig, train_forecaster

    frame, cols = build_features(make_candles(120))
    config = ForecasterConfig(lookback=8, hidden=4, epochs=1, seeds=(0,), horizons={"1h": 1})
    model = train_forecaster(frame, cols, config)
    q = {"80": [-1.0, 1.0], "95": [-2.0, 2.0]}
    model.info.update(
        registered_version="2",
        serving_plan={
            f"{t}:1h": {"target": t, "horizon": "1h", "model": m, "quantiles": q, "reason": "test"}
            for t, m in (("log_return", "lstm"), ("realized_vol", "ewma_vol"))
        },
    )
    monkeypatch.setattr(forecast_lifecycle, "load_serving", lambda store: model)
    monkeypatch.setattr(forecast_io, "load_hourly_candles", lambda path, exchange: make_candles(20))
    resources = {"settings": tiny_settings, "mlflow_store": mlflow_store(tiny_settings)}
    res = dg.materialize([forecasts], resources=resources)
    ((asset, reason),) = skips_in(res.all_events)
    assert asset == "ml/forecasts"
    assert reason == (
        "too little history to forecast: no hourly bar has every feature yet (they need 25 "
        "consecutive hourly bars), the longest run has 20"
    )
    # 30 bars: the baseline serves volatility; the LSTM's look-back of 8 rows is not there yet
    monkeypatch.setattr(forecast_io, "load_hourly_candles", lambda path, exchange: make_candles(30))
    res = dg.materialize([forecasts], resources=resources)
    meta = res.asset_materializations_for_node("ml__forecasts")[0].metadata
    assert meta["rows"].value == 2 and "| realized_vol | 1h | ewma_vol |" in meta["serving"].value
    # with enough bars every target is served, and the check passes
    monkeypatch.setattr(forecast_io, "load_hourly_candles", lambda path, exchange: make_candles(40))
    res = dg.materialize([forecasts], resources=resources)
    meta = res.asset_materializations_for_node("ml__forecasts")[0].metadata
    assert meta["symbols_without_forecast"].value == "none" and meta["rows"].value == 4
    assert res.get_asset_check_evaluations()[0].passed
