"""The live trade feed of the watch loop over REST: the venues' trade history, polled.

It lives with the sources, not with the loop, because it is the live source's stream
(``LiveSource.stream``); ``sources.streams.StreamFeed`` is the websocket transport of the same
source. Both are :class:`~sentinance_assets.lib.sources.base.TradeFeed`\\ s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from sentinance_assets.lib.sources.base import epoch_ms
from sentinance_assets.settings import Settings

if TYPE_CHECKING:  # the live module imports this one (and ccxt): only its type is needed here
    from sentinance_assets.lib.sources.live import LiveSource


class LiveFeed:
    """Live trades polled from the exchanges of a ``LiveSource`` (ccxt REST).

    The stream position follows the wall clock ``lag`` behind (:meth:`horizon`), so a restart
    after a pause catches up in ``max_batch`` steps instead of staying behind. A trade that
    reaches the venue's history more than ``lag`` after its timestamp is missed (the
    exchanges' own ingestion delay is normally well under a second). One venue failing never
    stops the others: its failure is recorded in ``source.failures``, its trades of that step
    are skipped.
    """

    def __init__(
        self,
        source: LiveSource,
        start: datetime | None = None,
        lag: timedelta = timedelta(seconds=3),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.lag = lag
        self.now = now
        self.start = start or (now() - lag)
        self.end: datetime | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> LiveFeed:
        from sentinance_assets.lib.sources.live import LiveSource

        return cls(LiveSource.from_settings(settings), **kwargs)

    def horizon(self) -> datetime:
        return self.now() - self.lag

    def between(self, lo: datetime, hi: datetime) -> pl.DataFrame:
        trades = self.source.trades_between(epoch_ms(lo), epoch_ms(hi))
        return trades.sort("ts", "exchange", "symbol", "trade_id")

    def status(self) -> str | None:
        return None  # one transport, nothing to show

    def close(self) -> None:
        pass  # nothing to release: REST calls need no shutdown


__all__ = ["LiveFeed"]
