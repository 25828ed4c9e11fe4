"""A local fake of the Binance, Coinbase and Kraken public REST endpoints that ccxt calls.

Each :class:`FakeExchange` is an HTTP server on 127.0.0.1 (free port) answering like one venue
for ``load_markets``, ``fetch_ohlcv`` (1m) and ``fetch_trades``, with a deterministic market
(one candle per minute, three trades per minute) and scripted faults: HTTP 429/5xx, a hang
longer than the client timeout, malformed JSON, empty pages, or the whole venue down. It also
enforces each venue's page limit, so a client that asks for too much gets the venue's error.

Bad data: ``tamper[route] = fn`` rewrites every successful answer of a route before it is
serialised, so a test can serve NaN, strings for numbers, missing fields, duplicates,
far-future times... exactly as a venue would. ``route`` is the end of the path, optionally
with query parameters that must match (``"/aggTrades?symbol=BTCUSDT"``). ``fn`` may return
``bytes`` to send a raw body (e.g. a ``NaN`` token, which JSON lacks, or a cut-off page).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, urlsplit

MIN = 60_000
TRADE_OFFSETS = (5_000, 25_000, 45_000)

# venue id -> {unified symbol: venue id}
LISTINGS = {
    "binance": {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT", "BTC/USDC": "BTCUSDC"},
    "coinbase": {"BTC/USD": "BTC-USD", "ETH/USD": "ETH-USD", "BTC/USDT": "BTC-USDT"},
    "kraken": {"BTC/USD": "XXBTZUSD", "ETH/USD": "XETHZUSD"},
}


def candle(ts: int, venue_id: str) -> tuple[int, float, float, float, float, float]:
    i = ts // MIN
    base = (20_000.0 if "BT" in venue_id else 1_500.0) + (i % 1000)
    o = base
    c = base + ((i * 7) % 11 - 5)
    return ts, o, max(o, c) + 3, min(o, c) - 3, c, 1.0 + (i % 5)


def trades_between(lo: int, hi: int, venue_id: str) -> list[tuple[int, int, float, float, str]]:
    """(id, ts, price, amount, side) for every trade with ``lo <= ts <= hi``."""
    out = []
    first = (lo // MIN) * MIN
    for m in range(first, hi + 1, MIN):
        for k, off in enumerate(TRADE_OFFSETS):
            ts = m + off
            if lo <= ts <= hi:
                price = candle(m, venue_id)[4] + k
                out.append((m // MIN * 3 + k, ts, price, 0.1 * (k + 1), "buy" if k % 2 else "sell"))
    return out


class FakeExchange:
    def __init__(self, venue: str, *, hang_s: float = 1.5) -> None:
        self.venue = venue
        self.hang_s = hang_s
        self.faults: list[tuple[str, str]] = []  # (path substring, action), used once each
        self.down = False
        self.holes: set[int] = set()  # candle open times (ms) the venue does not return
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.tamper: dict[str, Callable[[object], object]] = {}  # route suffix -> rewrite
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fail(self, action: str, path: str = "", times: int = 1) -> None:
        self.faults.extend([(path, action)] * times)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if path in p)

    def start(self) -> FakeExchange:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with fake.lock:
                    fake.requests.append((parts.path, q))
                    fault = None
                    for i, (match, _action) in enumerate(fake.faults):
                        if match in parts.path:
                            fault = fake.faults.pop(i)[1]
                            break
                if fake.down:
                    return self._send(503, b"<html>503 Service Unavailable</html>", "text/html")
                if fault in ("429", "500", "502", "503"):
                    return self._send(int(fault), b'{"error":"injected"}')
                if fault == "timeout":
                    time.sleep(fake.hang_s)
                if fault == "malformed":
                    return self._send(200, b'{"result": [1, 2,')
                try:
                    status, body = fake.route(parts.path, q, empty=fault == "empty")
                    if status == 200:
                        body = fake._tampered(parts.path, q, body)
                except Exception as exc:  # noqa: BLE001 - a bug in the fake is a 500 here
                    status, body = 500, {"error": repr(exc)}
                self._send(status, body if isinstance(body, bytes) else json.dumps(body).encode())

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    def _tampered(self, path: str, q: dict[str, str], body: object) -> object:
        for route, fn in self.tamper.items():
            suffix, _, want = route.partition("?")
            if path.endswith(suffix) and all(q.get(k) == v for k, v in parse_qsl(want)):
                return fn(body)
        return body

    def _now_ms(self) -> int:
        return int(datetime.now(UTC).timestamp() * 1000)

    def _candles(self, venue_id: str, lo: int, hi: int, n: int) -> list[tuple]:
        """Up to ``n`` complete candles with ``lo <= open <= hi``, ascending."""
        last_complete = (self._now_ms() // MIN - 1) * MIN
        start = -(-lo // MIN) * MIN
        out = []
        for ts in range(start, min(hi, last_complete) + 1, MIN):
            if ts not in self.holes:
                out.append(candle(ts, venue_id))
            if len(out) >= n:
                break
        return out

    def route(self, path: str, q: dict[str, str], *, empty: bool) -> tuple[int, object]:
        return getattr(self, f"_route_{self.venue}")(path, q, empty)

    # ---- Binance (api/v3)
    def _route_binance(self, path: str, q: dict[str, str], empty: bool) -> tuple[int, object]:
        ids = LISTINGS["binance"]
        if path.endswith("/exchangeInfo"):
            return 200, {
                "timezone": "UTC",
                "serverTime": self._now_ms(),
                "rateLimits": [],
                "symbols": [_binance_symbol(sym, vid) for sym, vid in ids.items()],
            }
        if path.endswith("/klines"):
            limit = int(q.get("limit", 500))
            if limit > 1000:
                return 400, {"code": -1130, "msg": "Invalid data sent for a parameter."}
            if empty:
                return 200, []
            lo = int(q.get("startTime", 0))
            hi = int(q.get("endTime", 2**62))
            return 200, [
                [t, f"{o}", f"{h}", f"{lw}", f"{c}", f"{v}", t + MIN - 1, "0", 3, "0", "0", "0"]
                for t, o, h, lw, c, v in self._candles(q["symbol"], lo, hi, limit)
            ]
        if path.endswith("/aggTrades"):
            limit = int(q.get("limit", 500))
            if limit > 1000:
                return 400, {"code": -1130, "msg": "Invalid data sent for a parameter."}
            lo, hi = int(q["startTime"]), int(q["endTime"])
            if hi - lo > 3_600_000:
                return 400, {
                    "code": -1127,
                    "msg": "More than 1 hours between startTime and endTime.",
                }
            if empty:
                return 200, []
            hi = min(hi, self._now_ms())
            rows = trades_between(lo, hi, q["symbol"])[:limit]
            return 200, [
                {
                    "a": i,
                    "p": f"{p}",
                    "q": f"{a}",
                    "f": i,
                    "l": i,
                    "T": t,
                    "m": s == "sell",
                    "M": True,
                }
                for i, t, p, a, s in rows
            ]
        return 404, {"code": -1, "msg": f"no route {path}"}

    # ---- Coinbase Advanced Trade (api/v3/brokerage/market)
    def _route_coinbase(self, path: str, q: dict[str, str], empty: bool) -> tuple[int, object]:
        ids = LISTINGS["coinbase"]
        if path.endswith("/market/products"):
            if q.get("product_type") == "FUTURE":
                return 200, {"products": [], "num_products": 0}
            return 200, {
                "products": [_coinbase_product(vid) for vid in ids.values()],
                "num_products": len(ids),
            }
        if path.endswith("/candles"):
            vid = path.split("/")[-2]
            lo, hi = int(q["start"]) * 1000, int(q["end"]) * 1000
            if (hi - lo) // MIN + 1 > 350:
                return 400, {
                    "error": "INVALID_ARGUMENT",
                    "message": "number of candles requested should be less than 350",
                }
            if empty:
                return 200, {"candles": []}
            rows = self._candles(vid, lo, hi, 350)[::-1]  # newest first, like Coinbase
            return 200, {
                "candles": [
                    {
                        "start": str(t // 1000),
                        "low": f"{lw}",
                        "high": f"{h}",
                        "open": f"{o}",
                        "close": f"{c}",
                        "volume": f"{v}",
                    }  # fmt: skip
                    for t, o, h, lw, c, v in rows
                ]
            }
        if path.endswith("/ticker"):
            vid = path.split("/")[-2]
            limit = min(int(q.get("limit", 100)), 1000)
            if empty:
                return 200, {"trades": [], "best_bid": "", "best_ask": ""}
            lo = int(q.get("start", 0)) * 1000
            hi = int(q["end"]) * 1000 + 999 if "end" in q else self._now_ms()
            hi = min(hi, self._now_ms())
            rows = trades_between(lo, hi, vid)[::-1][:limit]  # the newest of the window
            return 200, coinbase_ticker(vid, rows)
        return 404, {"error": "NOT_FOUND", "message": f"no route {path}"}

    # ---- Kraken (0/public)
    def _route_kraken(self, path: str, q: dict[str, str], empty: bool) -> tuple[int, object]:
        ids = LISTINGS["kraken"]
        if path.endswith("/AssetPairs"):
            return 200, {"error": [], "result": {vid: _kraken_pair(vid) for vid in ids.values()}}
        if path.endswith("/OHLC"):
            vid = q["pair"]
            since = int(q.get("since", 0)) * 1000
            if empty:
                return 200, {"error": [], "result": {vid: [], "last": since // 1000}}
            rows = self._candles(vid, since + 1, 2**62, 720)  # after since, at most 720
            return 200, {
                "error": [],
                "result": {
                    vid: [
                        [t // 1000, f"{o}", f"{h}", f"{lw}", f"{c}", f"{c}", f"{v}", 3]
                        for t, o, h, lw, c, v in rows
                    ],
                    "last": rows[-1][0] // 1000 if rows else since // 1000,
                },
            }
        if path.endswith("/Trades"):
            vid = q["pair"]
            count = min(int(q.get("count", 1000)), 1000)
            since = int(q.get("since", 0)) * 1000
            if empty:
                return 200, {"error": [], "result": {vid: [], "last": str(since * 1_000_000)}}
            rows = trades_between(since, self._now_ms(), vid)[:count]
            return 200, {
                "error": [],
                "result": {
                    vid: [
                        [f"{p}", f"{a}", t / 1000, "b" if s == "buy" else "s", "l", "", i]
                        for i, t, p, a, s in rows
                    ],
                    "last": str(rows[-1][1] * 1_000_000 if rows else since * 1_000_000),
                },
            }
        return 200, {"error": [f"EGeneral:Unknown method {path}"]}


def coinbase_ticker(vid: str, rows: list[tuple[int, int, float, float, str]]) -> dict:
    """Coinbase's ``/ticker`` answer for ``rows`` of ``(id, ts ms, price, amount, side)``."""
    return {
        "trades": [
            {
                "trade_id": str(i),
                "product_id": vid,
                "price": f"{p}",
                "size": f"{a}",
                "time": datetime.fromtimestamp(t / 1000, tz=UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "side": s.upper(),
                "bid": "",
                "ask": "",
            }
            for i, t, p, a, s in rows
        ],
        "best_bid": "",
        "best_ask": "",
    }


def _binance_symbol(sym: str, vid: str) -> dict:
    base, quote = sym.split("/")
    return {
        "symbol": vid,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000000.00",
                "tickSize": "0.01",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001",
                "maxQty": "9000.00",
                "stepSize": "0.00001",
            },
        ],  # fmt: skip
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
    }


