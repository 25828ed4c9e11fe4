"""The deterministic, seeded simulated market (the default, offline source)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from functools import lru_cache

import polars as pl

from sentinance_assets.lib.markets import Market
from sentinance_assets.lib.simulator import MarketSimulator, SimulatedDay
from sentinance_assets.lib.sources.base import MarketKey, WholeDaySource, Window


class SimulatedSource(WholeDaySource):
    """Every call returns the whole generated day (the watermarks are ignored: a day is
    generated at once and is the same every time)."""

    name = "simulated"

    def __init__(self, markets: list[Market], seed: int, trade_rate: float) -> None:
        super().__init__()
        self._sim = MarketSimulator(markets, seed=seed, trade_rate=trade_rate)

    @lru_cache(maxsize=4)  # noqa: B019 - a source lives for one run; caching a day is intended
    def _day(self, day: date) -> SimulatedDay:
        return self._sim.day(day)

    def trades(self, day: date, since: Mapping[MarketKey, int] | None = None) -> pl.DataFrame:
        return self._day(day).trades

    def candles(
        self, day: date, windows: Mapping[MarketKey, Sequence[Window]] | None = None
    ) -> pl.DataFrame:
        return self._day(day).candles

    def news(self, day: date, seen: pl.DataFrame | None = None) -> pl.DataFrame:
        return self._day(day).news

    def events(self, day: date) -> pl.DataFrame:
        return self._day(day).events
