from datetime import date

import polars as pl
import pytest

from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.simulator import NATURAL_TRADE_CAP_USD, MarketSimulator

DAY = date(2026, 11, 10)


@pytest.fixture(scope="module")
def sim() -> MarketSimulator:
    return MarketSimulator(
        markets_for(("binance", "coinbase", "kraken"), ("BTC", "ETH")), seed=7, trade_rate=2.0
    )


@pytest.fixture(scope="module")
def day(sim):
    return sim.day(DAY)


def test_same_seed_same_data(sim, day):
    again = MarketSimulator(sim.markets, seed=7, trade_rate=2.0).day(DAY)
    for name in ("trades", "candles", "events", "news"):
        assert getattr(again, name).equals(getattr(day, name)), name


def test_other_seed_other_data(sim, day):
    other = MarketSimulator(sim.markets, seed=8, trade_rate=2.0).day(DAY)
    assert not other.trades["price"].equals(day.trades["price"])


def test_candles_are_consistent(day):
    c = day.candles
    assert c.height == 6 * 1440  # every minute of every market
    assert c.filter(pl.col("high") < pl.max_horizontal("open", "close")).height == 0
    assert c.filter(pl.col("low") > pl.min_horizontal("open", "close")).height == 0
    assert (c["volume"] >= 0).all()
    # volume equals the venue's own trades in each minute
    per_minute = day.trades.group_by("exchange", "symbol", pl.col("ts").dt.truncate("1m")).agg(
        pl.col("amount").sum().alias("v")
    )
    joined = c.join(per_minute, on=["exchange", "symbol", "ts"], how="inner")
    assert (joined["volume"] - joined["v"]).abs().max() < 1e-6


def test_trades_are_valid_and_unique(day):
    t = day.trades
    assert t["trade_id"].n_unique() == t.height
    assert (t["price"] > 0).all() and (t["amount"] > 0).all()
    assert t["ts"].dt.date().unique().to_list() == [DAY]
    assert set(t["side"].unique()) == {"buy", "sell"}
    assert dict(zip(t["exchange"], t["quote"], strict=True)) == {
        "binance": "USDT",
        "coinbase": "USD",
        "kraken": "USD",
    }


def test_only_injected_whales_exceed_the_natural_cap(day):
    big = day.trades.filter(pl.col("cost") > NATURAL_TRADE_CAP_USD * 1.01)
    whales = day.events.filter(pl.col("type") == "whale")
    assert big.height == whales.height > 0
    assert sorted(big["ts"].to_list()) == sorted(whales["start_ts"].to_list())


def test_structure_volatility_clustering_and_seasonality(sim):
    trades = pl.concat([sim.day(date(2026, 11, d)).trades for d in (10, 11, 12)])
    btc = trades.filter((pl.col("exchange") == "binance") & (pl.col("base") == "BTC"))
    hourly = btc.group_by(pl.col("ts").dt.hour().alias("h")).len().sort("h")
    # busiest around the European/US overlap, quietest around 03:00 UTC
    assert (
        hourly.filter(pl.col("h").is_between(13, 17))["len"].mean()
        > 1.4 * hourly.filter(pl.col("h").is_between(1, 5))["len"].mean()
    )
    minute = (
        btc.group_by_dynamic("ts", every="1m")
        .agg(pl.col("price").last())
        .with_columns(pl.col("price").log().diff().alias("r"))
        .drop_nulls()
    )
    abs_r = minute["r"].abs()
    # clustering: |r| is positively autocorrelated
    assert pl.DataFrame({"a": abs_r[1:], "b": abs_r[:-1]}).select(pl.corr("a", "b")).item() > 0.05


def test_cross_venue_basis_is_small_and_usdt_above_usd(day):
    mid = (
        day.candles.filter(pl.col("base") == "BTC")
        .group_by("exchange")
        .agg(pl.col("close").median())
    )
    prices = dict(mid.iter_rows())
    assert abs(prices["coinbase"] / prices["kraken"] - 1) < 0.002
    assert prices["binance"] > prices["kraken"]


def test_events_and_news_exist(day):
    assert {"whale", "volume_spike", "divergence"} <= set(day.events["type"])
    assert day.news.height >= 5
    assert day.news["news_id"].n_unique() == day.news.height
    assert day.news["assets"].str.len_chars().min() >= 0
