"""A local fake of Binance's public trade websocket, with a REST twin that serves the same trades.

Why a twin: the websocket feed backfills gaps over REST, so the test needs one market seen
through two transports. :class:`TradeTape` is that market: every trade the test prints is
appended to the tape (REST ``aggTrades`` reads it) and, while a socket is subscribed and the
venue is reachable, pushed over the websocket in Binance's ``aggTrade`` format - the
stream ccxt.pro's ``binance.watch_trades(..., params={"name": "aggTrade"})`` subscribes to.
Trades printed while the socket is down reach REST only: exactly the gap a reconnect must fill.

:class:`FakeBinanceWs` is an aiohttp websocket server on 127.0.0.1 (free port) that speaks the
subset of the protocol ccxt.pro uses: ``{"method": "SUBSCRIBE", "params": [...], "id": n}``
answered by ``{"result": null, "id": n}``, then one JSON event per trade. It can drop every
connection (``drop()``) and refuse new handshakes (``refuse = True``). It answers on any path,
so the client keeps Binance's own paths and only scheme, host and port are re-pointed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

from tests.fakes.exchange_server import LISTINGS, FakeExchange


class TradeTape:
    """The trades of the fake Binance, in print order (ids and timestamps never decrease)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trades: dict[str, list[tuple[int, int, float, float, str]]] = {}
        self.next_id = 1
        self.last_ts = 0
        self.sockets: list[FakeBinanceWs] = []

    def trade(
        self,
        venue_id: str,
        price: float,
        amount: float,
        side: str = "buy",
        *,
        socket_only: bool = False,
    ) -> tuple[int, int, float, float, str]:
        """Print one trade (timestamp: now) and push it to every subscribed socket.

        ``socket_only`` keeps it out of the REST history: a test then knows that a trade the
        loop processed can only have come over the websocket.
        """
        with self.lock:
            now = max(int(datetime.now(UTC).timestamp() * 1000), self.last_ts)
            row = (self.next_id, now, price, amount, side)
            self.next_id += 1
            self.last_ts = now
            if not socket_only:
                self.trades.setdefault(venue_id, []).append(row)
        for sock in self.sockets:
            sock.push(venue_id, row)
        return row

    def between(self, venue_id: str, lo: int, hi: int) -> list[tuple[int, int, float, float, str]]:
        with self.lock:
            return [t for t in self.trades.get(venue_id, []) if lo <= t[1] <= hi]

    def all(self) -> list[tuple[str, tuple[int, int, float, float, str]]]:
        with self.lock:
            return [(v, t) for v, rows in self.trades.items() for t in rows]


class TapeBinance(FakeExchange):
    """The REST fake of Binance (markets, candles) with ``aggTrades`` read from a tape."""

    def __init__(self, tape: TradeTape) -> None:
        super().__init__("binance")
        self.tape = tape

    def _route_binance(self, path: str, q: dict[str, str], empty: bool) -> tuple[int, object]:
        if not path.endswith("/aggTrades"):
            return super()._route_binance(path, q, empty)
        limit = min(int(q.get("limit", 500)), 1000)
        lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        rows = self.tape.between(q["symbol"], lo, hi)[:limit]
        return 200, [_agg_trade(q["symbol"], row, rest=True) for row in rows]


def _agg_trade(venue_id: str, row: tuple, *, rest: bool = False) -> dict:
    i, ts, price, amount, side = row
    body = {"a": i, "p": f"{price}", "q": f"{amount}", "f": i, "l": i, "T": ts}
    body.update({"m": side == "sell", "M": True})
    return body if rest else {"e": "aggTrade", "E": ts, "s": venue_id, **body}


class FakeBinanceWs:
    """An aiohttp websocket server pushing the tape's trades in Binance's aggTrade format.

    Given ``rest``, plain HTTP requests on the same port are answered by that REST fake, so
    one base URL (``http_url``) serves both transports - the way ``SENTINANCE_EXCHANGE_URL_*``
    re-points a venue for the ``sentinance watch`` command.
    """

    def __init__(self, tape: TradeTape, rest: FakeExchange | None = None) -> None:
        self.tape = tape
        self.rest = rest
        self.refuse = False
        self.connections = 0  # handshakes accepted
        self.subscriptions: list[list[str]] = []
        self.pushed = 0
        self._subs: dict[web.WebSocketResponse, set[str]] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-binance-ws")
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeBinanceWs:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake websocket server did not start")
        self.tape.sockets.append(self)
        return self

    def stop(self) -> None:
        """Shut the server down (idempotent): afterwards nothing listens on its port."""
        if not self._thread.is_alive():
            return
        if self in self.tape.sockets:
            self.tape.sockets.remove(self)
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def push(self, venue_id: str, row: tuple) -> None:
        """Send one trade to the sockets subscribed to its stream (waits until sent)."""
        msg = json.dumps(_agg_trade(venue_id, row))
        stream = f"{venue_id.lower()}@aggtrade"
        asyncio.run_coroutine_threadsafe(self._send(stream, msg), self._loop).result(10)

    def drop(self) -> None:
        """Close every open socket from the server side, as a venue restart would."""
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(10)

    def subscribed(self) -> int:
        """Open sockets with at least one subscription."""
        return sum(1 for s in list(self._subs.values()) if s)

    # ------------------------------------------------------------------ server side

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        await self._close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _close_all(self) -> None:
        for ws in list(self._subs):
            await ws.close(code=1001, message=b"going away")
            self._subs.pop(ws, None)  # gone now, not when its handler notices

    async def _send(self, stream: str, msg: str) -> None:
        for ws, streams in list(self._subs.items()):
            if stream in streams and not ws.closed:
                try:
                    await ws.send_str(msg)
                    self.pushed += 1
                except ConnectionError:
                    pass

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.refuse:
            return web.Response(status=503, text="unavailable")
        if request.headers.get("Upgrade", "").lower() != "websocket" and self.rest is not None:
            status, body = self.rest.route(request.path, dict(request.query), empty=False)
            return web.json_response(body, status=status)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self._subs[ws] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                req = json.loads(msg.data)
                if req.get("method") == "SUBSCRIBE":
                    params = [p.lower() for p in req.get("params", [])]
                    self.subscriptions.append(params)
                    await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))
                    self._subs[ws].update(params)
        finally:
            self._subs.pop(ws, None)
        return ws


@contextmanager
def fake_binance_ws() -> Iterator[tuple[TradeTape, TapeBinance, FakeBinanceWs]]:
    """The tape, its REST fake and its websocket fake (which also answers REST on its own
    port, at ``http_url``), started; stopped on exit."""
    tape = TradeTape()
    rest = TapeBinance(tape).start()
    ws = FakeBinanceWs(tape, rest).start()
    try:
        yield tape, rest, ws
    finally:
        ws.stop()
        rest.stop()


def wait_until(cond, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail the test (not a timing assertion: a generous bound)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


BTC = LISTINGS["binance"]["BTC/USDT"]
ETH = LISTINGS["binance"]["ETH/USDT"]
