"""Exchanges through ccxt: paged history with rate limits, timeouts, retries and isolation.

Plain Python (no Dagster). What the live source needs from an exchange:

* :func:`make_exchange` - a ccxt client with the rate limiter on, a timeout on every call,
  only spot markets loaded, and optionally every API URL re-pointed at another host
  (``SENTINANCE_EXCHANGE_URL_<ID>``: scheme, host and port replaced, paths kept).
* :func:`fetch_candles` / :func:`fetch_trades` - page through ``[start, end)`` with ``since``
  within the exchange's per-request limit (Binance 1000 candles, Coinbase 300, Kraken 720),
  each call wrapped in :func:`call_with_retries` (exponential backoff on network errors, rate
  limits, outages and malformed answers; other errors fail at once).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt

MINUTE_MS = 60_000
T = TypeVar("T")

# Transient: worth another try after a pause. NetworkError covers RequestTimeout,
# RateLimitExceeded / DDoSProtection, ExchangeNotAvailable / OnMaintenance.
RETRYABLE: tuple[type[BaseException], ...] = (ccxt.NetworkError, ccxt.BadResponse)


@dataclass(frozen=True)
class ExchangeProfile:
    """How an exchange pages: its per-request limits and the shape of its history endpoints."""

    ohlcv_limit: int = 500
    trades_limit: int = 500
    # Trades are asked for in windows of this many ms (Binance aggTrades allows <= 1 h).
    trades_window_ms: int | None = None
    # The endpoint honours ccxt's ``until`` param (Kraken's does not).
    sends_until: bool = False
    # A full trades page holds the newest trades of the window (Coinbase), not the oldest.
    trades_newest_first: bool = False


PROFILES: dict[str, ExchangeProfile] = {
    "binance": ExchangeProfile(1000, 1000, 3_600_000, sends_until=True),
    "binanceus": ExchangeProfile(1000, 1000, 3_600_000, sends_until=True),
    "coinbase": ExchangeProfile(300, 1000, 3_600_000, sends_until=True, trades_newest_first=True),
    "kraken": ExchangeProfile(720, 1000, None, sends_until=False),
}


@dataclass(frozen=True)
class FetchPolicy:
    timeout_ms: int = 15_000
    retries: int = 4  # retries after the first attempt
    backoff_s: float = 1.0  # first pause; doubles each retry
    max_backoff_s: float = 30.0
    rate_limit_ms: int | None = None  # override ccxt's per-exchange pacing (tests use ~1 ms)
    page_limit: int | None = None  # cap every page (tests use tiny pages)


def profile_for(exchange_id: str, policy: FetchPolicy) -> ExchangeProfile:
    prof = PROFILES.get(exchange_id, ExchangeProfile())
    if policy.page_limit:
        prof = replace(
            prof,
            ohlcv_limit=min(prof.ohlcv_limit, policy.page_limit),
            trades_limit=min(prof.trades_limit, policy.page_limit),
        )
    return prof


def override_urls(urls: Any, base_url: str) -> Any:
    """Every URL in ccxt's (nested) ``urls['api']`` with scheme/host/port from ``base_url``."""
    target = urlsplit(base_url)
    if isinstance(urls, dict):
        return {k: override_urls(v, base_url) for k, v in urls.items()}
    if isinstance(urls, list):
        return [override_urls(v, base_url) for v in urls]
    if isinstance(urls, str) and urls.startswith(("http://", "https://", "ws://", "wss://")):
        parts = urlsplit(urls)
        return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))
    return urls


def make_exchange(exchange_id: str, policy: FetchPolicy, url: str | None = None) -> ccxt.Exchange:
    if not hasattr(ccxt, exchange_id):
        raise ValueError(f"{exchange_id!r} is not a ccxt exchange id")
    ex: ccxt.Exchange = getattr(ccxt, exchange_id)(
        {"enableRateLimit": True, "timeout": policy.timeout_ms}
    )
    if exchange_id.startswith("binance"):
        ex.options["fetchMarkets"] = {"types": ["spot"]}  # not the futures endpoints
        ex.options["fetchMargins"] = False
    # Market data needs markets only; the currencies endpoints are private or extra calls.
    ex.has["fetchCurrencies"] = False
    _classify_http_status_first(ex)
    if policy.rate_limit_ms is not None:
        ex.rateLimit = policy.rate_limit_ms
    if url:
        ex.urls["api"] = override_urls(ex.urls["api"], url)
    return ex


