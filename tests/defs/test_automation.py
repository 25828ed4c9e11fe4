"""The graph keeps itself fresh: which asset runs when, freshness in live mode, live defaults."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

import sentinance_assets.definitions as definitions_module
from sentinance_assets.defs import automation
from sentinance_assets.defs.automation import (
    AUTOMATION_SENSOR,
    apply_automation,
    automation_sensor,
    rule_for,
    sentiment_drift_sensor,
)
from sentinance_assets.defs.jobs import build_live_refresh_schedule, refresh_cron
from sentinance_assets.lib.operations.freshness import ALLOWANCE
from sentinance_assets.settings import Settings

K = dg.AssetKey.from_user_string


@pytest.fixture(scope="module")
def folder() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(definitions_module.__file__).parent)


@pytest.fixture(scope="module")
def live_settings(tmp_path_factory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("home"), source="live", refresh_minutes=2)


def _requested(defs: dg.Definitions, result) -> set[str]:
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    return {k.to_user_string() for k in keys if result.get_num_requested(k)}


def test_every_asset_after_ingest_has_a_rule_and_ingest_has_none(folder):
    graph = definitions_module.defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.path[0] == "raw" or key == K("alerts/watch"):
            assert node.automation_condition is None, key  # schedules and sensors drive these
        else:
            assert node.automation_condition is not None, key
    assert rule_for(K("marts/candles")).name == "marts"
    assert rule_for(K("ml/forecaster")).name == "forecaster training"
    assert "1" in graph.get(K("ml/forecaster")).automation_condition.get_label()  # Mondays


def test_new_trades_rebuild_marts_and_detection_but_never_train(folder, tiny_settings):
    defs = apply_automation(folder, tiny_settings)
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    # a new home: everything on-new-data that is missing, the dbt seed included; no training
    assert {"staging/quote_usd_rates", "marts/candles", "alerts/alerts"} <= _requested(defs, first)
    assert not {"ml/forecaster", "ml/sentiment_classifier"} & _requested(defs, first)
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        if key.path[0] != "raw":
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert quiet.total_requested == 0

    day = "2026-11-12"
    instance.report_runless_asset_event(dg.AssetMaterialization(K("raw/trades"), partition=day))
    trades = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
    got = _requested(defs, trades)
    assert {"staging/stg_trades", "marts/candles", "marts/indicators", "alerts/alerts"} <= got
    assert not any(k.startswith(("ml/", "raw/")) for k in got)
    assert "staging/stg_news" not in got  # only what the new data feeds

    instance.report_runless_asset_event(dg.AssetMaterialization(K("raw/news"), partition=day))
    news = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=trades.cursor)
    assert {"ml/news_sentiment", "marts/news_sentiment_daily"} <= _requested(defs, news)
    assert "marts/candles" not in _requested(defs, news)


def test_a_skipped_forecaster_still_lets_forecasts_follow(folder, tiny_settings):
    """A skip materializes (with its reason): downstream conditions treat it as an update, so
    automation never turns a skip into a stuck or failed asset."""
    defs = apply_automation(folder, tiny_settings)
    instance = dg.DagsterInstance.ephemeral()
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    instance.report_runless_asset_event(
        dg.AssetMaterialization(K("ml/forecaster"), metadata={"skipped": "thin history"})
    )
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert "ml/forecasts" in _requested(defs, after)


def test_live_mode_declares_freshness_and_runs_by_default(folder, tiny_settings, live_settings):
    offline = apply_automation(folder, tiny_settings).resolve_asset_graph()
    assert offline.get(K("marts/candles")).freshness_policy is None
    live = apply_automation(folder, live_settings).resolve_asset_graph()
    for key in ("marts/candles", "marts/daily_market", "alerts/alerts"):
        policy = live.get(K(key)).freshness_policy
        assert policy.fail_window.to_timedelta() == timedelta(minutes=4) + ALLOWANCE, key
        assert policy.warn_window.to_timedelta() == timedelta(minutes=2) + ALLOWANCE, key
    assert live.get(K("ml/forecasts")).freshness_policy.fail_window.to_timedelta() == timedelta(
        hours=2
    )
    assert live.get(K("staging/stg_trades")).freshness_policy is None
    assert live.get(K("ml/forecaster")).freshness_policy is None

    running, stopped = dg.DefaultSensorStatus.RUNNING, dg.DefaultSensorStatus.STOPPED
    assert automation_sensor(live_settings).default_status == running
    assert automation_sensor(tiny_settings).default_status == stopped
    assert automation_sensor(live_settings).minimum_interval_seconds == 30
    assert sentiment_drift_sensor(live_settings).default_status == running
    assert sentiment_drift_sensor(tiny_settings).default_status == stopped
    schedule = build_live_refresh_schedule(live_settings)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "*/2 * * * *"
    offline_schedule = build_live_refresh_schedule(tiny_settings)
    assert offline_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert offline_schedule.cron_schedule == "*/15 * * * *"
    assert [refresh_cron(m) for m in (1, 15, 60)] == ["*/1 * * * *", "*/15 * * * *", "0 * * * *"]


def test_code_location_runs_steps_in_process_with_one_automation_sensor():
    defs = definitions_module.defs()
    assert defs.resolve_sensor_def(AUTOMATION_SENSOR) is not None
    assert defs.resolve_sensor_def("sentiment_drift_sensor") is not None
    assert defs.resolve_job_def("ingest_job").executor_def.name == dg.in_process_executor.name
    assert automation.deployment_settings().source == "simulated"  # the test environment


def test_sentiment_drift_sensor_retrains_only_over_the_limit(tiny_settings):
    sensor = sentiment_drift_sensor(tiny_settings)
    key = K("ml/sentiment_drift")
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(key, metadata={"share_drifted": 0.1})
        )
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not result.run_requests and "below" in (result.skip_message or "")
        instance.report_runless_asset_event(
            dg.AssetMaterialization(key, metadata={"share_drifted": 0.9})
        )
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        (request,) = result.run_requests
        assert request.tags["sentinance/trigger"] == "drift"
