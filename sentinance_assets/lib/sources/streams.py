"""Live trades over ccxt.pro websockets, with REST backfill and per-venue fallback to polling.

Plain Python (no Dagster). :class:`StreamFeed` is a watch-loop feed like ``polling.LiveFeed``
(both :class:`~sentinance_assets.lib.sources.base.TradeFeed`: ``start``, ``end``, ``horizon()``,
``between(lo, hi)`` in the ``raw.trades`` layout, ``status()``, ``close()``); it differs in where
the trades come from:

* one background thread runs an asyncio loop with one ccxt.pro client per venue
  (``watch_trades_for_symbols``, or one ``watch_trades`` per symbol where a venue lacks it).
  Every trade the client has received is copied into a buffer keyed by
  ``(exchange, symbol, trade id)``, so a trade is kept once however often it is seen;
* REST (``LiveSource.trades_between``, the poller's own code path) covers what the socket
  cannot prove it has: for each market, everything before the first trade the current
  connection delivered. So after a connect or reconnect the gap between the checkpoint and the
  first websocket trade is backfilled, and the overlap is deduplicated by trade id. A venue
  polls entirely while it is connecting, when ccxt.pro has no websocket for it
  (``has['watchTrades']``), or for ``retry_ws_after_s`` after ``max_failures`` connections in
  a row failed without delivering a trade (reported in :meth:`StreamFeed.status` and logged;
  then the socket is tried again) - it never crashes the loop;
* the horizon (how far the watch loop may advance) is ``ws_lag`` behind the last frame the
  socket received (trades, or pongs to ccxt's keepalive pings every ``ping_interval``), and
  ``lag`` behind the clock for polling venues. A socket that dies silently therefore holds
  the stream back instead of letting it run past trades that never arrived; ccxt's keepalive
  notices within about two ping intervals, the feed reconnects and REST fills the hole.

Trade ids: Binance's REST history is aggregated trades, so the Binance sockets subscribe to
the ``aggTrade`` stream (:data:`WS_PARAMS`) and both transports report the same ids and
sizes. A websocket trade that arrives after its time window was handed to the loop (more than
``ws_lag`` late, e.g. the local clock ahead of the venue's) cannot be processed any more: it is
counted in :attr:`StreamFeed.late` and shown in the status.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.pro as ccxtpro
import polars as pl

from sentinance_assets.lib.markets import Market
from sentinance_assets.lib.schemas import RAW_TRADES
from sentinance_assets.lib.sources import exchanges as exm
from sentinance_assets.lib.sources.base import MarketKey
from sentinance_assets.lib.sources.live import LiveSource, trade_row
from sentinance_assets.settings import WATCH_TRANSPORTS, Settings, default_of

log = logging.getLogger(__name__)

TRANSPORTS = WATCH_TRANSPORTS  # auto | ws | poll, defined with the setting
# Subscription params per venue so the socket reports the trades REST history reports.
WS_PARAMS: dict[str, dict[str, str]] = {
    "binance": {"name": "aggTrade"},
    "binanceus": {"name": "aggTrade"},
}


def ws_support(exchange_id: str) -> bool:
    """Whether ccxt.pro can stream public trades from this venue."""
    cls = getattr(ccxtpro, exchange_id, None)
    return cls is not None and bool(cls().has.get("watchTrades"))


def ws_url_for(rest_url: str) -> str:
    """The websocket base for a re-pointed REST base: same host, ``ws``/``wss`` scheme."""
    parts = urlsplit(rest_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


@dataclass
class VenueState:
    """What one venue's transport is doing; read by the watch thread under the feed lock."""

    mode: str = "connecting"  # connecting | live | poll
    reason: str = ""
    heard_ms: int = 0  # wall time of the last frame received on the live socket
    connections: int = 0  # websocket sessions started
    failures: int = 0  # sessions in a row that ended without delivering a trade
    last_error: str = ""
    ws_from: dict[str, int] = field(default_factory=dict)  # symbol -> first ws trade (ms)
    received: int = 0  # trades taken from the socket