def _coinbase_product(vid: str) -> dict:
    base, quote = vid.split("-")
    return {
        "product_id": vid,
        "price": "100",
        "base_increment": "0.00000001",
        "quote_increment": "0.01",
        "quote_min_size": "1",
        "quote_max_size": "150000000",
        "base_min_size": "0.00000001",
        "base_max_size": "3400",
        "base_name": base,
        "quote_name": quote,
        "is_disabled": False,
        "status": "online",
        "cancel_only": False,
        "limit_only": False,
        "post_only": False,
        "trading_disabled": False,
        "auction_mode": False,
        "product_type": "SPOT",
        "quote_currency_id": quote,
        "base_currency_id": base,
        "base_display_symbol": base,
        "quote_display_symbol": quote,
        "view_only": False,
        "price_increment": "0.01",
        "display_name": vid,
        "product_venue": "CBE",
    }


def _kraken_pair(vid: str) -> dict:
    base, quote = vid[:4], vid[4:]
    return {
        "altname": vid.replace("XXBT", "XBT").replace("XETH", "ETH").replace("ZUSD", "USD"),
        "wsname": f"{base[1:]}/{quote[1:]}",
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "lot": "unit",
        "cost_decimals": 5,
        "pair_decimals": 1,
        "lot_decimals": 8,
        "lot_multiplier": 1,
        "leverage_buy": [],
        "leverage_sell": [],
        "fees": [[0, 0.26]],
        "fees_maker": [[0, 0.16]],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": "0.0001",
        "costmin": "0.5",
        "tick_size": "0.1",
        "status": "online",
    }


@contextmanager
def fake_exchanges(*venues: str, hang_s: float = 1.5) -> Iterator[dict[str, FakeExchange]]:
    fakes = {v: FakeExchange(v, hang_s=hang_s).start() for v in venues}
    try:
        yield fakes
    finally:
        for f in fakes.values():
            f.stop()
