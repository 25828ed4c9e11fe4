"""Raw news items for one UTC day.

Live: every run reads the configured feeds (conditional GET), keeps the items published on the
partition's day and merges them into what is stored (an item already stored by id, link or
normalised title is kept as first seen). Simulated and replay replace the day.
"""

from datetime import UTC, date, datetime

import dagster as dg

from sentinance_assets.defs.market.wiring import (
    check_specs,
    failures_for,
    merge_into_day,
    replace_day,
    result,
)
from sentinance_assets.defs.partitions import daily
from sentinance_assets.lib import contracts
from sentinance_assets.lib.schemas import QUARANTINE_NEWS, RAW_NEWS
from sentinance_assets.lib.sources import build_source
from sentinance_assets.lib.sources.incremental import drop_seen_news, stored
from sentinance_assets.settings import Settings

NEWS = dg.AssetKey(["raw", "news"])


@dg.asset(
    key=NEWS,
    group_name="news",
    partitions_def=daily,
    check_specs=check_specs(NEWS),
    kinds={"polars", "parquet"},
    description="Crypto news items published on one UTC day, tagged with the assets they mention.",
)
def raw_news(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    day = context.partition_key
    source = build_source(settings)
    rules = contracts.news_rules(datetime.now(UTC))
    extra: dict[str, object] = {}
    if source.name == "live":
        existing = stored(settings.lake_dir, RAW_NEWS, day)
        new, repeats = drop_seen_news(existing, source.news(date.fromisoformat(day)))
        failures = failures_for(source, "news")
        if settings.news_feeds and len(failures) >= len(settings.news_feeds):
            raise dg.Failure(
                "no configured news feed could be read",
                metadata={"failed": dg.MetadataValue.json(failures)},
            )
        landed = merge_into_day(
            context,
            settings,
            source,
            new,
            dataset=RAW_NEWS,
            quarantine=QUARANTINE_NEWS,
            rules=rules,
            key=["news_id"],
            existing=existing,
            prefer="old",
        )
        checked = landed.checked
        extra = {
            **getattr(source, "news_report", {}),
            "repeats_of_stored": repeats,
            "stored_rows": landed.frame.height,
        }
    else:
        checked, failures = replace_day(
            context,
            settings,
            source,
            source.news(date.fromisoformat(day)),
            kind="news",
            dataset=RAW_NEWS,
            quarantine=QUARANTINE_NEWS,
            rules=rules,
            key=["news_id"],
        )
    return result(NEWS, checked, source=source.name, failures=failures, extra=extra)
