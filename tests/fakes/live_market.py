"""A live market on this machine: two venues printing trades in real time, a news feed that
publishes new items, and a webhook that records what it receives.

For the soak test (``tests/test_soak.py``) and ``benchmarks/live.py``: ``sentinance serve`` in
live mode is pointed at these with ``SENTINANCE_EXCHANGE_URL_*``, ``SENTINANCE_NEWS_FEEDS`` and
``SENTINANCE_ALERT_WEBHOOK`` (:meth:`LiveMarket.environment`).

* Binance: REST and websocket on one port (``ws_exchange_server``), trades from a shared tape;
* Coinbase: REST only (its websocket attempt fails, so the watch loop polls it), trades from the
  same tape;
* :class:`Printer`: a thread printing small trades on every market a few times a second around
  one mid price per asset, and (once :attr:`Printer.whaling` is set) a whale (well above the
  $100k threshold) every ``whale_every_s`` on alternating venues; :attr:`Printer.whales` lists
  them;
* :class:`LiveFeed`: an RSS feed whose newest item changes every ``every_s`` seconds;
* :class:`WebhookReceiver`: records every POST (body and ``Idempotency-Key``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.exchange_server import LISTINGS, FakeExchange, coinbase_ticker
from tests.fakes.feed_server import FeedServer
from tests.fakes.ws_exchange_server import FakeBinanceWs, TapeBinance, TradeTape

MARKETS = {  # (venue, unified symbol) -> venue id
    ("binance", "BTC/USDT"): LISTINGS["binance"]["BTC/USDT"],
    ("binance", "ETH/USDT"): LISTINGS["binance"]["ETH/USDT"],
    ("coinbase", "BTC/USD"): LISTINGS["coinbase"]["BTC/USD"],
    ("coinbase", "ETH/USD"): LISTINGS["coinbase"]["ETH/USD"],
}
MID = {"BTC": 20_000.0, "ETH": 1_500.0}
WHALE_USD = 250_000.0


class TapeCoinbase(FakeExchange):
    """The REST fake of Coinbase (markets, candles) with trades (``/ticker``) from a tape."""

    def __init__(self, tape: TradeTape) -> None:
        super().__init__("coinbase")
        self.tape = tape

    def _route_coinbase(self, path: str, q: dict[str, str], empty: bool) -> tuple[int, object]:
        if not path.endswith("/ticker"):
            return super()._route_coinbase(path, q, empty)
        vid = path.split("/")[-2]
        limit = min(int(q.get("limit", 100)), 1000)
        lo = int(q.get("start", 0)) * 1000
        hi = int(q["end"]) * 1000 + 999 if "end" in q else self._now_ms()
        rows = self.tape.between(vid, lo, min(hi, self._now_ms()))[::-1][:limit]  # newest first
        return 200, coinbase_ticker(vid, rows)


@dataclass(frozen=True)
class Whale:
    venue: str
    symbol: str
    venue_id: str
    trade_id: int
    ts_ms: int
    price: float
    amount: float


class Printer:
    """Prints trades in real time on every market, and a whale every ``whale_every_s``."""

    def __init__(
        self,
        tape: TradeTape,
        *,
        per_second: float = 3.0,
        whale_every_s: float = 20.0,
        seed: int = 7,
    ) -> None:
        self.tape = tape
        self.per_second = per_second
        self.whale_every_s = whale_every_s
        self.rng = random.Random(seed)
        self.mid = dict(MID)
        self.whales: list[Whale] = []
        self.printed = 0
        self.paused = threading.Event()
        self.whaling = threading.Event()  # whales only once set (e.g. when the watch loop runs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="printer")

    def start(self) -> Printer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _price(self, symbol: str) -> float:
        base = symbol.split("/")[0]
        self.mid[base] *= 1 + self.rng.gauss(0, 0.0002)
        return round(self.mid[base] * (1 + self.rng.gauss(0, 0.00005)), 2)

    def whale(self, venue: str, symbol: str) -> Whale:
        vid = MARKETS[(venue, symbol)]
        price = self._price(symbol)
        amount = round(WHALE_USD / price, 4)
        i, ts, p, a, _ = self.tape.trade(vid, price, amount, "buy")
        w = Whale(venue, symbol, vid, i, ts, p, a)
        self.whales.append(w)
        return w

    def _run(self) -> None:
        markets = list(MARKETS.items())
        next_whale = time.monotonic() + self.whale_every_s
        turn = 0
        while not self._stop.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            for (_venue, symbol), vid in markets:
                base = symbol.split("/")[0]
                amount = round(self.rng.uniform(0.01, 0.3) * (1 if base == "BTC" else 12), 4)
                side = "buy" if self.rng.random() < 0.5 else "sell"
                self.tape.trade(vid, self._price(symbol), amount, side)
                self.printed += 1
            if not self.whaling.is_set():
                next_whale = time.monotonic() + self.whale_every_s
            elif time.monotonic() >= next_whale:
                (venue, symbol), _ = markets[turn % len(markets)]
                self.whale(venue, symbol)
                turn += 1
                next_whale += self.whale_every_s
            time.sleep(1.0 / self.per_second)


class LiveFeed:
    """An RSS feed on a :class:`FeedServer` whose newest item changes every ``every_s``."""

    PATH = "/live.rss"
    WORDS = ("Bitcoin", "Ether", "ETF flows", "stablecoin", "exchange", "rally", "selloff")

    def __init__(self, server: FeedServer, every_s: float = 20.0) -> None:
        self.server = server
        self.every_s = every_s
        self.items: list[tuple[str, str, datetime]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="feed")
        self.publish()

    @property
    def url(self) -> str:
        return self.server.url(self.PATH)

    def publish(self) -> None:
        n = len(self.items) + 1
        words = self.WORDS[n % len(self.WORDS)], self.WORDS[(3 * n) % len(self.WORDS)]
        title = f"{words[0]} and {words[1]}: market update {n}"
        self.items.append((f"live-{n}", title, datetime.now(UTC)))
        body = "".join(
            f'<item><guid isPermaLink="false">{guid}</guid><title>{t}</title>'
            f"<link>https://live.example/{guid}</link><description>{t}. BTC ETH.</description>"
            f"<pubDate>{format_datetime(when)}</pubDate></item>"
            for guid, t, when in self.items[-20:]
        )
        self.server.feeds[self.PATH] = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Live wire</title><link>https://live.example</link>{body}</channel></rss>",
            "application/rss+xml",
        )

    def start(self) -> LiveFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.publish()


class WebhookReceiver:
    """Records every POST: ``(idempotency key, JSON body)``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {"raw": body.decode("utf-8", "replace")}
                with receiver.lock:
                    receiver.received.append((self.headers.get("Idempotency-Key", ""), data))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _, body in self.received]


