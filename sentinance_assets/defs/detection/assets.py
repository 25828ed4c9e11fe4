"""Batch detection over the stored trades: the same detectors the watch loop runs, re-run
only on the days whose trades changed since the last run (``batch.py``); with
``SENTINANCE_ENGINE=spark``, a backfill of several days runs on Spark (``lib/spark_detection``)."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from sentinance_assets.defs.detection.batch import (
    INPUT_RECORD,
    DetectMany,
    detect_stale_days,
    stale_days,
)
from sentinance_assets.lib.detection.delivery import Deliverer
from sentinance_assets.lib.detection.engine import alert_summary, detect_all
from sentinance_assets.lib.detection.rules import DetectorConfig
from sentinance_assets.lib.detection.rules_file import RulesError, rules_for
from sentinance_assets.lib.detection.versions import (
    migrate_legacy_ids,
    prepare_rules_change,
    record_rule_sets,
)
from sentinance_assets.settings import Settings


class AlertRulesConfig(dg.Config):
    """Run config of the batch detection: which rules, and whether to deliver."""

    rules_file: str | None = None  # a rules file instead of SENTINANCE_ALERT_RULES
    rules_toml: str | None = None  # inline TOML rules (wins over both)
    deliver: bool = True  # send new alerts to the configured channels


@dg.asset(
    key=["alerts", "alerts"],
    group_name="detection",
    pool="detection",  # one batch detection at a time (lib/operations/supervision.py)
    deps=[dg.AssetKey(["raw", "trades"])],
    kinds={"polars", "parquet"},
    description="Whale trades, volume spikes, cross-exchange divergences, pump-and-dumps and "
    "wash-trading runs found in the stored trades (lib/detectors.py, the same engine as "
    "`sentinance watch`); one row per event with a deterministic alert_id, stored per UTC day "
    "(lake/alerts/alerts/date=<day>/). Each run re-detects only the days whose trades changed "
    "(with a 3-hour warm-up from the day before), so its cost follows new data, not history. "
    "The watch loop writes the same ids to lake/alerts/alerts/watch-*/: readers deduplicate on "
    "alert_id.",
)
def alerts(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    config: AlertRulesConfig,
) -> dg.MaterializeResult:
    try:
        rules = rules_for(settings, config.rules_file, config.rules_toml)
    except RulesError as exc:
        raise dg.Failure(description=f"invalid alert rules:\n{exc}") from None
    migrated = migrate_legacy_ids(settings.lake_dir)  # ids from before the stable hash
    # days made by other rules: kept beside, then re-detected and compared (versions.py)
    previous = prepare_rules_change(settings.lake_dir, rules.version, INPUT_RECORD)
    # per stale day: one push + flush of the streaming engine (several days: maybe on Spark)
    many = _spark_backfill(context, settings, rules.detector)
    run = detect_stale_days(
        settings.lake_dir, lambda trades: detect_all(trades, rules.detector), many=many
    )
    compared = record_rule_sets(settings.lake_dir, run.days, rules.version, previous)
    found = run.alerts
    deliverer = Deliverer.from_rules(rules, settings.home, settings.alert_channels)
    delivered = 0
    if deliverer is not None and config.deliver and found.height:
        deliverer.submit(found)
        delivered = deliverer.drain()
    summary = alert_summary(found)
    context.log.info(
        f"{found.height} alerts over {run.trades_scanned} trades of {len(run.days)} changed "
        f"day(s) {run.days}: {summary}"
    )
    return dg.MaterializeResult(
        metadata={
            "alerts": found.height,
            "trades_scanned": run.trades_scanned,
            "by_type": summary,
            "days_detected": dg.MetadataValue.json(run.days),
            "days_stored": run.stored_days,
            "rules_version": rules.version,
            "rules_source": rules.source,
            "rules_comparisons": dg.MetadataValue.json([c.summary() for c in compared]),
            "messages_delivered": delivered,
            "legacy_id_files_migrated": migrated,
            "engine": "spark" if many is not None else "polars",
        }
    )


def _spark_backfill(
    context: dg.AssetExecutionContext, settings: Settings, cfg: DetectorConfig
) -> DetectMany | None:
    """With ``SENTINANCE_ENGINE=spark`` and more than one stale day (a backfill, a rules
    change), the days are detected on Spark, one task per (asset, day). A single stale day (the
    live refresh of today) stays in process: starting a Spark session would cost more than it."""
    if settings.engine != "spark" or len(stale_days(settings.lake_dir)) < 2:
        return None
    from sentinance_assets.lib.spark import session_for
    from sentinance_assets.lib.spark_detection import detect_days_on_spark

    def on_spark(files: dict[str, Path], days: list[str]) -> tuple[pl.DataFrame, int]:
        result = detect_days_on_spark(session_for(settings), files, days, cfg, datetime.now(UTC))
        context.log.info(
            f"detected {len(days)} day(s) on Spark in {result.seconds:.1f} s: "
            f"{result.tasks} tasks (asset x day), {result.trades_scanned} trades"
        )
        return result.alerts, result.trades_scanned

    return on_spark
