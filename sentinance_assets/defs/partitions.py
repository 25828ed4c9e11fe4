"""Daily UTC partitions shared by every ingest asset.

A fixed, early start keeps partition keys stable whatever window a run is configured with,
so a backfill of any range since 2017 can be launched from the UI; ``end_offset=1`` includes
today, which the live schedule refreshes through the day.
"""

import dagster as dg

daily = dg.DailyPartitionsDefinition(start_date="2017-01-01", end_offset=1)