@dataclass
class LiveMarket:
    tape: TradeTape
    binance: TapeBinance
    binance_ws: FakeBinanceWs
    coinbase: TapeCoinbase
    printer: Printer
    feed: LiveFeed
    webhook: WebhookReceiver

    def environment(self) -> dict[str, str]:
        """The settings that point a live Sentinance at this market."""
        return {
            "SENTINANCE_SOURCE": "live",
            "SENTINANCE_EXCHANGES": "binance,coinbase",
            "SENTINANCE_SYMBOLS": "BTC,ETH",
            "SENTINANCE_EXCHANGE_URL_BINANCE": self.binance_ws.http_url,
            "SENTINANCE_EXCHANGE_URL_COINBASE": self.coinbase.url,
            "SENTINANCE_NEWS_FEEDS": self.feed.url,
            "SENTINANCE_ALERT_WEBHOOK": self.webhook.url,
            "SENTINANCE_HTTP_TIMEOUT": "5",
            "SENTINANCE_HTTP_RETRIES": "1",
            "SENTINANCE_HTTP_BACKOFF": "0.2",
        }


@contextmanager
def live_market(
    *, per_second: float = 3.0, whale_every_s: float = 20.0, news_every_s: float = 20.0
) -> Iterator[LiveMarket]:
    tape = TradeTape()
    binance = TapeBinance(tape).start()
    ws = FakeBinanceWs(tape, binance).start()
    coinbase = TapeCoinbase(tape).start()
    feeds = FeedServer()
    feeds.thread.start()
    feed = LiveFeed(feeds, news_every_s).start()
    webhook = WebhookReceiver().start()
    printer = Printer(tape, per_second=per_second, whale_every_s=whale_every_s).start()
    try:
        yield LiveMarket(tape, binance, ws, coinbase, printer, feed, webhook)
    finally:
        printer.stop()
        feed.stop()
        webhook.stop()
        feeds.server.shutdown()
        feeds.server.server_close()
        ws.stop()
        coinbase.stop()
        binance.stop()
