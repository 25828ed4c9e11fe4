"""Websocket trades (ccxt.pro) in the watch loop, against local fakes of Binance (no internet).

The fakes: ``tests/fakes/ws_exchange_server.py`` (Binance's aggTrade websocket and its REST
twin, one trade tape) and ``tests/fakes/exchange_server.py`` (Coinbase REST). Every wait is a
generous bound on an event, never an assertion on a duration.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from sentinance_assets.lib.detection.sinks import LakeSink
from sentinance_assets.lib.detection.watch import (
    StopFlag,
    WatchStats,
    checkpoint_cursor_ms,
    run_watch,
)
from sentinance_assets.lib.sources import streams
from sentinance_assets.lib.sources.exchanges import FetchPolicy
from sentinance_assets.lib.sources.live import LiveSource
from sentinance_assets.lib.sources.streams import StreamFeed, ws_support, ws_url_for
from sentinance_assets.settings import Settings, SettingsError
from tests.fakes.ws_exchange_server import BTC, ETH, fake_binance_ws, wait_until

POLICY = FetchPolicy(timeout_ms=2_000, retries=1, backoff_s=0.001, rate_limit_ms=1)
WHALE = 10.0  # BTC at 20,000 USDT: a $200k trade, a whale alert as it arrives


class Recording:
    """The feed as the loop sees it (a ``TradeFeed``), keeping every frame ``between`` handed
    out."""

    def __init__(self, feed: StreamFeed) -> None:
        self.feed = feed
        self.start = feed.start
        self.end: datetime | None = None
        self.frames: list[pl.DataFrame] = []

    def horizon(self) -> datetime:
        return self.feed.horizon()

    def between(self, lo: datetime, hi: datetime) -> pl.DataFrame:
        got = self.feed.between(lo, hi)
        self.frames.append(got)
        return got

    def status(self) -> str:
        return self.feed.status()

    def close(self) -> None:
        self.feed.close()

    def ids(self) -> list[tuple[str, str, str]]:
        if not self.frames:
            return []
        every = pl.concat(self.frames, how="vertical_relaxed")
        return list(every.select("exchange", "symbol", "trade_id").iter_rows())


def _feed(exchange_urls: dict[str, str], ws_urls: dict[str, str], **kw) -> StreamFeed:
    venues = tuple(exchange_urls)
    source = LiveSource(
        venues, ("BTC", "ETH"), exchange_urls=exchange_urls, policy=POLICY, sleep=lambda s: None
    )
    kw.setdefault("lag", timedelta(seconds=1))
    kw.setdefault("ws_lag", timedelta(milliseconds=300))
    return StreamFeed(
        source,
        ws_urls=ws_urls,
        backoff_s=0.02,
        max_backoff_s=0.2,
        ping_interval_s=0.5,
        connect_timeout_s=2.0,
        **kw,
    )


class Loop:
    """``run_watch`` in a thread, stopped by its flag once the checkpoint passes a time."""

    def __init__(self, feed: Recording, tmp_path: Path) -> None:
        self.feed = feed
        self.ckpt = tmp_path / "ck"
        self.lake = LakeSink(tmp_path / "lake")
        self.stop = StopFlag()
        self.stats: WatchStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.stats = run_watch(
                self.feed, [self.lake], self.ckpt, stop=self.stop, step=0.02, compact=False
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
            self.error = exc

    def __enter__(self) -> Loop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.stop = True
        self.thread.join(30)

    def finish_after(self, ts_ms: int) -> WatchStats:
        """Wait until every trade up to ``ts_ms`` is committed, then stop the loop."""
        wait_until(
            lambda: (checkpoint_cursor_ms(self.ckpt) or 0) > ts_ms or self.error is not None,
            timeout=30,
            what="the watch loop to pass the last trade",
        )
        self.stop.stop = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the watch loop did not stop"
        if self.error is not None:
            raise self.error
        assert self.stats is not None
        return self.stats

    def alerts(self) -> pl.DataFrame:
        return pl.concat([pl.read_parquet(f) for f in self.lake.files()])


def _key(row: tuple) -> tuple[str, str, str]:
    return ("binance", "BTC/USDT" if row[2] >= 10_000 else "ETH/USDT", str(row[0]))


def test_trades_pushed_over_the_socket_become_alerts_exactly_once(tmp_path):
    with fake_binance_ws() as (tape, rest, ws):
        feed = _feed({"binance": rest.url}, {"binance": ws.url})
        rec = Recording(feed)
        with feed, Loop(rec, tmp_path) as loop:
            wait_until(lambda: ws.subscribed() >= 1, what="the subscription")
            # not in the REST history: only the websocket can deliver these
            pushed = [
                tape.trade(BTC, 20_000.0 + i, WHALE if i % 3 == 0 else 0.01, socket_only=True)
                for i in range(9)
            ]
            pushed += [tape.trade(ETH, 1_500.0, 0.5, socket_only=True) for _ in range(3)]
            stats = loop.finish_after(max(r[1] for r in pushed))
            assert feed.report()["binance"]["mode"] == "live"
        assert not feed.running  # the websocket thread stopped with the feed
    ids = rec.ids()
    assert len(ids) == len(set(ids))  # nothing twice
    assert set(ids) == {_key(r) for r in pushed}  # nothing missed
    assert stats.trades == len(pushed)
    # one whale alert per market and millisecond (the alert id hashes the event time)
    alerts = loop.alerts().filter(pl.col("type") == "whale")
    whales = {r[1] for r in pushed if r[3] == WHALE}
    assert {int(t.timestamp() * 1000) for t in alerts["event_time"]} == whales
    assert feed.late == 0 and "binance ws" in feed.status()


def test_a_disconnect_is_backfilled_over_rest_without_gap_or_duplicate(tmp_path):
    with fake_binance_ws() as (tape, rest, ws):
        feed = _feed({"binance": rest.url}, {"binance": ws.url}, max_failures=1000)
        rec = Recording(feed)
        with feed, Loop(rec, tmp_path) as loop:
            wait_until(lambda: ws.subscribed() >= 1, what="the subscription")
            before = [tape.trade(BTC, 20_000.0, WHALE if i == 0 else 0.02) for i in range(4)]
            wait_until(lambda: feed.report()["binance"]["received"] >= 4, what="the trades")
            # the venue drops the socket and refuses to take it back for a while
            ws.refuse = True
            ws.drop()
            wait_until(lambda: feed.report()["binance"]["mode"] != "live", what="the drop")
            during = [tape.trade(ETH, 1_500.0, 0.3) for _ in range(3)]
            during.append(tape.trade(BTC, 20_100.0, WHALE))  # only REST has these
            ws.refuse = False
            wait_until(
                lambda: ws.connections >= 2 and ws.subscribed() >= 1, what="the resubscription"
            )
            after = [tape.trade(BTC, 20_200.0, WHALE if i == 1 else 0.03) for i in range(4)]
            stats = loop.finish_after(after[-1][1])
            report = feed.report()["binance"]
        assert not feed.running
    assert report["connections"] >= 2 and report["mode"] == "live"
    assert report["received"] == len(before) + len(after)  # the rest came over REST only
    ids = rec.ids()
    assert len(ids) == len(set(ids)), "a trade was processed twice"
    assert set(ids) == {_key(r) for r in before + during + after}, "a trade was missed"
    assert stats.trades == len(before + during + after)
    whales = {r[1] for r in before + during + after if r[3] == WHALE}
    alerts = loop.alerts().filter(pl.col("type") == "whale")
    assert {int(t.timestamp() * 1000) for t in alerts["event_time"]} == whales
    assert alerts["alert_id"].n_unique() == alerts.height


def test_dead_socket_and_venue_without_websocket_fall_back_to_polling(tmp_path, monkeypatch):
    from tests.fakes.exchange_server import fake_exchanges

    # coinbase: as if ccxt.pro had no websocket for it; binance: nothing listens on its socket
    real = ws_support
    monkeypatch.setattr(streams, "ws_support", lambda v: v != "coinbase" and real(v))
    with fake_binance_ws() as (tape, rest, ws), fake_exchanges("coinbase") as cb:
        dead = ws.url  # a port that answers no websocket once the fake is gone
        ws.stop()
        feed = _feed(
            {"binance": rest.url, "coinbase": cb["coinbase"].url},
            {"binance": dead},
            max_failures=2,
        )
        rec = Recording(feed)
        with feed, Loop(rec, tmp_path) as loop:
            wait_until(lambda: feed.report()["binance"]["mode"] == "poll", what="the fallback")
            trades = [tape.trade(BTC, 20_000.0, WHALE if i == 2 else 0.02) for i in range(5)]
            stats = loop.finish_after(trades[-1][1])
        report = feed.report()
    assert report["coinbase"]["mode"] == "poll"
    assert report["coinbase"]["reason"] == "no websocket in ccxt.pro"
    assert report["binance"]["reason"].startswith("websocket failed 2x")
    assert report["binance"]["connections"] == 2
    assert "binance poll" in feed.status() and "coinbase poll" in feed.status()
    mine = [k for k in rec.ids() if k[0] == "binance"]
    assert sorted(mine) == sorted(_key(r) for r in trades)
    assert stats.alerts >= 1
    with pytest.raises(ValueError, match="coinbase: ccxt.pro has no websocket"):
        _feed({"coinbase": "http://127.0.0.1:9"}, {}, transport="ws").open()


def test_a_venue_that_fell_back_to_polling_tries_the_socket_again(tmp_path):
    """A websocket outage pins the venue to polling only for ``retry_ws_after_s``: once the
    socket answers again, trades come over it again, and none is missed or doubled."""
    with fake_binance_ws() as (tape, rest, ws):
        ws.refuse = True  # the venue's websocket is down when the watch starts
        feed = _feed(
            {"binance": rest.url}, {"binance": ws.url}, max_failures=2, retry_ws_after_s=0.3
        )
        rec = Recording(feed)
        with feed, Loop(rec, tmp_path) as loop:
            wait_until(lambda: feed.report()["binance"]["mode"] == "poll", what="the fallback")
            polled = [tape.trade(BTC, 20_000.0, WHALE if i == 1 else 0.02) for i in range(3)]
            ws.refuse = False
            wait_until(lambda: feed.report()["binance"]["mode"] == "live", what="the retry")
            pushed = [
                tape.trade(BTC, 20_100.0, WHALE if i == 0 else 0.02, socket_only=True)
                for i in range(3)
            ]
            stats = loop.finish_after(pushed[-1][1])
            report = feed.report()["binance"]
    assert report["connections"] >= 3 and report["received"] >= len(pushed)
    ids = rec.ids()
    assert len(ids) == len(set(ids)), "a trade was processed twice"
    assert set(ids) == {_key(r) for r in polled + pushed}, "a trade was missed"
    assert stats.alerts == 2  # one whale polled, one pushed over the socket only


def test_ws_support_and_urls():
    assert ws_support("binance") and ws_support("kraken") and ws_support("coinbase")
    assert not ws_support("zaif")  # in ccxt, not in ccxt.pro
    assert not ws_support("nonsense")
    assert ws_url_for("http://127.0.0.1:8123") == "ws://127.0.0.1:8123"
    assert ws_url_for("https://proxy.example/binance") == "wss://proxy.example/binance"
    with pytest.raises(ValueError, match="transport"):
        StreamFeed(LiveSource(("binance",), ("BTC",)), transport="carrier-pigeon")


def test_watch_transport_setting(tmp_path):
    home = {"SENTINANCE_HOME": str(tmp_path)}
    assert Settings.from_env(home).watch_transport == "auto"
    for value in ("ws", "poll", " AUTO "):
        got = Settings.from_env({**home, "SENTINANCE_WATCH_TRANSPORT": value}).watch_transport
        assert got == value.strip().lower()
    with pytest.raises(SettingsError, match="SENTINANCE_WATCH_TRANSPORT"):
        Settings.from_env({**home, "SENTINANCE_WATCH_TRANSPORT": "websocket"})


def test_horizon_is_held_back_by_a_silent_socket_and_by_rest_coverage():
    from sentinance_assets.lib.markets import Market
    from sentinance_assets.lib.sources.streams import VenueState

    t = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    ms = int(t.timestamp() * 1000)
    feed = StreamFeed(
        LiveSource(("binance",), ("BTC",)),
        now=lambda: t,
        lag=timedelta(seconds=3),
        ws_lag=timedelta(seconds=1),
    )
    feed._opened = True  # white box: the states a running socket thread would set
    feed._markets = {"binance": [Market("binance", "BTC/USDT", "BTC", "USDT")]}
    state = feed.states["binance"] = VenueState(mode="live", heard_ms=ms - 200)
    state.ws_from["BTC/USDT"] = ms - 60_000
    assert feed.horizon() == t - timedelta(milliseconds=1_200)  # a streaming venue
    state.heard_ms = ms - 20_000  # nothing heard for 20 s: maybe dead, not yet noticed
    assert feed.horizon() == t - timedelta(seconds=21)
    state.heard_ms, state.ws_from["BTC/USDT"] = ms, ms - 1_000  # REST covers until 1 s ago
    assert feed.horizon() == t - timedelta(seconds=3)
    state.ws_from.clear()  # connected, no trade over the socket yet
    assert feed.horizon() == t - timedelta(seconds=3)
    state.mode = "connecting"
    assert feed.horizon() == t - timedelta(seconds=3)


def test_socket_trades_are_taken_once_and_late_ones_are_counted_not_processed():
    from ccxt.async_support.base.ws.cache import ArrayCache

    from sentinance_assets.lib.markets import Market
    from sentinance_assets.lib.sources.streams import VenueState

    feed = StreamFeed(LiveSource(("binance",), ("BTC",)))
    m = Market("binance", "BTC/USDT", "BTC", "USDT")
    feed._markets = {"binance": [m]}
    state = feed.states["binance"] = VenueState(mode="live")
    feed._served_ms = 10_000  # the loop has processed everything before t = 10 s

    def trade(i: int, ts: int) -> dict:
        return {"id": str(i), "timestamp": ts, "price": 1.0, "amount": 1.0, "side": "buy"}

    cache = ArrayCache(100)
    for i, ts in enumerate((8_000, 9_000, 11_000)):  # a snapshot on subscribe: old, not late
        cache.append(trade(i, ts))
    feed._take("binance", m, state, cache)
    assert feed.late == 0 and state.ws_from["BTC/USDT"] == 8_000
    assert sorted(k[2] for k in feed._buffer) == ["2"]  # only what the loop has not passed
    cache.append(trade(3, 9_500))  # arrives after its window was processed: late
    cache.append(trade(4, 12_000))
    feed._take("binance", m, state, cache)
    feed._take("binance", m, state, cache)  # the same cache again: nothing new
    assert feed.late == 1 and state.received == 5
    assert sorted(k[2] for k in feed._buffer) == ["2", "4"]
    assert "1 late" in feed.status()
