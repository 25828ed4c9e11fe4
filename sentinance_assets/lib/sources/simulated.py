"""The deterministic, seeded simulated market (the default, offline source)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import polars as pl

from sentinance_assets.lib.markets import Market
from sentinance_assets.lib.simulator import MarketSimulator, SimulatedDay


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
