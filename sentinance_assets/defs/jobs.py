"""Jobs and schedules: ingest per day, then everything downstream."""

import dagster as dg

from sentinance_assets.defs.partitions import daily

INGEST = dg.AssetSelection.groups("market", "news")
ANALYTICS = dg.AssetSelection.all() - INGEST

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
