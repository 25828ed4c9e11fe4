"""A small synthetic lake, a warehouse over it and a `dbt build` runner for the dbt tests.

The raw data is made by hand here (not by the simulator) so every number the tests check is
known: a few hours of trades for binance and coinbase x BTC and ETH (crossing a UTC midnight,
with tied timestamps, a gap and re-ingested duplicates), a market known only through exchange
candles (kraken SOL/USD), a hand-made spread case (base HND on three venues), a quote without a
USD rate (kraken BTC/EUR), news and sentiment rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from sentinance_assets.lib import lake, warehouse
from sentinance_assets.lib.schemas import (
    NEWS_SENTIMENT,
    RAW_CANDLES,
    RAW_NEWS,
    RAW_TRADES,
    TS,
)

REPO = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")

START = datetime(2026, 11, 14, 21, 0, tzinfo=UTC)
HOURS = 4
INGESTED = datetime(2026, 11, 15, 2, 0, tzinfo=UTC)
MARKETS = {
    ("binance", "BTC/USDT"): 60_000.0,
    ("binance", "ETH/USDT"): 3_000.0,
    ("coinbase", "BTC/USD"): 60_030.0,
    ("coinbase", "ETH/USD"): 3_001.0,
}
# Hand-made spread case, window 22:00:00-22:00:30: USD VWAPs 102.5 (binance), 100 (coinbase),
# 99 (kraken); kraken's 22:00:30 trade falls in the next window, alone.
HND_WINDOW = datetime(2026, 11, 14, 22, 0, tzinfo=UTC)
HND_TRADES = [
    ("binance", "HND/USDT", "h1", HND_WINDOW + timedelta(seconds=5), 101.0, 1.0),
    ("binance", "HND/USDT", "h2", HND_WINDOW + timedelta(seconds=20), 103.0, 3.0),
    ("coinbase", "HND/USD", "h3", HND_WINDOW + timedelta(seconds=10), 100.0, 2.0),
    ("kraken", "HND/USD", "h4", HND_WINDOW + timedelta(seconds=29, milliseconds=999), 99.0, 1.0),
    ("kraken", "HND/USD", "h5", HND_WINDOW + timedelta(seconds=30), 50.0, 1.0),
]


def _split(symbol: str) -> tuple[str, str]:
    base, quote = symbol.split("/")
    return base, quote


def make_trades(seed: int = 11) -> pl.DataFrame:
    """Trades of the four main markets plus the HND and BTC/EUR cases (no duplicates yet)."""
    rng = np.random.default_rng(seed)
    frames = []
    span_ms = HOURS * 3600 * 1000
    for (exchange, symbol), p0 in MARKETS.items():
        n = 2_400
        offsets = np.sort(rng.integers(0, span_ms, n))
        # a third of the trades on whole seconds, so several share a timestamp
        whole = rng.random(n) < 0.33
        offsets = np.where(whole, offsets // 1000 * 1000, offsets)
        # a 3-minute gap without trades on binance BTC/USDT
        if (exchange, symbol) == ("binance", "BTC/USDT"):
            lo, hi = 90 * 60_000, 93 * 60_000
            offsets = offsets[(offsets < lo) | (offsets >= hi)]
        offsets = np.sort(offsets)
        k = len(offsets)
        price = p0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, k)))
        amount = np.round(rng.lognormal(-2.0, 1.0, k), 6) + 1e-6
        # trade ids deliberately not in time order within a tied timestamp
        ids = rng.permutation(k)
        base, quote = _split(symbol)
        frames.append(
            pl.DataFrame(
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    "base": base,
                    "quote": quote,
                    "trade_id": [f"{exchange[:1]}{i:06d}" for i in ids],
                    "ts": [START + timedelta(milliseconds=int(o)) for o in offsets],
                    "price": np.round(price, 2),
                    "amount": amount,
                    "side": np.where(rng.random(k) < 0.5, "buy", "sell"),
                }
            )
        )
    extra = [
        (ex, sym, tid, ts, price, amount) for ex, sym, tid, ts, price, amount in HND_TRADES
    ] + [
        ("kraken", "BTC/EUR", "e1", START + timedelta(minutes=5), 52_000.0, 0.1),
        ("kraken", "BTC/EUR", "e2", START + timedelta(minutes=6), 52_010.0, 0.2),
    ]
    frames.append(
        pl.DataFrame(
            {
                "exchange": [r[0] for r in extra],
                "symbol": [r[1] for r in extra],
                "base": [_split(r[1])[0] for r in extra],
                "quote": [_split(r[1])[1] for r in extra],
                "trade_id": [r[2] for r in extra],
                "ts": [r[3] for r in extra],
                "price": [r[4] for r in extra],
                "amount": [r[5] for r in extra],
                "side": ["buy"] * len(extra),
            }
        )
    )
    df = pl.concat(frames, how="vertical_relaxed")
    return df.with_columns(
        pl.col("ts").cast(TS),
        cost=pl.col("price") * pl.col("amount"),
        source=pl.lit("test"),
        ingested_at=pl.lit(INGESTED).cast(TS),
    )


def make_exchange_candles(seed: int = 5) -> pl.DataFrame:
    """kraken SOL/USD 1m and 1h candles (the market has no trades) and binance BTC/USDT 1m
    candles (ignored: that market has trades)."""
    rng = np.random.default_rng(seed)
    rows = []
    n = HOURS * 60
    close = 150.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[150.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 5e-4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 5e-4, n)))
    volume = rng.lognormal(2, 0.5, n)
    volume[7] = 0.0  # a bar without volume
    for i in range(n):
        rows.append(
            ("kraken", "SOL/USD", "1m", START + timedelta(minutes=i), open_[i], high[i], low[i])
            + (close[i], volume[i])
        )
    for h in range(HOURS):
        rows.append(("kraken", "SOL/USD", "1h", START + timedelta(hours=h), 1, 2, 0.5, 1.5, 10.0))
    for i in range(30):
        rows.append(
            ("binance", "BTC/USDT", "1m", START + timedelta(minutes=i), 1.0, 1.0, 1.0, 1.0, 1.0)
        )
    df = pl.DataFrame(
        rows,
        schema=["exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"],
        orient="row",
    )
    return df.with_columns(
        pl.col("ts").cast(TS),
        base=pl.col("symbol").str.split("/").list.get(0),
        quote=pl.col("symbol").str.split("/").list.get(1),
        source=pl.lit("test"),
        ingested_at=pl.lit(INGESTED).cast(TS),
    )


NEWS = [
    # news_id, published, assets
    ("n1", datetime(2026, 11, 14, 21, 30, tzinfo=UTC), "BTC"),
    ("n2", datetime(2026, 11, 14, 22, 15, tzinfo=UTC), "BTC,ETH"),
    ("n3", datetime(2026, 11, 14, 23, 59, tzinfo=UTC), " eth , sol ,"),
    ("n4", datetime(2026, 11, 15, 0, 10, tzinfo=UTC), ""),
    ("n5", datetime(2026, 11, 15, 0, 20, tzinfo=UTC), "BTC,btc"),
]
SENTIMENT = [
    # news_id, model, model_version, label, score, scored_at
    ("n1", "vader", "1", "negative", -0.5, datetime(2026, 11, 15, 1, 0, tzinfo=UTC)),
    ("n1", "transformer", "3", "positive", 0.8, datetime(2026, 11, 15, 1, 5, tzinfo=UTC)),
    ("n2", "transformer", "3", "negative", -0.6, datetime(2026, 11, 15, 1, 5, tzinfo=UTC)),
    ("n3", "transformer", "3", "neutral", 0.1, datetime(2026, 11, 15, 1, 5, tzinfo=UTC)),
    # n4 and n5 unscored
]


def make_news() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "news_id": [n[0] for n in NEWS],
            "title": [f"title {n[0]}" for n in NEWS],
            "summary": ["..."] * len(NEWS),
            "link": [f"https://example.test/{n[0]}" for n in NEWS],
            "published": [n[1] for n in NEWS],
            "published_missing": [False] * len(NEWS),
            "publisher": ["test"] * len(NEWS),
            "assets": [n[2] for n in NEWS],
            "source": ["test"] * len(NEWS),
            "ingested_at": [INGESTED] * len(NEWS),
        }
    ).with_columns(pl.col("published").cast(TS), pl.col("ingested_at").cast(TS))


def make_sentiment() -> pl.DataFrame:
    return pl.DataFrame(
        SENTIMENT,
        schema=["news_id", "model", "model_version", "label", "score", "scored_at"],
        orient="row",
    ).with_columns(pl.col("scored_at").cast(TS))


def write_lake(lake_dir: Path) -> dict[str, pl.DataFrame]:
    """Write the synthetic raw data (with duplicates) into a lake; return the clean frames."""
    trades = make_trades()
    dated = trades.with_columns(d=pl.col("ts").dt.date().cast(pl.String))
    for (date,), part in dated.partition_by("d", as_dict=True, maintain_order=True).items():
        lake.write_partition(lake_dir, RAW_TRADES, part, partition=date)
    # re-ingested copies: exact duplicates, and conflicting ones that must lose to the first
    dup = trades.sample(300, seed=3).with_columns(
        ingested_at=pl.lit(INGESTED + timedelta(hours=1)).cast(TS), source=pl.lit("replay")
    )
    dup = dup.with_columns(
        price=pl.when(pl.int_range(pl.len()) < 20).then(pl.col("price") * 2).otherwise("price")
    )
    lake.write_partition(lake_dir, RAW_TRADES, dup, partition="2026-11-15", part="reingest")

    candles = make_exchange_candles()
    lake.write_partition(lake_dir, RAW_CANDLES, candles, partition="2026-11-14")
    # an earlier, provisional fetch of some kraken bars: must lose to the later one
    provisional = (
        candles.filter(pl.col("exchange") == "kraken")
        .head(10)
        .with_columns(
            close=pl.col("close") * 0.9,
            ingested_at=pl.lit(INGESTED - timedelta(hours=1)).cast(TS),
        )
    )
    lake.write_partition(
        lake_dir, RAW_CANDLES, provisional, partition="2026-11-14", part="provisional"
    )

    news = make_news()
    lake.write_partition(lake_dir, RAW_NEWS, news, partition="2026-11-14")
    edited = news.head(1).with_columns(
        title=pl.lit("edited"), ingested_at=pl.lit(INGESTED + timedelta(hours=2)).cast(TS)
    )
    lake.write_partition(lake_dir, RAW_NEWS, edited, partition="2026-11-15", part="edit")

    sentiment = make_sentiment()
    lake.write_partition(lake_dir, NEWS_SENTIMENT, sentiment)
    return {"trades": trades, "candles": candles, "news": news, "sentiment": sentiment}


@dataclass
class DbtRun:
    warehouse: Path
    target: Path
    returncode: int
    output: str
    seconds: float
    data: dict[str, pl.DataFrame]

    def results(self) -> list[dict]:
        return json.loads((self.target / "run_results.json").read_text())["results"]

    def query(self, sql: str) -> pl.DataFrame:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            df = conn.sql(sql).pl()
        # DuckDB returns microseconds; the lake (and these frames) use milliseconds
        return df.with_columns(pl.col(pl.Datetime).cast(TS))


def run_dbt_build(
    lake_dir: Path,
    work: Path,
    data: dict[str, pl.DataFrame],
    *args: str,
    command: str = "build",
    warehouse_name: str = "warehouse.duckdb",
) -> DbtRun:
    """Register the lake views on ``work/warehouse_name`` and run ``dbt <command> *args``."""
    wh = work / warehouse_name
    with warehouse.write_connection(wh) as conn:
        warehouse.register_lake_views(conn, lake_dir)
    target = work / "target"
    env = {
        **os.environ,
        "SENTINANCE_WAREHOUSE_PATH": str(wh),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    cmd = [
        str(DBT),
        command,
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(target),
        "--log-path",
        str(work / "logs"),
        *args,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    return DbtRun(wh, target, proc.returncode, proc.stdout + proc.stderr, seconds, data)
