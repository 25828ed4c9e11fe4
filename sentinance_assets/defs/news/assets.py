"""Raw news items for one UTC day."""

from datetime import UTC, date, datetime

import dagster as dg

from sentinance_assets.defs.ingest_wiring import ingest_check_specs, ingest_result
from sentinance_assets.defs.partitions import daily
from sentinance_assets.lib import contracts
from sentinance_assets.lib.ingest import land_day
from sentinance_assets.lib.schemas import QUARANTINE_NEWS, RAW_NEWS
from sentinance_assets.lib.sources import build_source
from sentinance_assets.settings import Settings

NEWS = dg.AssetKey(["raw", "news"])


@dg.asset(
    key=NEWS,
    group_name="news",
    partitions_def=daily,
    check_specs=ingest_check_specs(NEWS),
    kinds={"polars", "parquet"},
    description="Crypto news items published on one UTC day, tagged with the assets they mention.",
)
def raw_news(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    day = context.partition_key
    source = build_source(settings)
    checked = land_day(
        source.news(date.fromisoformat(day)),
        dataset=RAW_NEWS,
        quarantine=QUARANTINE_NEWS,
        rules=contracts.news_rules(datetime.now(UTC)),
        key=["news_id"],
        lake_dir=settings.lake_dir,
        day=day,
        source=source.name,
        run_id=context.run_id,
    )
    return ingest_result(NEWS, checked, source=source.name)
