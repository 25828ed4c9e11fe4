"""Where market and news data come from: one interface, three modes.

``simulated`` (default, offline) generates a deterministic market; ``replay`` and ``live``
(ccxt / feedparser) plug in behind the same :class:`Source` interface so the assets, contracts
and marts downstream never know which one ran.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Protocol

import polars as pl

from sentinance_assets.lib.markets import Market, markets_for
from sentinance_assets.lib.simulator import MarketSimulator, SimulatedDay
from sentinance_assets.settings import Settings


class Source(Protocol):
    """A provider of one UTC day of raw data, in the layouts of ``lib.schemas``."""

    name: str

    def trades(self, day: date) -> pl.DataFrame: ...

    def candles(self, day: date) -> pl.DataFrame: ...

    def news(self, day: date) -> pl.DataFrame: ...

    def events(self, day: date) -> pl.DataFrame:
        """Ground-truth market events (only the simulator knows them; others return none)."""
        ...


class SimulatedSource:
    name = "simulated"

    def __init__(self, markets: list[Market], seed: int, trade_rate: float) -> None:
        self._sim = MarketSimulator(markets, seed=seed, trade_rate=trade_rate)

    @lru_cache(maxsize=4)  # noqa: B019 - a source lives for one run; caching a day is intended
    def _day(self, day: date) -> SimulatedDay:
        return self._sim.day(day)

    def trades(self, day: date) -> pl.DataFrame:
        return self._day(day).trades

    def candles(self, day: date) -> pl.DataFrame:
        return self._day(day).candles

    def news(self, day: date) -> pl.DataFrame:
        return self._day(day).news

    def events(self, day: date) -> pl.DataFrame:
        return self._day(day).events


class SourceUnavailableError(RuntimeError):
    pass


def build_source(settings: Settings) -> Source:
    if settings.source == "simulated":
        return SimulatedSource(
            markets_for(settings.exchanges, settings.symbols),
            seed=settings.seed,
            trade_rate=settings.sim_trade_rate,
        )
    raise SourceUnavailableError(
        f"SENTINANCE_SOURCE={settings.source} is not available in this version yet; "
        "use the default `simulated` source"
    )
