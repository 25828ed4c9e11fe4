"""The one interface of a market/news source, and of the trade feed the watch loop reads.

Callers (the ingest assets, the watch loop) ask a source what it can do, never which one it is:

* **batch** - ``trades(day)``, ``candles(day)``, ``news(day)``, ``events(day)``: one UTC day;
* **incremental** - the same calls with a watermark of what the lake already holds: ``since``
  (the last stored trade per market, epoch ms), ``windows`` (the candle minutes still missing
  per market, within ``day_window(day)``), ``seen`` (the news items already stored). A source
  declares ``incremental = False`` when it can only hand over whole days (simulated, replay):
  it ignores the watermark, and the ingest assets replace the partition instead of merging;
* **stream** - ``stream(start)``: trades as they happen, a :class:`TradeFeed` for the watch
  loop, or ``None`` when the source has none (the watch loop replays simulated and recorded
  trades with its own feeds).

Every source reports the same way, each attribute empty when there is nothing to say, so no
caller has to probe for one: ``failures`` (markets or feeds it could not fetch), ``problems``
(files it could not read) and ``news_report`` (what its last news fetch did).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, runtime_checkable

import polars as pl

MarketKey = tuple[str, str]  # (exchange, unified symbol)
Window = tuple[int, int]  # [start_ms, end_ms)
Failure = dict[str, str]  # one market, feed or file that could not be fetched, with its error


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def epoch_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@runtime_checkable
class TradeFeed(Protocol):
    """Trades in time order, in the ``raw.trades`` layout, as the watch loop reads them.

    The loop starts at ``start`` (when it has no checkpoint), stops at ``end`` (``None``: runs
    until stopped) and reads ``between(lo, hi)`` in consecutive windows.
    """

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime | None: ...

    def horizon(self) -> datetime | None:
        """How far the wall clock lets the loop read (a live feed: trades must have landed at
        the venue), or ``None`` for a replayed feed, which the loop paces by its ``speed``."""
        ...

    def between(self, lo: datetime, hi: datetime) -> pl.DataFrame:
        """Every trade with ``lo <= ts < hi``."""
        ...

    def status(self) -> str | None:
        """A short line for the progress display (e.g. which venues stream or poll), or None."""
        ...

    def close(self) -> None:
        """Release threads and connections (idempotent); the feed's owner calls it."""
        ...


@runtime_checkable
class Source(Protocol):
    """A provider of raw data in the layouts of ``lib.schemas`` (see the module docstring)."""

    @property
    def name(self) -> str:
        """Stamped on every row (``source`` column) and in the assets' metadata."""
        ...

    @property
    def incremental(self) -> bool:
        """Whether the watermarks are honoured (only the missing rows come back)."""
        ...

    @property
    def failures(self) -> list[Failure]:
        """(exchange, symbol, dataset, error) or (feed, dataset, error) fetches that failed."""
        ...

    @property
    def problems(self) -> list[Failure]:
        """(file, error) of the files that could not be read."""
        ...

    @property
    def news_report(self) -> dict[str, object]:
        """Counts from the last news fetch (feeds read, failed, not modified, duplicates)."""
        ...

    def coverage(self, kind: str) -> dict[str, dict[str, int]]:
        """Per input file of ``kind`` (replay), how many rows it holds and how many fall
        outside the run's window (``before_window``, ``after_window``, ``future``: beyond the
        allowed clock skew, ``no_time``), so rows no partition reads are still counted.
        Sources without files return ``{}``."""
        ...

    def day_window(self, day: date) -> Window | None:
        """The part of ``day`` a fetch covers (epoch ms), None when nothing of it can be."""
        ...

    def trades(self, day: date, since: Mapping[MarketKey, int] | None = None) -> pl.DataFrame:
        """Trades of ``day``; incrementally, from ``since`` on for the markets it names."""
        ...

    def candles(
        self, day: date, windows: Mapping[MarketKey, Sequence[Window]] | None = None
    ) -> pl.DataFrame:
        """1-minute candles of ``day``; incrementally, only ``windows`` for the markets named."""
        ...

    def news(self, day: date, seen: pl.DataFrame | None = None) -> pl.DataFrame:
        """News published on ``day``; incrementally, without the items ``seen`` holds."""
        ...

    def events(self, day: date) -> pl.DataFrame:
        """Ground-truth market events (only the simulator knows them; others return none)."""
        ...

    def stream(self, start: datetime | None = None) -> TradeFeed | None:
        """Trades as they happen from ``start`` (default: now), or None without a stream."""
        ...


class WholeDaySource:
    """What the simulated and replay sources share: they hand over whole days only.

    They cannot fetch part of a day, so they are not incremental (the watermarks are ignored,
    the assets replace the day), nothing they do fails per market or feed, and they have no
    stream of their own. Subclasses set ``name`` and add the batch methods.
    """

    incremental = False

    def __init__(self) -> None:
        self.failures: list[Failure] = []
        self.problems: list[Failure] = []
        self.news_report: dict[str, object] = {}

    def day_window(self, day: date) -> Window | None:
        start, end = day_bounds(day)
        return epoch_ms(start), epoch_ms(end)

    def stream(self, start: datetime | None = None) -> TradeFeed | None:
        return None

    def coverage(self, kind: str) -> dict[str, dict[str, int]]:
        return {}


__all__ = [
    "Failure",
    "MarketKey",
    "Source",
    "TradeFeed",
    "WholeDaySource",
    "Window",
    "day_bounds",
    "epoch_ms",
]
