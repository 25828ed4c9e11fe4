"""Detection one UTC day at a time: the unit of the batch path, on one machine and on Spark.

A day is detected over its own trades plus the last :data:`WARM_UP` of the previous day (the
window rules look back at most an hour and carry state for a few buckets), and only the alerts
whose event time falls in the day are kept. On the simulated market this gives exactly the
alerts of one pass over the whole history (tests/defs/test_batch_detection.py).

The trades go into the engine in one canonical order (:func:`in_trade_order`). The engine's
window sums are floating point, so the same rows in another order can differ in the last bit
(a volume z-score, a VWAP), and the first of two alerts with one id wins: with a fixed order the
result depends on the set of rows only. That is what lets a Spark task, which receives its rows
in no particular order, reproduce the single-machine alerts exactly (``lib/spark_detection``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import polars as pl

WARM_UP = timedelta(hours=3)
#: every column of raw.trades, most significant first: a total order over distinct rows
TRADE_ORDER = (
    "exchange",
    "symbol",
    "ts",
    "trade_id",
    "price",
    "amount",
    "side",
    "cost",
    "source",
    "ingested_at",
)

Detect = Callable[[pl.DataFrame], pl.DataFrame]


def day_bounds(day: str) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day given as ``YYYY-MM-DD``."""
    d = date.fromisoformat(day)
    lo = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return lo, lo + timedelta(days=1)


def previous_day(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def in_trade_order(trades: pl.DataFrame) -> pl.DataFrame:
    """The trades in :data:`TRADE_ORDER` (rows equal in every sorted column are identical)."""
    return trades.sort(list(TRADE_ORDER), nulls_last=True)


def in_day(alerts: pl.DataFrame, day: str) -> pl.DataFrame:
    """The alerts whose event time falls in ``day``."""
    lo, hi = day_bounds(day)
    return alerts.filter((pl.col("event_time") >= lo) & (pl.col("event_time") < hi))


def detect_day(trades: pl.DataFrame, day: str, detect: Detect) -> pl.DataFrame:
    """The alerts of ``day`` from its trades (with their warm-up, any order)."""
    return in_day(detect(in_trade_order(trades)), day)
