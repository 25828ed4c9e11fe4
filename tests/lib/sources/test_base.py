"""One source interface: the simulated, replay and live sources all satisfy ``base.Source``, and
every watch-loop feed ``base.TradeFeed``, so callers ask for capabilities, never for names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from sentinance_assets.lib.detection.watch import ReplayFeed, SimulatedFeed
from sentinance_assets.lib.schemas import RAW_NEWS, RAW_TRADES
from sentinance_assets.lib.sources import build_source
from sentinance_assets.lib.sources.base import MarketKey, Source, TradeFeed
from sentinance_assets.lib.sources.exchanges import FetchPolicy
from sentinance_assets.lib.sources.live import LiveSource
from sentinance_assets.lib.sources.polling import LiveFeed
from sentinance_assets.lib.sources.streams import StreamFeed
from sentinance_assets.settings import Settings
from tests.fakes.exchange_server import MIN, FakeExchange, fake_exchanges
from tests.fakes.feed_server import RSS, FeedServer, feed_server
from tests.lib.sources.test_replay import _write_replay

LIVE_DAY = (datetime.now(UTC) - timedelta(days=2)).date()
LIVE_START = datetime(LIVE_DAY.year, LIVE_DAY.month, LIVE_DAY.day, 10, tzinfo=UTC)
FAST = FetchPolicy(timeout_ms=2_000, retries=1, backoff_s=0.001, rate_limit_ms=1)


def fetch_everything(source: Source, day: date, market: MarketKey) -> dict[str, pl.DataFrame]:
    """Every method of the protocol, called as it is typed; the frames by call."""
    assert isinstance(source, Source)
    assert isinstance(source.name, str) and isinstance(source.incremental, bool)
    window = source.day_window(day)
    assert window is not None and window[0] < window[1]
    frames = {
        "trades": source.trades(day),
        "trades since": source.trades(day, since={market: window[1] - 5 * MIN}),
        "candles": source.candles(day),
        "candles in": source.candles(day, windows={market: [(window[0], window[0] + 3 * MIN)]}),
        "news": source.news(day),
        "news unseen": source.news(day, seen=RAW_NEWS.empty()),
        "events": source.events(day),
    }
    assert all(isinstance(f, pl.DataFrame) for f in frames.values())
    assert isinstance(source.failures, list) and isinstance(source.problems, list)
    assert isinstance(source.news_report, dict)
    return frames


def assert_whole_days(source: Source, frames: dict[str, pl.DataFrame]) -> None:
    """Not incremental: the watermarks are ignored (the whole day each time), no stream."""
    assert source.incremental is False
    assert frames["trades"].height > 0
    arrival = ["ingested_at", "late"]  # stamped on each call
    for batch, incremental in [("trades", "since"), ("candles", "in"), ("news", "unseen")]:
        again = frames[f"{batch} {incremental}"].drop(arrival, strict=False)
        assert again.equals(frames[batch].drop(arrival, strict=False)), batch
    assert source.stream() is None
    assert source.failures == [] and source.news_report == {}


def test_simulated_source_satisfies_the_protocol(tmp_path: Path) -> None:
    source = build_source(Settings.from_env({"SENTINANCE_HOME": str(tmp_path)}))
    assert source.name == "simulated"
    frames = fetch_everything(source, date(2026, 11, 10), ("binance", "BTC/USDT"))
    assert_whole_days(source, frames)
    assert frames["events"].height > 0  # only the simulator knows its ground truth
    assert source.problems == []


def test_replay_source_satisfies_the_protocol(tmp_path: Path) -> None:
    _write_replay(tmp_path / "replay")
    (tmp_path / "replay" / "trades" / "junk.csv").write_text("a,b\n1,2\n")
    env = {
        "SENTINANCE_HOME": str(tmp_path / "home"),
        "SENTINANCE_SOURCE": "replay",
        "SENTINANCE_REPLAY_DIR": str(tmp_path / "replay"),
    }
    source = build_source(Settings.from_env(env))
    assert source.name == "replay"
    frames = fetch_everything(source, date(2023, 3, 1), ("binance", "BTC/USDT"))
    assert_whole_days(source, frames)
    assert frames["events"].height == 0
    assert [Path(p["file"]).name for p in source.problems] == ["junk.csv"]


@pytest.fixture
def servers() -> Iterator[tuple[FakeExchange, FeedServer]]:
    with fake_exchanges("binance") as fakes, feed_server() as feeds:
        rss = RSS.replace("Tue, 10 Nov 2026", LIVE_DAY.strftime("%a, %d %b %Y"))
        feeds.feeds["/rss"] = (rss, "application/rss+xml")
        yield fakes["binance"], feeds


def test_live_source_satisfies_the_protocol(
    tmp_path: Path, servers: tuple[FakeExchange, FeedServer]
) -> None:
    binance, feeds = servers
    env = {
        "SENTINANCE_HOME": str(tmp_path),
        "SENTINANCE_SOURCE": "live",
        "SENTINANCE_EXCHANGES": "binance",
        "SENTINANCE_SYMBOLS": "BTC",
        "SENTINANCE_START": LIVE_START.isoformat(),
        "SENTINANCE_END": (LIVE_START + timedelta(minutes=20)).isoformat(),
        "SENTINANCE_EXCHANGE_URL_BINANCE": binance.url,
        "SENTINANCE_NEWS_FEEDS": feeds.url("/rss"),
        "SENTINANCE_HTTP_TIMEOUT": "2",
        "SENTINANCE_HTTP_RETRIES": "1",
        "SENTINANCE_HTTP_BACKOFF": "0.01",
    }
    source = build_source(Settings.from_env(env))
    assert source.name == "live" and source.incremental is True
    frames = fetch_everything(source, LIVE_DAY, ("binance", "BTC/USDT"))
    # the watermarks are honoured: only the last 5 minutes of trades, 3 candle minutes
    assert 0 < frames["trades since"].height < frames["trades"].height
    assert frames["trades since"]["ts"].min() >= LIVE_START + timedelta(minutes=15)
    assert (frames["candles"].height, frames["candles in"].height) == (20, 3)
    assert source.failures == [] and source.problems == []
    # news: what is stored already (by id, link or title) is left out, and counted
    assert frames["news"].height == 2 and frames["news unseen"].height == 2
    assert source.news_report["repeats_of_stored"] == 0
    assert source.news(LIVE_DAY, seen=frames["news"].head(1)).height == 1
    assert source.news_report["repeats_of_stored"] == 1
    feed = source.stream(LIVE_START)
    assert isinstance(feed, TradeFeed) and feed.start == LIVE_START
    window = feed.between(LIVE_START, LIVE_START + timedelta(minutes=1))
    assert window.height > 0 and window.columns == RAW_TRADES.empty().columns


def test_every_watch_feed_is_a_trade_feed(tmp_path: Path) -> None:
    start = datetime(2026, 11, 10, tzinfo=UTC)
    simulated = SimulatedFeed(("binance",), ("BTC",), 7, 1.0, start)
    replay = ReplayFeed(simulated.between(start, start + timedelta(minutes=5)))
    live = LiveSource(("binance",), ("BTC",), policy=FAST)
    for feed in (simulated, replay, LiveFeed(live), StreamFeed(live, transport="poll")):
        assert isinstance(feed, TradeFeed), type(feed).__name__
        feed.close()
    for replayed in (simulated, replay):  # paced by the loop's speed, nothing to show
        assert replayed.horizon() is None and replayed.status() is None
    assert replay.between(start, start + timedelta(minutes=5)).height == replay.trades.height
