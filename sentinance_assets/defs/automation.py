"""How the graph keeps itself fresh: one table of automation conditions and freshness policies.

Ingest is driven by schedules and sensors (``jobs.py``: ``live_refresh_schedule`` lands today's
partition every ``SENTINANCE_REFRESH_MINUTES``); everything downstream follows with Dagster's
declarative automation, attached here to the loaded definitions (``definitions.py`` calls
:func:`apply_automation`) instead of in every asset file, so the whole policy reads in one
place (:data:`RULES`):

* marts (every dbt model), news scoring and batch detection: **on new data** - as soon as an
  upstream asset has a new materialization, when nothing upstream is still running. Why a
  condition and not a job on a schedule: the condition requests exactly the assets whose
  inputs changed (a refresh with only news rebuilds only the news models), it waits for a
  running ingest instead of reading half a day, and the UI shows per asset why it ran. The
  dbt models are incremental and batch detection re-reads only the days whose trades changed,
  so a refresh costs what arrived, not the size of history.
* forecasts: **hourly** (and after a retraining) with the serving (champion) model;
* drift measurements: **daily** (a drift sensor retrains on drift: measuring hourly could
  retrain hourly while drift lasts);
* training (forecaster, sentiment classifier): **weekly**, plus the drift sensors
  (``forecast_drift_sensor``, :data:`sentiment_drift_sensor`); never on a refresh;
* the retention cleanup (``defs/operations``): **daily**.

Dagster's ``eager()`` is not used as is: it waits while any upstream partition is missing, and
the daily raw assets always have missing partitions (they start in 2017), so it would never
fire. :func:`on_new_data` is ``eager()`` without that clause.

The ``sentinance_automation`` sensor evaluates the conditions every
``SENTINANCE_AUTOMATION_INTERVAL_SECONDS``. In live mode it (and the other sensors live
operation needs) is RUNNING by default; in the offline modes it is STOPPED, as a demo home has
nothing new to react to (start it from the UI after a backfill to get the same behaviour).

Freshness (live mode only: an offline home is a fixed window, not expected to be fresh): each
mart and the batch alert feed must have materialized within two refresh intervals plus five
minutes (warn after one), the forecasts within two hours (warn after 75 minutes); the windows
are ``lib/operations/freshness.py``'s, which ``sentinance status`` judges by too. They become
Dagster ``FreshnessPolicy`` objects here: the daemon evaluates them and the UI shows a missed
one in red.

Thin input never fails a run (``defs/skips.py``): a skipping asset still materializes (with its
reason), so a skip neither blocks its downstream conditions nor trips a freshness policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import dagster as dg

from sentinance_assets.defs.ml.retraining import drift_exceeds
from sentinance_assets.defs.ml.sentiment import SENTIMENT_DRIFT_KEY
from sentinance_assets.defs.ml.sentiment_training import sentiment_training_job
from sentinance_assets.lib.operations import freshness
from sentinance_assets.settings import Settings

AC = dg.AutomationCondition
AUTOMATION_SENSOR = "sentinance_automation"
HOURLY = "5 * * * *"  # five past: after the refresh on the hour has landed
DAILY_DRIFT = "30 2 * * *"
DAILY_CLEANUP = "20 0 * * *"
WEEKLY_FORECASTER = "0 3 * * 1"  # Monday 03:00 UTC, as weekly_forecast_retraining
WEEKLY_SENTIMENT = "0 3 * * 0"  # Sunday 03:00 UTC, as sentiment_weekly_schedule
DBT_SCHEMAS = ("staging", "intermediate", "marts")


@cache
def deployment_settings() -> Settings:
    """The settings this code location was loaded with (read once per process)."""
    return Settings.from_env()


def is_live(settings: Settings) -> bool:
    return settings.source == "live"


def sensor_status(settings: Settings) -> dg.DefaultSensorStatus:
    """RUNNING by default in live mode, STOPPED in the offline modes."""
    return dg.DefaultSensorStatus.RUNNING if is_live(settings) else dg.DefaultSensorStatus.STOPPED


def schedule_status(settings: Settings) -> dg.DefaultScheduleStatus:
    """RUNNING by default in live mode, STOPPED in the offline modes."""
    if is_live(settings):
        return dg.DefaultScheduleStatus.RUNNING
    return dg.DefaultScheduleStatus.STOPPED


# ------------------------------------------------------------------------------ conditions
def on_new_data() -> dg.AutomationCondition:
    """``eager()`` without "no upstream partition missing" (see the module docstring): run once
    when a dependency has a new materialization, or when this asset is missing (at the first
    evaluation, e.g. a new home's dbt seed, or later), once nothing upstream and nothing of this
    asset is in progress."""
    first = (AC.missing() & AC.initial_evaluation()).with_label("missing at first evaluation")
    return (
        ((AC.newly_missing() | AC.any_deps_updated()).since_last_handled() | first)
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("on new data")


def on_cron(cron: str, *, or_new_deps: bool = False) -> dg.AutomationCondition:
    """Once per tick of ``cron`` (UTC), whatever its inputs did; ``or_new_deps``: also when a
    dependency has a new materialization (forecasts after a retraining)."""
    trigger: dg.AutomationCondition = AC.cron_tick_passed(cron, "UTC")
    if or_new_deps:
        trigger = trigger | AC.any_deps_updated()
    return (
        trigger.since_last_handled() & ~AC.any_deps_in_progress() & ~AC.in_progress()
    ).with_label(f"{cron} UTC" + (" or new inputs" if or_new_deps else ""))


# ------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Rule:
    """Which assets (``matches``), when they run (``condition``), and why."""

    name: str
    matches: Callable[[dg.AssetKey], bool]
    condition: Callable[[], dg.AutomationCondition]
    why: str


def _is(*keys: str) -> Callable[[dg.AssetKey], bool]:
    wanted = {dg.AssetKey.from_user_string(k) for k in keys}
    return lambda key: key in wanted


def _dbt_model(key: dg.AssetKey) -> bool:
    return len(key.path) == 2 and key.path[0] in DBT_SCHEMAS


RULES: tuple[Rule, ...] = (
    Rule(
        "marts",
        lambda key: _dbt_model(key) and key.path[0] == "marts",
        on_new_data,
        "incremental dbt models: rebuilt from what landed, right after it landed",
    ),
    Rule(
        "dbt staging and intermediate",
        _dbt_model,
        on_new_data,
        "the models between the lake and the marts, in the same run as the marts",
    ),
    Rule(
        "news scoring",
        _is("ml/news_sentiment"),
        on_new_data,
        "scores only items the serving model has not scored: cheap, so on arrival",
    ),
    Rule(
        "batch detection",
        _is("alerts/alerts"),
        on_new_data,
        "re-detects only the days whose trades changed (the watch loop is the fast path)",
    ),
    Rule(
        "forecasts",
        _is("ml/forecasts"),
        lambda: on_cron(HOURLY, or_new_deps=True),
        "hourly with the serving model, and right after a retraining",
    ),
    Rule(
        "drift",
        _is("ml/forecast_drift", "ml/sentiment_drift"),
        lambda: on_cron(DAILY_DRIFT),
        "daily: drift retrains through a sensor, so measuring it more often could retrain "
        "more often",
    ),
    Rule(
        "forecaster training",
        _is("ml/forecaster"),
        lambda: on_cron(WEEKLY_FORECASTER),
        "minutes of CPU: weekly, plus forecast_drift_sensor on drift",
    ),
    Rule(
        "sentiment training",
        _is("ml/sentiment_classifier"),
        lambda: on_cron(WEEKLY_SENTIMENT),
        "minutes of CPU: weekly, plus sentiment_drift_sensor on drift",
    ),
    Rule(
        "retention",
        _is("operations/retention"),
        lambda: on_cron(DAILY_CLEANUP),
        "daily cleanup of old raw trades, quarantine and alert files",
    ),
)


def rule_for(key: dg.AssetKey) -> Rule | None:
    """The first rule that matches ``key`` (``None``: driven by a schedule or sensor, or by
    hand: the ingest assets, the watch loop's alerts)."""
    return next((rule for rule in RULES if rule.matches(key)), None)


def freshness_policy(key: dg.AssetKey, settings: Settings) -> dg.FreshnessPolicy | None:
    """The freshness policy of ``key`` in live mode (``None`` offline or when it has none)."""
    window = freshness.window_of(key.to_user_string(), settings)
    if window is None or not is_live(settings):
        return None
    warn, fail = window
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def _automated(spec: dg.AssetSpec, settings: Settings) -> dg.AssetSpec:
    rule = rule_for(spec.key)
    changes: dict = {}
    if rule is not None:
        changes["automation_condition"] = rule.condition()
    policy = freshness_policy(spec.key, settings)
    if policy is not None:
        changes["freshness_policy"] = policy
    return spec.replace_attributes(**changes) if changes else spec


def apply_automation(defs: dg.Definitions, settings: Settings | None = None) -> dg.Definitions:
    """``defs`` with each asset's automation condition and freshness policy from :data:`RULES`."""
    settings = settings or deployment_settings()
    return defs.map_asset_specs(func=lambda spec: _automated(spec, settings))


def automation_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=sensor_status(settings),
        minimum_interval_seconds=settings.automation_interval_seconds,
        description="Evaluates the automation conditions of defs/automation.py: marts, news "
        "scores and batch detection on new data, forecasts hourly, drift daily, training "
        "weekly, retention daily. RUNNING by default in live mode.",
    )


def sentiment_drift_sensor(settings: Settings) -> dg.SensorDefinition:
    """Retrain the sentiment classifier when the news scores drift (the twin of
    ``forecast_drift_sensor``): once per drift materialization at or above the drift share."""

    @dg.asset_sensor(
        asset_key=SENTIMENT_DRIFT_KEY,
        job=sentiment_training_job,
        name="sentiment_drift_sensor",
        minimum_interval_seconds=60,
        default_status=sensor_status(settings),
        description="Launch sentiment training when ml/sentiment_drift reports a share of "
        "drifted columns at or above the drift share. RUNNING by default in live mode.",
    )
    def _sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        mat = asset_event.asset_materialization
        if mat is None:
            return dg.SkipReason("event without a materialization")
        exceeded, why = drift_exceeds(dict(mat.metadata), settings.drift_share)
        if not exceeded:
            return dg.SkipReason(why)
        return dg.RunRequest(
            run_key=f"sentiment-drift-{asset_event.run_id}-{asset_event.timestamp}",
            tags={"sentinance/trigger": "drift", "sentinance/drift": why[:200]},
        )

    return _sensor


@dg.definitions
def automation() -> dg.Definitions:
    """The automation sensor, and the executor of every run of this code location: steps run
    in the run's own process (``in_process_executor``). Why: a step subprocess would load the
    code location again (~10-20 s on two cores) for steps that take seconds, and the warehouse
    writers are serialized by the ``duckdb`` pool anyway."""
    settings = deployment_settings()
    return dg.Definitions(
        sensors=[automation_sensor(settings), sentiment_drift_sensor(settings)],
        executor=dg.in_process_executor,
    )
