"""Limits that keep one client from starving the others on a two-core machine.

* :class:`RateLimit`: a token bucket per client address — ``SENTINANCE_API_RATE_LIMIT``
  requests per minute, refilled continuously, bursts up to the same number. Every answer
  carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds
  until the full allowance is back); a refused one is a 429 with ``Retry-After`` (seconds until
  the next request is allowed). Keyed by address, not by API key: a made-up key must not buy a
  fresh bucket, and one shared key must not pool every client into one. ``/health`` is exempt
  (liveness probes).
* :class:`BodyLimit`: requests whose body exceeds ``SENTINANCE_API_MAX_BODY_BYTES`` get a 413
  before the application reads them (by ``Content-Length``, or by counting a chunked body).

Both are plain ASGI middleware (not ``BaseHTTPMiddleware``) so they never buffer or break the
alert stream's long-lived response.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXEMPT_PATHS = frozenset({"/health"})
MAX_CLIENTS = 10_000


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class TokenBuckets:
    """Token buckets by client; thread-safe, bounded in memory."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> tuple[bool, float]:
        """Spend one token of ``client``'s bucket; returns (allowed, tokens left)."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > MAX_CLIENTS:
                self._prune(now)
            return allowed, tokens

    def _prune(self, now: float) -> None:
        """Forget the clients whose bucket has refilled: they are indistinguishable from new."""
        full = [
            c
            for c, (t, last) in self._buckets.items()
            if t + (now - last) * self.rate >= self.capacity
        ]
        for c in full:
            del self._buckets[c]

    def headers(self, tokens: float) -> dict[str, str]:
        reset = math.ceil((self.capacity - tokens) / self.rate) if self.rate else 0
        return {
            "X-RateLimit-Limit": str(int(self.capacity)),
            "X-RateLimit-Remaining": str(max(int(tokens), 0)),
            "X-RateLimit-Reset": str(max(reset, 0)),
        }

    def retry_after(self, tokens: float) -> int:
        return max(math.ceil((1.0 - tokens) / self.rate), 1)


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimit:
    """ASGI middleware: the token bucket of the request's client address."""

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        allowed, tokens = self.buckets.take(client_of(scope))
        headers = self.buckets.headers(tokens)
        if not allowed:
            retry = self.buckets.retry_after(tokens)
            response = error_response(
                429,
                "rate_limited",
                f"too many requests: at most {int(self.buckets.capacity)} a minute; "
                f"retry in {retry} s",
                {**headers, "Retry-After": str(retry)},
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: a 413 for bodies over ``max_bytes``; the body is read (at most
    ``max_bytes``) before the application runs, then handed to it unchanged."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> Any:
        return error_response(
            413, "body_too_large", f"request body over {self.max_bytes} bytes (the limit)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await error_response(400, "invalid_request", "invalid Content-Length")(
                    scope, receive, send
                )
                return
            if int(length) > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            if int(length) == 0:
                await self.app(scope, receive, send)
                return
        elif b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
