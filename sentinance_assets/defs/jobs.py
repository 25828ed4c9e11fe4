"""Jobs, schedules and sensors: ingest per day, then everything downstream.

* ``daily_ingest_schedule`` - yesterday's partition once a day (any source).
* ``live_refresh_schedule`` - today's partition every ``SENTINANCE_REFRESH_MINUTES`` (15 by
  default). RUNNING by default in live mode, STOPPED in the offline modes. The first tick after
  midnight also closes yesterday. A tick is skipped while a run of the same partition is still
  in flight, so two refreshes never merge into one partition at once. Everything downstream
  follows each refresh through the automation conditions of ``automation.py``.
* ``replay_files_sensor`` - watches ``SENTINANCE_REPLAY_DIR`` and asks for the days that new or
  changed files cover (replay mode; stopped by default).

Why a schedule for ingest (and conditions downstream): ingest asks the outside world for what
is new, so it needs a clock; everything after it only needs to know that something landed.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from sentinance_assets.defs.automation import deployment_settings, schedule_status
from sentinance_assets.defs.partitions import daily
from sentinance_assets.defs.transform import assets as transform
from sentinance_assets.lib.sources.replay import data_files, file_days
from sentinance_assets.settings import Settings

# Training the sentiment classifier takes minutes: it has its own job and schedule, and the
# everyday analytics run only scores news with the current champion.
SENTIMENT_TRAINING = dg.AssetSelection.assets(dg.AssetKey(["ml", "sentiment_classifier"]))
# (``transform`` is imported as a module, not the asset object: an asset object exported by two
# modules of defs/ would get its automation attached twice, one duplicate key each.)
# dbt's tests on its sources (raw.trades' value tests) are checks on the ingest assets, but the
# dbt step runs them. They belong to the analytics run (which keeps them, as INGEST excludes
# them): selecting them with the ingest assets would pull the whole dbt step into every ingest.
DBT_SOURCE_CHECKS = dg.AssetSelection.checks(
    *(
        key
        for key in transform.sentinance_dbt.check_keys
        if key.asset_key not in transform.sentinance_dbt.keys
    )
)
INGEST = dg.AssetSelection.groups("market", "news") - DBT_SOURCE_CHECKS
# The retention cleanup (group "operations") runs daily on its own, never in an analytics run.
OPERATIONS = dg.AssetSelection.groups("operations")
ANALYTICS = dg.AssetSelection.all() - INGEST - SENTIMENT_TRAINING - OPERATIONS
REPLAY_KINDS = ("trades", "candles", "news")
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=INGEST,
    partitions_def=daily,
    description="Land one UTC day of trades, candles, events and news in the lake.",
)
analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=ANALYTICS,
    description="Everything downstream of ingest: dbt marts, sentiment, forecasting, drift, "
    "detection.",
)
daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    ingest_job, hour_of_day=0, minute_of_hour=10, default_status=dg.DefaultScheduleStatus.STOPPED
)


def _in_flight(instance: dg.DagsterInstance, day: str) -> bool:
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=ingest_job.name, statuses=IN_FLIGHT, tags={"dagster/partition": day}
        ),
        limit=1,
    )
    return bool(runs)


def live_refresh_requests(
    when: datetime, instance: dg.DagsterInstance | None = None, every_minutes: int = 15
) -> list[dg.RunRequest] | dg.SkipReason:
    """Today's partition (and yesterday's on the first tick of a day) unless already running."""
    when = when.astimezone(UTC)
    days = [when.date()]
    if when.hour == 0 and when.minute < every_minutes:
        days.insert(0, when.date() - timedelta(days=1))
    requests = []
    for d in days:
        key = d.isoformat()
        if instance is not None and _in_flight(instance, key):
            continue
        requests.append(
            dg.RunRequest(
                partition_key=key,
                run_key=f"live:{key}:{when.strftime('%H%M')}",
                tags={"sentinance/trigger": "live_refresh"},
            )
        )
    return requests or dg.SkipReason("a refresh of today's partition is still running")


def refresh_cron(every_minutes: int) -> str:
    """``*/N * * * *`` (``0 * * * *`` for an hourly refresh)."""
    return "0 * * * *" if every_minutes == 60 else f"*/{every_minutes} * * * *"


def build_live_refresh_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The live refresh at ``settings.refresh_minutes``, RUNNING by default in live mode."""
    every = settings.refresh_minutes

    @dg.schedule(
        name="live_refresh_schedule",
        job=ingest_job,
        cron_schedule=refresh_cron(every),
        execution_timezone="UTC",
        default_status=schedule_status(settings),
        description=f"Live mode: refresh today's partition every {every} minutes "
        "(SENTINANCE_REFRESH_MINUTES; incremental: only new trades and missing candle minutes "
        "are fetched). Marts, scores and batch alerts follow through automation conditions.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time or datetime.now(UTC)
        try:
            instance = context.instance
        except dg.DagsterInvariantViolationError:  # evaluated without an instance (tests)
            instance = None
        return live_refresh_requests(when, instance, every)

    return _schedule


live_refresh_schedule = build_live_refresh_schedule(deployment_settings())


def replay_changes(root, cursor: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(new cursor, {day: [changed files]}) for the replay folder against ``cursor``."""
    current: dict[str, str] = {}
    changed_days: dict[str, list[str]] = {}
    for kind in REPLAY_KINDS:
        for path in data_files(root, kind):
            st = path.stat()
            rel = path.relative_to(root).as_posix()
            stamp = f"{st.st_mtime_ns}:{st.st_size}"
            current[rel] = stamp
            if cursor.get(rel) == stamp:
                continue
            try:
                days = file_days(path, root)
            except Exception:  # noqa: BLE001 - an unreadable file is reported by the asset
                continue
            for day in days:
                changed_days.setdefault(day, []).append(f"{rel}@{stamp}")
    return current, changed_days


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Replay mode: new or changed files under SENTINANCE_REPLAY_DIR trigger the "
    "ingest of the UTC days they cover.",
)
def replay_files_sensor(context: dg.SensorEvaluationContext, settings: dg.ResourceParam[Settings]):
    if settings.source != "replay" or settings.replay_dir is None:
        return dg.SkipReason("SENTINANCE_SOURCE is not replay")
    cursor = json.loads(context.cursor) if context.cursor else {}
    current, changed = replay_changes(settings.replay_dir, cursor)
    first = daily.get_first_partition_key()
    last = daily.get_last_partition_key()
    requests = []
    for day in sorted(changed):
        if first is None or last is None or not (first <= day <= last):
            context.log.info(f"{day}: outside the daily partitions, skipped")
            continue
        digest = hashlib.sha1("|".join(sorted(changed[day])).encode()).hexdigest()[:12]
        requests.append(
            dg.RunRequest(
                partition_key=day,
                run_key=f"replay:{day}:{digest}",
                tags={"sentinance/trigger": "replay_files"},
            )
        )
    context.update_cursor(json.dumps(current))
    if not requests:
        return dg.SkipReason("no new or changed replay files")
    return requests
