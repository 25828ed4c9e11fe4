"""``GET /v1/alerts/stream``: new alerts as server-sent events, resumable with Last-Event-ID.

The source is the app's: ``alerts.alert_feed`` on the published read side, whose lake view
sees every file the watch loop writes the moment it is written. One :class:`AlertHub` per
application polls it every :data:`POLL_S` seconds while anyone listens and fans new alerts out
to every subscriber's queue, so a hundred listeners cost one query, not a hundred.

Order and ids. Alerts stream in detection order; each event's ``id`` is its position,
``<detected_at in µs>-<alert_id>``. A client that reconnects with ``Last-Event-ID`` (browsers'
``EventSource`` do it by themselves; or ``?last_event_id=``) first gets every alert after that
position (up to :data:`BACKLOG_PAGES` x :data:`BACKLOG_MAX`; past that an ``event: gap``
says to page through ``GET /v1/alerts``), then the live feed.

Why a look-back (:data:`GRACE_S`): an alert becomes visible when its file is written, a moment
after its ``detected_at`` (the batch detection asset writes its files after the whole run), so a
poll asks for everything detected in the last ``GRACE_S`` seconds before the newest position it
has seen and drops the ``alert_id``\\ s it already sent. The feed keeps one row per ``alert_id``
(the first detection), so a later re-detection of the same event is never sent twice.

Keep-alive: a comment line every :data:`HEARTBEAT_S` seconds, so proxies keep the connection
open and a vanished client is noticed. A subscriber too slow to drain :data:`QUEUE_MAX` alerts
is disconnected; it resumes from its Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool

from sentinance_assets.api import queries
from sentinance_assets.api.models import Alert
from sentinance_assets.api.readside import DataUnavailable, ReadSide

log = logging.getLogger("sentinance.api")

POLL_S = 0.25
GRACE_S = 120.0
HEARTBEAT_S = 15.0
BACKLOG_MAX = 1000
BACKLOG_PAGES = 10
QUEUE_MAX = 10_000
RETRY_MS = 2000


def sse(event: str, data: str, event_id: str | None = None) -> str:
    """One server-sent event (``data`` is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def alert_event(row: dict[str, Any]) -> str:
    payload = Alert.model_validate(row).model_dump_json()
    return sse("alert", payload, queries.event_id(row["detected_at"], row["alert_id"]))


class _Closed(Exception):
    """A subscriber's queue overflowed: it must reconnect."""


class AlertHub:
    """Polls the alert feed while there are subscribers; broadcasts new alerts to them."""

    def __init__(self, rs: ReadSide, poll_s: float = POLL_S) -> None:
        self.rs = rs
        self.poll_s = poll_s
        self.subscribers: set[asyncio.Queue[list[dict[str, Any]] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._sent: dict[str, datetime] = {}  # alert_id -> detected_at, within the look-back
        self._newest: datetime | None = None
        self._primed = False
        self._starting = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False

    # ------------------------------------------------------------------ polling
    def _fetch(self) -> list[dict[str, Any]]:
        since = self._newest - timedelta(seconds=GRACE_S) if self._newest else None
        return self.rs.rows(queries.STREAM_SINCE_SQL, [since, since])

    def _prime(self) -> None:
        """Remember what is already visible: the stream sends only what appears later."""
        latest = self.rs.one(queries.LATEST_DETECTION_SQL)
        self._newest = latest["latest"] if latest else None
        if self._newest is not None:
            for row in self._fetch():
                self._sent[row["alert_id"]] = row["detected_at"]
        self._primed = True

    def _new_rows(self) -> list[dict[str, Any]]:
        if not self._primed:
            self._prime()
            return []
        fresh = [r for r in self._fetch() if r["alert_id"] not in self._sent]
        for r in fresh:
            self._sent[r["alert_id"]] = r["detected_at"]
            if self._newest is None or r["detected_at"] > self._newest:
                self._newest = r["detected_at"]
        if self._newest is not None:
            horizon = self._newest - timedelta(seconds=GRACE_S)
            self._sent = {k: v for k, v in self._sent.items() if v >= horizon}
        return fresh

    async def _run(self) -> None:
        while self.subscribers:
            try:
                fresh = await run_in_threadpool(self._new_rows)
            except DataUnavailable as exc:
                log.info("alert stream: feed unavailable (%s); retrying", exc)
                fresh = []
            except Exception:  # noqa: BLE001 - the poller must outlive one bad poll
                log.exception("alert stream: poll failed")
                fresh = []
            if fresh:
                for q in list(self.subscribers):
                    try:
                        q.put_nowait(fresh)
                    except asyncio.QueueFull:
                        self.subscribers.discard(q)
                        with contextlib.suppress(asyncio.QueueFull):
                            q.put_nowait(None)
            await asyncio.sleep(self.poll_s)
        # nobody listens: forget the position, the next subscriber starts from its own "now"
        self._task = None
        self._primed = False
        self._sent.clear()

    # ------------------------------------------------------------------ subscribers
    async def subscribe(self) -> asyncio.Queue[list[dict[str, Any]] | None]:
        q: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._loop = asyncio.get_running_loop()
        if self.closing:
            q.put_nowait(None)
            return q
        async with self._starting:
            if self._task is None:
                await run_in_threadpool(self._prime)  # no poll runs now: no race on the state
                self.subscribers.add(q)
                self._task = asyncio.create_task(self._run())
            else:
                self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[list[dict[str, Any]] | None]) -> None:
        self.subscribers.discard(q)

    def end_streams_threadsafe(self) -> None:
        """End every open stream soon (from a signal handler or another thread): the server
        is stopping, and open streams would hold its graceful shutdown until its timeout.
        Clients reconnect elsewhere (or later) with their Last-Event-ID."""
        self.closing = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._end_all)

    def _end_all(self) -> None:
        for q in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        self.subscribers.clear()

    async def close(self) -> None:
        for q in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


async def events(
    hub: AlertHub,
    flt: queries.AlertFilter,
    after: tuple[datetime, str] | None,
    is_disconnected: Any,
    heartbeat_s: float = HEARTBEAT_S,
) -> AsyncIterator[str]:
    """The event stream of one client: the backlog after ``after``, then live alerts."""
    q = await hub.subscribe()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        sent: set[str] = set()
        position = after
        for _ in range(BACKLOG_PAGES if after is not None else 0):
            assert position is not None
            t, alert_id = position
            backlog = await run_in_threadpool(
                hub.rs.rows, queries.STREAM_AFTER_SQL, [t, t, alert_id, BACKLOG_MAX]
            )
            for row in backlog:
                sent.add(row["alert_id"])
                if flt.accepts(row):
                    yield alert_event(row)
            if len(backlog) < BACKLOG_MAX:
                break
            position = (backlog[-1]["detected_at"], backlog[-1]["alert_id"])
        else:
            if after is not None:
                gap = {"message": "backlog too long: page through GET /v1/alerts for the rest"}
                yield sse("gap", json.dumps(gap))
        while True:
            try:
                batch = await asyncio.wait_for(q.get(), timeout=heartbeat_s)
            except TimeoutError:
                if await is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if batch is None:
                closed = {"message": "stream closed; reconnect with Last-Event-ID to resume"}
                yield sse("error", json.dumps(closed))
                return
            for row in batch:
                if row["alert_id"] in sent:
                    continue
                if flt.accepts(row):
                    yield alert_event(row)
    finally:
        hub.unsubscribe(q)
