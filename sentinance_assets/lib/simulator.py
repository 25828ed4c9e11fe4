"""A deterministic simulated multi-exchange crypto market, one UTC day at a time.

Why simulate: Sentinance must run end to end offline, and detection quality can only be
measured against a ground truth. The simulator produces, for each day and seed:

* trades and 1-minute candles per (exchange, market) with realistic structure: GARCH(1,1)
  volatility clustering with Student-t shocks, intraday volume seasonality (busiest in the
  European/US overlap), volume that rises with volatility, log-normal trade sizes, and a small
  cross-venue basis (USDT quoted a little above USD, venue basis, AR(1) noise);
* a ground-truth table of injected events: volume spikes, whale trades, cross-exchange
  divergences and pump-and-dumps;
* news items tied to the day's moves and to the injected events.

Days are generated independently yet join up: each asset's day-open price comes from a daily
random walk indexed from a fixed epoch, and the intraday path is a bridge between consecutive
day opens. So a day's data depends only on (seed, day, exchanges, symbols, rate), never on the
configured window — re-running a partition gives the same rows.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from sentinance_assets.lib.markets import Market
from sentinance_assets.lib.news import news_id, tag_assets
from sentinance_assets.lib.schemas import (
    RAW_CANDLES,
    RAW_MARKET_EVENTS,
    RAW_NEWS,
    RAW_TRADES,
)

EPOCH = date(2015, 1, 1)
MINUTES = 1440
MS_PER_MINUTE = 60_000

# Natural trades are capped below the whale threshold so that every whale is an injected,
# labelled one (documented in the README's detection section).
NATURAL_TRADE_CAP_USD = 50_000.0
WHALE_RANGE_USD = (150_000.0, 1_500_000.0)
USDT_PREMIUM = 0.0003  # USDT usually trades a few basis points above USD


@dataclass(frozen=True)
class AssetProfile:
    price: float  # price level at the epoch (USD)
    daily_vol: float  # daily log-return standard deviation
    median_trade_usd: float
    activity: float  # relative trade intensity


ASSET_PROFILES: dict[str, AssetProfile] = {
    "BTC": AssetProfile(60_000.0, 0.025, 2_500.0, 1.5),
    "ETH": AssetProfile(3_000.0, 0.035, 1_500.0, 1.0),
    "SOL": AssetProfile(120.0, 0.05, 800.0, 0.8),
}
DEFAULT_PROFILE = AssetProfile(10.0, 0.06, 500.0, 0.5)

# (relative activity, log basis against the consolidated price)
VENUE_PROFILES: dict[str, tuple[float, float]] = {
    "binance": (1.5, 0.0),
    "coinbase": (1.0, 0.0002),
    "kraken": (0.6, -0.0002),
}
DEFAULT_VENUE = (0.5, 0.0)

BULLISH = (
    "{name} rallies {pct:.1f}% as buyers return",
    "{name} climbs {pct:.1f}% on strong inflows",
    "{name} jumps {pct:.1f}%, traders cheer breakout",
)
BEARISH = (
    "{name} slides {pct:.1f}% amid risk-off selling",
    "{name} drops {pct:.1f}% as liquidations mount",
    "{name} tumbles {pct:.1f}% after weak demand",
)
FLAT = (
    "{name} trades flat as volumes thin",
    "{name} holds steady in a quiet session",
)
NAMES = {"BTC": "Bitcoin", "ETH": "Ether", "SOL": "Solana"}
PUBLISHERS = ("Simulated Wire", "Chain Daily", "Block Ledger")
GENERIC = (
    ("Regulators schedule hearing on stablecoin rules", 0),
    ("Exchange reports record uptime during busy week", 1),
    ("Analysts split on outlook for {name} after choppy month", 0),
    ("Developers ship upgrade to {name} network, fees fall", 1),
    ("Hack at small DeFi protocol drains funds; {name} unaffected", -1),
)


def _seed(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_open_log_price(seed: int, base: str, day: date) -> float:
    """Log price of ``base`` at 00:00 UTC of ``day``: a daily random walk from the epoch."""
    profile = ASSET_PROFILES.get(base, DEFAULT_PROFILE)
    k = (day - EPOCH).days
    if k < 0:
        raise ValueError(f"the simulator starts at {EPOCH}; {day} is earlier")
    steps = _seed(seed, base, "daily").normal(0.0, profile.daily_vol * 0.8, size=k + 1)
    # Mild mean reversion of the level keeps prices in a plausible band over years.
    level = 0.0
    for r in steps[:k]:
        level = 0.999 * level + r
    return math.log(profile.price) + level


def _garch_path(rng: np.random.Generator, sigma: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Minute log-returns with GARCH(1,1) volatility clustering and Student-t(5) shocks."""
    alpha, beta = 0.08, 0.90
    omega = (1.0 - alpha - beta) * sigma**2
    z = rng.standard_t(5, size=n) / math.sqrt(5.0 / 3.0)  # unit variance
    var = np.empty(n)
    eps = np.empty(n)
    v = sigma**2
    prev = 0.0
    for t in range(n):
        v = omega + alpha * prev**2 + beta * v
        var[t] = v
        prev = math.sqrt(v) * z[t]
        eps[t] = prev
    return eps, np.sqrt(var)