def _classify_http_status_first(ex: ccxt.Exchange) -> None:
    """Map HTTP 429 and 5xx to transient errors before the venue's JSON error handler runs.

    Some venues' handlers (Coinbase, Kraken) turn any JSON body with an ``error`` field into a
    plain ``ExchangeError``, which would make a 429 or a 503 look permanent; and a body that is
    not JSON at all must be an error (retried), not silently an empty page.
    """
    venue_handler = ex.handle_errors

    def handle_errors(code: int, reason: str, url: str, method: str, *rest: Any) -> Any:
        if code == 429:
            raise ccxt.RateLimitExceeded(f"{ex.id} {method} {url} 429 {reason}")
        if code is not None and 500 <= code <= 599:
            raise ccxt.ExchangeNotAvailable(f"{ex.id} {method} {url} {code} {reason}")
        headers, body, parsed = (list(rest) + [None, None, None])[:3]
        if code is not None and 200 <= code < 300 and body and parsed is None:
            # ccxt would hand the raw text to the parser, which reads it as an empty page
            raise ccxt.BadResponse(f"{ex.id} {method} {url}: malformed JSON {body[:80]!r}")
        return venue_handler(code, reason, url, method, *rest)

    ex.handle_errors = handle_errors  # type: ignore[method-assign]


def call_with_retries(
    fn: Callable[..., T],
    *args: Any,
    policy: FetchPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException], None] | None = None,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)``, retried with exponential backoff on transient errors."""
    for attempt in range(policy.retries + 1):
        try:
            return fn(*args, **kwargs)
        except RETRYABLE as exc:
            if attempt >= policy.retries:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            sleep(min(policy.max_backoff_s, policy.backoff_s * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def fetch_candles(
    ex: ccxt.Exchange,
    symbol: str,
    start_ms: int,
    end_ms: int,
    policy: FetchPolicy,
    *,
    timeframe: str = "1m",
    sleep: Callable[[float], None] = time.sleep,
) -> list[list[float]]:
    """Candles with open time in ``[start_ms, end_ms)``, ascending, unique by open time."""
    prof = profile_for(ex.id, policy)
    tf_ms = ex.parse_timeframe(timeframe) * 1000
    limit = prof.ohlcv_limit
    out: dict[int, list[float]] = {}
    since = start_ms
    while since < end_ms:
        page_end = min(end_ms, since + limit * tf_ms)
        params = {"until": page_end - 1} if prof.sends_until else {}
        rows = call_with_retries(
            ex.fetch_ohlcv, symbol, timeframe, since, limit, params, policy=policy, sleep=sleep
        )
        fresh = [r for r in rows if since <= r[0] < end_ms and r[0] not in out]
        for r in fresh:
            out[int(r[0])] = r
        if prof.sends_until:
            since = page_end  # windowed: an empty window is a gap, not the end
        else:
            if not fresh:
                break  # nothing newer than ``since``
            since = int(max(r[0] for r in fresh)) + tf_ms
    return [out[k] for k in sorted(out)]


def trade_key(t: dict) -> str:
    """The exchange's trade id, or a stable synthetic one when the venue gives none."""
    if t.get("id") not in (None, ""):
        return str(t["id"])
    raw = f"{t.get('timestamp')}|{t.get('price')}|{t.get('amount')}|{t.get('side')}"
    return "h" + hashlib.sha1(raw.encode()).hexdigest()[:16]


def fetch_trades(
    ex: ccxt.Exchange,
    symbol: str,
    start_ms: int,
    end_ms: int,
    policy: FetchPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_pages: int = 100_000,
) -> list[dict]:
    """Trades with timestamp in ``[start_ms, end_ms)``, ascending, unique by trade id."""
    prof = profile_for(ex.id, policy)
    limit = prof.trades_limit
    out: dict[str, dict] = {}
    pages = 0

    def page(since: int, until: int | None) -> list[dict]:
        nonlocal pages
        pages += 1
        if pages > max_pages:
            raise ccxt.ExchangeError(f"{ex.id} {symbol}: more than {max_pages} trade pages")
        params = {"until": until} if (until is not None and prof.sends_until) else {}
        return call_with_retries(
            ex.fetch_trades, symbol, since, limit, params, policy=policy, sleep=sleep
        )

    def keep(rows: list[dict]) -> int:
        added = 0
        for t in rows:
            ts = t.get("timestamp")
            if ts is None or not start_ms <= ts < end_ms:
                continue
            key = trade_key(t)
            if key not in out:
                out[key] = t
                added += 1
        return added

    since = start_ms
    while since < end_ms:
        win_end = min(end_ms, since + prof.trades_window_ms) if prof.trades_window_ms else end_ms
        if prof.trades_newest_first:
            hi = win_end - 1
            while True:  # walk back through the window, newest page first
                rows = page(since, hi)
                added = keep(rows)
                if len(rows) < limit or not added:
                    break
                hi = int(min(t["timestamp"] for t in rows))  # inclusive; ids dedupe
            since = win_end
            continue
        rows = page(since, win_end - 1)
        added = keep(rows)
        last = max((t["timestamp"] for t in rows if t.get("timestamp") is not None), default=None)
        if len(rows) >= limit and last is not None:
            # a full page: continue from its last trade (inclusive; ids dedupe), and make
            # progress even when one millisecond holds more than a page of trades
            # (Kraken reads ``since`` in whole seconds, so it must step by a second)
            step = 1 if prof.sends_until else 1000
            since = int(last) if added and last > since else since + step
        elif prof.trades_window_ms:
            since = win_end
        else:
            break  # an un-windowed venue answered a short page: caught up
    return sorted(out.values(), key=lambda t: (t["timestamp"], trade_key(t)))