class StreamFeed:
    """Live trades over websockets where available, REST polling otherwise (see module doc)."""

    def __init__(
        self,
        source: LiveSource,
        *,
        transport: str = default_of("watch_transport"),
        start: datetime | None = None,
        lag: timedelta = timedelta(seconds=3),
        ws_lag: timedelta = timedelta(milliseconds=500),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        ws_urls: dict[str, str] | None = None,
        max_failures: int = 5,
        retry_ws_after_s: float = 300.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        ping_interval_s: float = 2.0,
        connect_timeout_s: float | None = None,
        scan_interval_s: float = 0.05,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        self.source = source
        self.transport = transport
        self.lag = lag
        self.ws_lag = ws_lag
        self.now = now
        self.start = start or (now() - lag)
        self.end: datetime | None = None  # runs until stopped
        self.ws_urls = dict(ws_urls or {})
        self.max_failures = max_failures
        self.retry_ws_after_s = retry_ws_after_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.ping_interval_s = ping_interval_s
        self.connect_timeout_s = connect_timeout_s or source.policy.timeout_ms / 1000
        self.scan_interval_s = scan_interval_s
        self.late = 0
        self.states: dict[str, VenueState] = {}
        self._markets: dict[str, list[Market]] = {}
        self._buffer: dict[tuple[str, str, str], dict] = {}
        self._seen: dict[tuple[str, str, str], int] = {}
        self._seen_floor = 0
        self._served_ms = 0  # every window below this was handed to the loop
        self._lock = threading.Lock()
        self._opened = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> StreamFeed:
        kwargs.setdefault("transport", settings.watch_transport)
        return cls(LiveSource.from_settings(settings), **kwargs)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> StreamFeed:
        """Resolve each venue's markets (REST) and start the websocket thread; idempotent.

        Raises ``ValueError`` under ``transport="ws"`` when a venue has no websocket in
        ccxt.pro: that is a configuration error, unlike a socket that fails at run time.
        """
        if self._opened:
            return self
        self._opened = True
        streamed: list[str] = []
        for ex_id in self.source.exchange_ids:
            state = self.states[ex_id] = VenueState()
            if self.transport == "poll":
                state.mode, state.reason = "poll", "transport poll"
                continue
            if not ws_support(ex_id):
                if self.transport == "ws":
                    raise ValueError(f"{ex_id}: ccxt.pro has no websocket trades for this venue")
                state.mode, state.reason = "poll", "no websocket in ccxt.pro"
                log.warning("%s: no websocket trades in ccxt.pro, polling over REST", ex_id)
                continue
            try:
                self._markets[ex_id] = self.source.markets(ex_id)
            except Exception as exc:  # noqa: BLE001 - polling records the failure per market
                state.mode, state.reason = "poll", f"markets: {type(exc).__name__}"
                continue
            if not self._markets[ex_id]:
                state.mode, state.reason = "poll", "no listed market"
                continue
            streamed.append(ex_id)
        if streamed:
            self._thread = threading.Thread(
                target=self._run, args=(streamed,), name="sentinance-streams", daemon=True
            )
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop the websocket thread and close every client (bounded by ``timeout``)."""
        self._stopping = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed in between
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> StreamFeed:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ the feed interface

    def horizon(self) -> datetime:
        """How far the loop may read: the earliest of the venues' own limits.

        A venue that polls or is connecting: ``lag`` behind the clock (trades must have landed
        in its REST history). A live socket: ``ws_lag`` behind its last received frame, once
        every market of the venue has had its first websocket trade at least ``lag`` ago (until
        then part of each window still comes from REST, so the REST limit applies).
        """
        self.open()
        now = self.now()
        settle_ms = int((now - self.lag).timestamp() * 1000)
        limits = []
        with self._lock:
            for ex_id, s in self.states.items():
                markets = self._markets.get(ex_id, [])
                settled = s.mode == "live" and all(
                    s.ws_from.get(m.symbol, settle_ms + 1) <= settle_ms for m in markets
                )
                if settled:
                    heard = datetime.fromtimestamp(s.heard_ms / 1000, UTC)
                    limits.append(min(now, heard) - self.ws_lag)
                else:
                    limits.append(now - self.lag)
        return min(limits, default=now - self.lag)

    def between(self, lo: datetime, hi: datetime) -> pl.DataFrame:
        """Trades in ``[lo, hi)``: the socket's from its first trade of the current connection
        on, REST for the rest of the window, deduplicated by trade id."""
        self.open()
        lo_ms, hi_ms = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
        rest_until: dict[MarketKey, int] = {}
        with self._lock:
            self._prune(lo_ms)
            ws_rows = [r for r in self._buffer.values() if lo_ms <= r["ts"] < hi_ms]
            for ex_id in self.source.exchange_ids:
                state = self.states.get(ex_id)
                for m in self._markets.get(ex_id, []):
                    first = state.ws_from.get(m.symbol) if state and state.mode == "live" else None
                    rest_until[(ex_id, m.symbol)] = (
                        hi_ms if first is None else min(hi_ms, max(lo_ms, first + 1))
                    )
            self._served_ms = max(self._served_ms, hi_ms)
        # both parts through the same normalisation and layout, then one row per trade id
        trades = RAW_TRADES.conform(self._rest(lo_ms, hi_ms, rest_until))
        if ws_rows:
            pushed = RAW_TRADES.conform(self.source._frame(ws_rows, RAW_TRADES))
            trades = pl.concat([trades, pushed])
        return trades.unique(
            subset=["exchange", "symbol", "trade_id"], keep="first", maintain_order=True
        ).sort("ts", "exchange", "symbol", "trade_id")

    def status(self) -> str:
        """One short line per venue for the progress display (``binance ws``, ``kraken poll``)."""
        with self._lock:
            parts = []
            for ex_id, s in self.states.items():
                word = {"live": "ws", "connecting": "ws connecting", "poll": "poll"}[s.mode]
                parts.append(f"{ex_id} {word}")
            late = f", {self.late} late" if self.late else ""
        return ", ".join(parts) + late

    def report(self) -> dict[str, dict[str, object]]:
        """Per venue: mode, why it polls, connections, trades received over the socket."""
        with self._lock:
            return {
                ex_id: {
                    "mode": s.mode,
                    "reason": s.reason,
                    "connections": s.connections,
                    "received": s.received,
                    "last_error": s.last_error,
                }
                for ex_id, s in self.states.items()
            }

    # ------------------------------------------------------------------ REST part

    def _rest(self, lo_ms: int, hi_ms: int, rest_until: dict[MarketKey, int]) -> pl.DataFrame:
        """Polled trades of the markets (and whole venues) the sockets do not cover."""
        polled = [ex_id for ex_id in self.source.exchange_ids if not self._markets.get(ex_id)]
        need = {k: v for k, v in rest_until.items() if v > lo_ms}
        if not need and not polled:
            return RAW_TRADES.empty()
        upto = max([hi_ms if polled else lo_ms, *need.values()])
        # ``since`` at ``upto`` skips a market: LiveSource only asks ``[since, hi)``.
        since = {k: (lo_ms if k in need else upto) for k in rest_until}
        got = self.source.trades_between(lo_ms, upto, since)
        if not got.height or not need:
            return got
        bounds = pl.DataFrame(
            {
                "exchange": [k[0] for k in need],
                "symbol": [k[1] for k in need],
                "_until": [v for v in need.values()],
            },
            schema={"exchange": pl.String, "symbol": pl.String, "_until": pl.Int64},
        )
        return (
            got.join(bounds, on=["exchange", "symbol"], how="left")
            .filter(
                pl.col("_until").is_null()  # a venue that polls entirely
                | (pl.col("ts").dt.epoch("ms") < pl.col("_until"))
            )
            .drop("_until")
        )

    def _prune(self, lo_ms: int) -> None:
        """Forget buffered trades the loop has passed; remember ids a while longer so that a
        trade ccxt still holds in its cache is not taken for a late one (caller holds lock)."""
        self._buffer = {k: r for k, r in self._buffer.items() if r["ts"] >= lo_ms}
        floor = lo_ms - 600_000
        if floor > self._seen_floor + 60_000:
            self._seen = {k: ts for k, ts in self._seen.items() if ts >= floor}
            self._seen_floor = floor

    # ------------------------------------------------------------------ websocket thread

    def _run(self, venues: list[str]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(venues))
        except Exception:  # noqa: BLE001 - the loop thread must never take the process down
            log.exception("websocket thread failed; every venue polls from now on")
        finally:
            if not self._stopping:  # crashed, not closed: the watch loop keeps going on REST
                with self._lock:
                    for state in self.states.values():
                        if state.mode != "poll":
                            state.mode, state.reason = "poll", "websocket thread failed"
            loop.close()

    async def _main(self, venues: list[str]) -> None:
        self._stop_event = asyncio.Event()
        if self._stopping:
            return
        clients: dict[str, Any] = {}
        tasks = [asyncio.create_task(self._venue(v, clients)) for v in venues]
        tasks.append(asyncio.create_task(self._scan_loop(clients)))
        await self._stop_event.wait()
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=self.connect_timeout_s + 5)

    def _client(self, ex_id: str) -> Any:
        """A ccxt.pro client re-using the markets REST loaded, pointed at overridden URLs."""
        policy = self.source.policy
        ex = getattr(ccxtpro, ex_id)({"enableRateLimit": True, "timeout": policy.timeout_ms})
        rest = self.source.client(ex_id)
        ex.set_markets(rest.markets, rest.currencies)
        ex.options["tradesLimit"] = 10_000
        ex.streaming = {
            **ex.streaming,
            "keepAlive": int(self.ping_interval_s * 1000),
            "maxPingPongMisses": 2,
            "connectionTimeout": int(self.connect_timeout_s * 1000),
        }
        # REST and websocket URLs are re-pointed separately: with only a REST override the
        # socket goes to the same host (``ws_url_for``), never to the real venue.
        rest_url = self.source.exchange_urls.get(ex_id)
        ws_url = self.ws_urls.get(ex_id) or (ws_url_for(rest_url) if rest_url else None)
        ws_orig = ex.urls["api"].get("ws")
        if rest_url:
            ex.urls["api"] = exm.override_urls(ex.urls["api"], rest_url)
        if ws_url and ws_orig is not None:
            ex.urls["api"]["ws"] = exm.override_urls(ws_orig, ws_url)
        return ex

    async def _venue(self, ex_id: str, clients: dict[str, Any]) -> None:
        """Keep one venue's socket up; after ``max_failures`` barren sessions, poll it for
        ``retry_ws_after_s``, then try the socket again (an outage of the venue's websocket
        should not pin a long-running watch to polling for good)."""
        markets = self._markets[ex_id]
        symbols = [m.symbol for m in markets]
        state = self.states[ex_id]
        while not self._stopping:
            ex = self._client(ex_id)
            clients[ex_id] = ex
            with self._lock:
                state.connections += 1
                state.mode = "connecting"
                received_before = state.received
            error: BaseException | None = None
            try:
                await self._session(ex, symbols, WS_PARAMS.get(ex_id, {}))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any socket failure: reconnect or poll
                error = exc
            finally:
                clients.pop(ex_id, None)
                self._scan(ex_id, ex)  # keep what arrived before the socket went down
                with self._lock:
                    if state.mode != "poll" and not self._stopping:
                        state.mode = "connecting"
                    state.ws_from.clear()
                await _close_quietly(ex, self.connect_timeout_s)
            with self._lock:
                delivered = state.received > received_before
                state.failures = 0 if delivered else state.failures + 1
                state.last_error = _error(error) if error else ""
                give_up = state.failures >= self.max_failures
                if give_up:
                    state.mode = "poll"
                    state.reason = f"websocket failed {state.failures}x: {state.last_error}"
            if give_up:
                log.warning(
                    "%s: %s; polling over REST, next websocket attempt in %.0f s",
                    ex_id,
                    state.reason,
                    self.retry_ws_after_s,
                )
                await self._sleep_unless_stopping(self.retry_ws_after_s)
                with self._lock:
                    state.failures = 0
                continue
            log.info("%s: websocket closed (%s); reconnecting", ex_id, state.last_error)
            pause = min(self.max_backoff_s, self.backoff_s * 2 ** max(state.failures - 1, 0))
            await asyncio.sleep(pause)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    async def _session(self, ex: Any, symbols: list[str], params: dict[str, str]) -> None:
        """Watch until the socket fails (ccxt raises) or the task is cancelled."""
        if ex.has.get("watchTradesForSymbols"):
            while True:
                await ex.watch_trades_for_symbols(symbols, params=dict(params))
        else:

            async def one(symbol: str) -> None:
                while True:
                    await ex.watch_trades(symbol, params=dict(params))

            tasks = [asyncio.create_task(one(s)) for s in symbols]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    t.result()
            finally:
                for t in tasks:
                    t.cancel()

    async def _scan_loop(self, clients: dict[str, Any]) -> None:
        """Copy new trades out of the ccxt caches and refresh the sockets' state, often.

        ccxt resolves a watch call with the first message only; trades that arrive while no
        call is waiting stay in its cache, so the cache (not the return value) is the source.
        """
        while True:
            for ex_id, ex in list(clients.items()):
                self._scan(ex_id, ex)
            await asyncio.sleep(self.scan_interval_s)

    def _scan(self, ex_id: str, ex: Any) -> None:
        state = self.states[ex_id]
        heard = 0
        alive = False
        for client in list((getattr(ex, "clients", None) or {}).values()):
            if client.isConnected and not client.closed() and client.error is None:
                alive = True
                heard = max(heard, client.last_message_at or 0, client.connectionEstablished or 0)
        by_symbol = {m.symbol: m for m in self._markets[ex_id]}
        with self._lock:
            for symbol, m in by_symbol.items():
                cache = (getattr(ex, "trades", None) or {}).get(symbol)
                if cache:
                    self._take(ex_id, m, state, cache)
            if state.mode != "poll":
                state.mode = "live" if alive else "connecting"
                state.heard_ms = heard if alive else 0

    def _take(self, ex_id: str, m: Market, state: VenueState, cache: Any) -> None:
        """Buffer the trades of one ccxt cache not seen yet, newest first until a seen one."""
        fresh: list[dict] = []
        overlap = False
        for t in reversed(cache):
            if t.get("timestamp") is None:
                continue
            key = (ex_id, m.symbol, exm.trade_key(t))
            if key in self._seen:
                overlap = True
                break
            fresh.append(t)
        if not fresh:
            return
        first = state.ws_from.get(m.symbol)
        if first is None or (not overlap and len(cache) >= (cache.max_size or 2**62)):
            # first trade of this connection - or the cache overflowed: REST covers up to it
            state.ws_from[m.symbol] = int(fresh[-1]["timestamp"])
        # The first batch of a connection may hold a snapshot of recent trades (Kraken and
        # Coinbase send one on subscribe): old, but not late. Later batches should be new.
        count_late = first is not None
        for t in reversed(fresh):
            row = trade_row(m, t)
            key = (ex_id, m.symbol, row["trade_id"])
            self._seen[key] = row["ts"]
            state.received += 1
            if row["ts"] < self._served_ms:
                if count_late and row["ts"] >= self._seen_floor:
                    self.late += 1
                continue
            self._buffer[key] = row


async def _close_quietly(ex: Any, timeout: float) -> None:
    try:
        await asyncio.wait_for(ex.close(), timeout)
    except Exception as exc:  # noqa: BLE001 - closing a broken client must not fail the loop
        log.debug("%s: close failed: %s", ex.id, exc)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


__all__ = ["TRANSPORTS", "WS_PARAMS", "StreamFeed", "ws_support"]
