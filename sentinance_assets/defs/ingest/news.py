"""Raw news items for one UTC day.

How a day lands (replaced, or merged into) is :func:`~.landing.land`'s; an incremental source
(live: the feeds, read with conditional GETs) is asked for the items published on the day that
are not stored yet (by id, link or normalised title), and a stored item is kept as first seen.
"""

from datetime import date

import dagster as dg
import polars as pl

from sentinance_assets.defs.ingest.landing import Fetched, Target, ingest_asset
from sentinance_assets.lib import contracts
from sentinance_assets.lib.schemas import QUARANTINE_NEWS, RAW_NEWS
from sentinance_assets.lib.sources.base import Source

NEWS = Target(
    asset=dg.AssetKey(["raw", "news"]),
    kind="news",
    dataset=RAW_NEWS,
    quarantine=QUARANTINE_NEWS,
    key=("news_id",),
    contract=lambda _settings, now: contracts.news_rules(now),
    keep="old",
)


def unseen_news(source: Source, day: date, stored: pl.DataFrame) -> Fetched:
    """The day's items not stored yet; the feeds' report (read, failed, repeats) as metadata."""
    return Fetched(source.news(day, seen=stored), lambda _: source.news_report)


raw_news = ingest_asset(
    NEWS,
    unseen_news,
    group="news",
    description="Crypto news items published on one UTC day, tagged with the assets they mention.",
)
