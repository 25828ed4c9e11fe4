"""Jobs, schedules and sensors: ingest per day, then everything downstream.

* ``daily_ingest_schedule`` - yesterday's partition once a day (any source).
* ``live_refresh_schedule`` - today's partition every 15 minutes (live mode; stopped by
  default). The first tick after midnight also closes yesterday. A tick is skipped while a run
  of the same partition is still in flight, so two refreshes never merge into one partition
  at once.
* ``replay_files_sensor`` - watches ``SENTINANCE_REPLAY_DIR`` and asks for the days that new or
  changed files cover (replay mode; stopped by default).
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from sentinance_assets.defs.partitions import daily
from sentinance_assets.defs.transform.assets import sentinance_dbt
from sentinance_assets.lib.sources.replay import data_files, file_days
from sentinance_assets.settings import Settings

# Training the sentiment classifier takes minutes: it has its own job and schedule, and the
# everyday analytics run only scores news with the current champion.
SENTIMENT_TRAINING = dg.AssetSelection.assets(dg.AssetKey(["ml", "sentiment_classifier"]))
# dbt's tests on its sources (raw.trades' value tests) are checks on the ingest assets, but the
# dbt step runs them. They belong to the analytics run (which keeps them, as INGEST excludes
# them): selecting them with the ingest assets would pull the whole dbt step into every ingest.
DBT_SOURCE_CHECKS = dg.AssetSelection.checks(
    *(key for key in sentinance_dbt.check_keys if key.asset_key not in sentinance_dbt.keys)
)
INGEST = dg.AssetSelection.groups("market", "news") - DBT_SOURCE_CHECKS
ANALYTICS = dg.AssetSelection.all() - INGEST - SENTIMENT_TRAINING
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
    when: datetime, instance: dg.DagsterInstance | None = None
) -> list[dg.RunRequest] | dg.SkipReason:
    """Today's partition (and yesterday's on the first tick of a day) unless already running."""
    when = when.astimezone(UTC)
    days = [when.date()]
    if when.hour == 0 and when.minute < 15:
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


@dg.schedule(
    job=ingest_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Live mode: refresh today's partition every 15 minutes (incremental: only "
    "new trades and missing candle minutes are fetched).",
)
def live_refresh_schedule(context: dg.ScheduleEvaluationContext):
    when = context.scheduled_execution_time or datetime.now(UTC)
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # evaluated without an instance (tests)
        instance = None
    return live_refresh_requests(when, instance)


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