def _seasonality(minutes: np.ndarray) -> np.ndarray:
    hours = minutes / 60.0
    return 1.0 + 0.45 * np.cos(2 * math.pi * (hours - 15.0) / 24.0)


@dataclass
class SimulatedDay:
    trades: pl.DataFrame
    candles: pl.DataFrame
    events: pl.DataFrame
    news: pl.DataFrame


@dataclass
class _Event:
    event_id: str
    type: str
    exchange: str
    symbol: str
    start_ms: int
    end_ms: int
    magnitude: float
    description: str


class MarketSimulator:
    """Generates :class:`SimulatedDay` s for a set of markets; deterministic per seed."""

    def __init__(self, markets: list[Market], seed: int, trade_rate: float) -> None:
        if not markets:
            raise ValueError("the simulator needs at least one market")
        self.markets = sorted(markets)
        self.seed = seed
        self.trade_rate = trade_rate

    # ------------------------------------------------------------------ public
    def day(self, day: date) -> SimulatedDay:
        start_ms = int(_day_start(day).timestamp() * 1000)
        events: list[_Event] = []
        trade_frames: list[pl.DataFrame] = []
        candle_frames: list[pl.DataFrame] = []
        day_returns: dict[str, float] = {}

        bases = sorted({m.base for m in self.markets})
        for base in bases:
            venues = [m for m in self.markets if m.base == base]
            path, vol = self._consolidated_path(base, day)
            day_returns[base] = float(path[-1] - path[0])
            plan = self._plan_events(base, venues, day, start_ms)
            events.extend(plan)
            for market in venues:
                trades = self._market_trades(market, day, start_ms, path, vol, plan)
                trade_frames.append(trades)
                candle_frames.append(self._candles(market, trades, start_ms, path))

        # Simulated arrival: a trade is received 250 ms after it happens, a candle when it closes.
        trades = pl.concat(trade_frames).with_columns(
            pl.lit("simulated").alias("source"),
            (pl.col("ts") + pl.duration(milliseconds=250)).alias("ingested_at"),
        )
        candles = pl.concat(candle_frames).with_columns(
            pl.lit("simulated").alias("source"),
            (pl.col("ts") + pl.duration(minutes=1)).alias("ingested_at"),
        )
        events_df = self._events_frame(events)
        news = self._news(day, start_ms, day_returns, events)
        return SimulatedDay(
            trades=RAW_TRADES.conform(trades.sort("exchange", "symbol", "ts", "trade_id")),
            candles=RAW_CANDLES.conform(candles.sort("exchange", "symbol", "ts")),
            events=events_df,
            news=news,
        )

    # ----------------------------------------------------------------- pieces
    def _consolidated_path(self, base: str, day: date) -> tuple[np.ndarray, np.ndarray]:
        """Log price at each minute boundary (MINUTES + 1 points) and per-minute volatility."""
        profile = ASSET_PROFILES.get(base, DEFAULT_PROFILE)
        x0 = day_open_log_price(self.seed, base, day)
        x1 = day_open_log_price(self.seed, base, day + timedelta(days=1))
        rng = _seed(self.seed, base, day.isoformat(), "path")
        sigma = profile.daily_vol / math.sqrt(MINUTES)
        eps, vol = _garch_path(rng, sigma, MINUTES)
        walk = np.concatenate([[0.0], np.cumsum(eps)])
        t = np.arange(MINUTES + 1) / MINUTES
        path = x0 + walk - t * (walk[-1] - (x1 - x0))  # bridge to the next day's open
        return path, vol / sigma

    def _plan_events(
        self, base: str, venues: list[Market], day: date, start_ms: int
    ) -> list[_Event]:
        rng = _seed(self.seed, base, day.isoformat(), "events")
        # Spread events over distinct hours so they never overlap within a market.
        slots = rng.permutation(np.arange(1, 23))
        slot_iter = iter(slots.tolist())
        out: list[_Event] = []

        def minute_in(slot: int, span: int) -> int:
            return slot * 60 + int(rng.integers(5, 60 - span - 1))

        tag = f"{base}-{day.isoformat()}"
        # One pump-and-dump on every venue of the asset every other day.
        if (day - EPOCH).days % 2 == 0:
            m = minute_in(next(slot_iter), 22)
            size = float(rng.uniform(0.03, 0.06))
            for v in venues:
                out.append(
                    _Event(
                        f"pump-{tag}-{v.exchange}",
                        "pump_and_dump",
                        v.exchange,
                        v.symbol,
                        start_ms + m * MS_PER_MINUTE,
                        start_ms + (m + 20) * MS_PER_MINUTE,
                        size,
                        f"{base} pumped {size:.1%} over 10 minutes on heavy volume, then reversed",
                    )
                )
        # One cross-exchange divergence per asset and day, on one venue.
        if len(venues) > 1:
            v = venues[int(rng.integers(len(venues)))]
            m = minute_in(next(slot_iter), 6)
            span = int(rng.integers(2, 6))
            size = float(rng.uniform(0.008, 0.015)) * (1 if rng.random() < 0.5 else -1)
            out.append(
                _Event(
                    f"div-{tag}-{v.exchange}",
                    "divergence",
                    v.exchange,
                    v.symbol,
                    start_ms + m * MS_PER_MINUTE,
                    start_ms + (m + span) * MS_PER_MINUTE,
                    size,
                    f"{v.symbol} on {v.exchange} {size:+.2%} away from other venues for {span} min",
                )
            )
        for v in venues:
            m = minute_in(next(slot_iter), 3)
            span = int(rng.integers(1, 3))
            factor = float(rng.uniform(8.0, 12.0))
            out.append(
                _Event(
                    f"spike-{tag}-{v.exchange}",
                    "volume_spike",
                    v.exchange,
                    v.symbol,
                    start_ms + m * MS_PER_MINUTE,
                    start_ms + (m + span) * MS_PER_MINUTE,
                    factor,
                    f"{v.symbol} on {v.exchange}: trade rate x{factor:.1f} for {span} min",
                )
            )
            for k in range(2):
                m = minute_in(next(slot_iter), 1)
                at = start_ms + m * MS_PER_MINUTE + int(rng.integers(0, MS_PER_MINUTE))
                usd = float(np.exp(rng.uniform(*np.log(WHALE_RANGE_USD))))
                out.append(
                    _Event(
                        f"whale-{tag}-{v.exchange}-{k}",
                        "whale",
                        v.exchange,
                        v.symbol,
                        at,
                        at,
                        usd,
                        f"single {v.symbol} trade worth ${usd:,.0f} on {v.exchange}",
                    )
                )
        return out

    def _market_trades(
        self,
        market: Market,
        day: date,
        start_ms: int,
        path: np.ndarray,
        vol: np.ndarray,
        plan: list[_Event],
    ) -> pl.DataFrame:
        profile = ASSET_PROFILES.get(market.base, DEFAULT_PROFILE)
        activity, basis = VENUE_PROFILES.get(market.exchange, DEFAULT_VENUE)
        rng = _seed(self.seed, market.exchange, market.symbol, day.isoformat(), "trades")
        minutes = np.arange(MINUTES)

        # Per-minute log offset of this venue: basis, USDT premium, AR(1) noise, events.
        quote_premium = USDT_PREMIUM if market.quote == "USDT" else 0.0
        noise = np.empty(MINUTES + 1)
        noise[0] = rng.normal(0, 0.0002)
        shocks = rng.normal(0, 0.0001, size=MINUTES)
        for t in range(MINUTES):
            noise[t + 1] = 0.9 * noise[t] + shocks[t]
        offset = basis + quote_premium + noise[:-1]

        rate = (
            self.trade_rate
            * activity
            * profile.activity
            * _seasonality(minutes)
            * np.clip(vol, 0.3, 4.0)
        )
        mine = [e for e in plan if e.exchange == market.exchange and e.symbol == market.symbol]
        whales: list[_Event] = []
        for e in mine:
            m0 = (e.start_ms - start_ms) // MS_PER_MINUTE
            m1 = (e.end_ms - start_ms) // MS_PER_MINUTE
            if e.type == "volume_spike":
                rate[m0:m1] *= e.magnitude
            elif e.type == "divergence":
                offset[m0:m1] += e.magnitude
            elif e.type == "pump_and_dump":
                ramp = np.concatenate([np.linspace(0, 1, 11)[1:], np.linspace(1, 0, 11)[1:]])
                offset[m0:m1] += e.magnitude * ramp[: m1 - m0]
                rate[m0:m1] *= 5.0
            elif e.type == "whale":
                whales.append(e)

        counts = rng.poisson(rate)
        minute_of = np.repeat(minutes, counts)
        n = len(minute_of)
        within = rng.integers(0, MS_PER_MINUTE, size=n)
        order = np.lexsort((within, minute_of))
        minute_of, within = minute_of[order], within[order]
        frac = within / MS_PER_MINUTE
        log_mid = (
            path[minute_of] + frac * (path[minute_of + 1] - path[minute_of]) + offset[minute_of]
        )
        price = np.exp(log_mid + rng.normal(0, 0.00005, size=n))
        usd = np.minimum(
            np.exp(rng.normal(math.log(profile.median_trade_usd), 0.9, size=n)),
            NATURAL_TRADE_CAP_USD,
        )
        ts = start_ms + minute_of * MS_PER_MINUTE + within
        step = path[minute_of + 1] - path[minute_of]
        p_buy = 0.5 + 0.2 * np.tanh(step / (profile.daily_vol / math.sqrt(MINUTES)))
        side = np.where(rng.random(n) < p_buy, "buy", "sell")

        if whales:
            w_ts = np.array([e.start_ms for e in whales])
            w_min = (w_ts - start_ms) // MS_PER_MINUTE
            w_frac = ((w_ts - start_ms) % MS_PER_MINUTE) / MS_PER_MINUTE
            w_log = path[w_min] + w_frac * (path[w_min + 1] - path[w_min]) + offset[w_min]
            ts = np.concatenate([ts, w_ts])
            price = np.concatenate([price, np.exp(w_log)])
            usd = np.concatenate([usd, [e.magnitude for e in whales]])
            side = np.concatenate([side, rng.choice(["buy", "sell"], size=len(whales))])
            order = np.argsort(ts, kind="stable")
            ts, price, usd, side = ts[order], price[order], usd[order], side[order]

        # Quote-denominated prices: USDT markets are priced in USDT, not USD.
        quote_price = price * (1.0 + quote_premium) if quote_premium else price
        amount = np.round(usd / price, 8)
        prefix = f"{market.exchange[:2]}{market.base}{day.strftime('%Y%m%d')}"
        return pl.DataFrame(
            {
                "exchange": market.exchange,
                "symbol": market.symbol,
                "base": market.base,
                "quote": market.quote,
                "trade_id": [f"{prefix}-{i:07d}" for i in range(len(ts))],
                "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
                "price": np.round(quote_price, 8),
                "amount": amount,
                "side": side,
            }
        ).with_columns((pl.col("price") * pl.col("amount")).alias("cost"))

    @staticmethod
    def _candles(
        market: Market, trades: pl.DataFrame, start_ms: int, path: np.ndarray
    ) -> pl.DataFrame:
        """1-minute candles the way an exchange reports them, from the venue's own trades.

        Minutes without trades carry the previous close with zero volume (Binance's behaviour).
        """
        grid = pl.DataFrame(
            {
                "ts": pl.Series(start_ms + np.arange(MINUTES) * MS_PER_MINUTE, dtype=pl.Int64).cast(
                    pl.Datetime("ms", "UTC")
                )
            }
        )
        bars = (
            trades.with_columns(pl.col("ts").dt.truncate("1m").alias("bar"))
            .group_by("bar")
            .agg(
                pl.col("price").first().alias("open"),
                pl.col("price").max().alias("high"),
                pl.col("price").min().alias("low"),
                pl.col("price").last().alias("close"),
                pl.col("amount").sum().alias("volume"),
            )
            .rename({"bar": "ts"})
        )
        first_price = float(trades["price"][0]) if trades.height else float(math.exp(path[0]))
        out = grid.join(bars, on="ts", how="left").sort("ts")
        close = out["close"].fill_null(strategy="forward").fill_null(first_price)
        out = out.with_columns(close.alias("close")).with_columns(
            pl.col("open").fill_null(pl.col("close")),
            pl.col("high").fill_null(pl.col("close")),
            pl.col("low").fill_null(pl.col("close")),
            pl.col("volume").fill_null(0.0),
        )
        return out.with_columns(
            pl.lit(market.exchange).alias("exchange"),
            pl.lit(market.symbol).alias("symbol"),
            pl.lit(market.base).alias("base"),
            pl.lit(market.quote).alias("quote"),
            pl.lit("1m").alias("timeframe"),
        )

    @staticmethod
    def _events_frame(events: list[_Event]) -> pl.DataFrame:
        if not events:
            return RAW_MARKET_EVENTS.empty()
        df = pl.DataFrame(
            {
                "event_id": [e.event_id for e in events],
                "type": [e.type for e in events],
                "exchange": [e.exchange for e in events],
                "symbol": [e.symbol for e in events],
                "start_ts": pl.Series([e.start_ms for e in events], dtype=pl.Int64).cast(
                    pl.Datetime("ms", "UTC")
                ),
                "end_ts": pl.Series([e.end_ms for e in events], dtype=pl.Int64).cast(
                    pl.Datetime("ms", "UTC")
                ),
                "magnitude": [e.magnitude for e in events],
                "description": [e.description for e in events],
            }
        )
        return RAW_MARKET_EVENTS.conform(df.sort("start_ts", "event_id"))

    def _news(
        self,
        day: date,
        start_ms: int,
        day_returns: dict[str, float],
        events: list[_Event],
    ) -> pl.DataFrame:
        rng = _seed(self.seed, day.isoformat(), "news")
        items: list[tuple[int, str, str]] = []  # (ms, title, summary)
        for base, ret in sorted(day_returns.items()):
            name = NAMES.get(base, base)
            pct = abs(math.expm1(ret)) * 100
            templates = BULLISH if ret > 0.01 else BEARISH if ret < -0.01 else FLAT
            title = templates[int(rng.integers(len(templates)))].format(name=name, pct=pct)
            summary = f"{name} ({base}) moved {math.expm1(ret):+.2%} over the UTC day."
            items.append(
                (
                    start_ms + 23 * 60 * MS_PER_MINUTE + int(rng.integers(0, 50)) * MS_PER_MINUTE,
                    title,
                    summary,
                )
            )
        seen_pumps: set[str] = set()
        for e in events:
            base = e.symbol.split("/")[0]
            name = NAMES.get(base, base)
            if e.type == "pump_and_dump" and base not in seen_pumps:
                seen_pumps.add(base)
                items.append(
                    (
                        e.start_ms + 6 * MS_PER_MINUTE,
                        f"{name} surges {e.magnitude:.0%} in minutes as traders pile in",
                        f"A sudden rally lifted {base} on every major venue on heavy volume.",
                    )
                )
                items.append(
                    (
                        e.end_ms + 5 * MS_PER_MINUTE,
                        f"{name} gives back gains after sharp reversal, late buyers hit",
                        f"The {base} spike unwound fast; analysts warn of manipulation.",
                    )
                )
            elif e.type == "whale" and e.magnitude > 800_000:
                items.append(
                    (
                        e.start_ms + 2 * MS_PER_MINUTE,
                        f"Whale moves ${e.magnitude / 1e6:.1f}M of {name} on {e.exchange.title()}",
                        f"On-chain watchers flagged a single large {base} trade.",
                    )
                )
        for _ in range(3):
            template, _tone = GENERIC[int(rng.integers(len(GENERIC)))]
            base = sorted(day_returns)[int(rng.integers(len(day_returns)))]
            title = template.format(name=NAMES.get(base, base))
            items.append(
                (
                    start_ms + int(rng.integers(0, MINUTES)) * MS_PER_MINUTE,
                    title,
                    f"{title}. Market participants weighed the news.",
                )
            )
        rows = []
        for i, (ms, title, summary) in enumerate(sorted(items)):
            link = f"https://news.sentinance.invalid/{day.isoformat()}/{i:03d}"
            rows.append(
                {
                    "news_id": news_id(None, link, title),
                    "title": title,
                    "summary": summary,
                    "link": link,
                    "published": ms,
                    "published_missing": False,
                    "publisher": PUBLISHERS[i % len(PUBLISHERS)],
                    "assets": ",".join(tag_assets(f"{title} {summary}")),
                    "source": "simulated",
                }
            )
        df = pl.DataFrame(rows).with_columns(
            pl.col("published").cast(pl.Int64).cast(pl.Datetime("ms", "UTC")),
            (pl.col("published").cast(pl.Int64) + 60_000)
            .cast(pl.Datetime("ms", "UTC"))
            .alias("ingested_at"),
        )
        return RAW_NEWS.conform(df)
