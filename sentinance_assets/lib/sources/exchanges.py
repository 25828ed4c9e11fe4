"""Exchanges through ccxt: paged history with rate limits, timeouts, retries and isolation.

Plain Python (no Dagster). What the live source needs from an exchange:

* :func:`make_exchange` - a ccxt client with the rate limiter on, a timeout on every call,
  only spot markets loaded, and optionally every API URL re-pointed at another host
  (``SENTINANCE_EXCHANGE_URL_<ID>``: scheme, host and port replaced, paths kept).
* :func:`fetch_candles` / :func:`fetch_trades` - page through ``[start, end)`` with ``since``
  within the exchange's per-request limit (Binance 1000 candles, Coinbase 300, Kraken 720),
  each call wrapped in :func:`call_with_retries` (exponential backoff on network errors, rate
  limits, outages and malformed answers; other errors fail at once).

Nothing a venue sends is dropped silently. ccxt parses a page row by row and then discards rows
it cannot time (``filter_by_since_limit`` keeps only ``timestamp >= since``), and one row whose
numbers it cannot do arithmetic on (``"NaN"``, ``"abc"``) raises for the whole page. So every
client gets tolerant per-row parsers (:func:`_salvage_rows`): a row ccxt cannot parse, or whose
time is unusable (missing, before 2009, more than ``FUTURE_SKEW`` ahead: it belongs to no fetch
window), is set aside as a *reject* (``{"raw", "parsed", "error"}``) instead of failing the page
or vanishing; the fetchers hand rejects to the caller (``rejects=``), and the live source sends
them through the contracts, which quarantine them. Rows repeated across overlapping pages
(paging re-reads the boundary) are one row; every other copy - a second, different version of a
trade id or candle, or a repeat inside one answer - is kept for the contracts to judge.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt

from sentinance_assets.lib.contracts import EARLIEST, FUTURE_SKEW
from sentinance_assets.settings import default_of

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
    # defaults: the SENTINANCE_HTTP_* settings' (LiveSource.from_settings passes the values)
    timeout_ms: int = round(default_of("http_timeout") * 1000)
    retries: int = default_of("http_retries")  # retries after the first attempt
    backoff_s: float = default_of("http_backoff")  # first pause; doubles each retry
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
    _salvage_rows(ex)
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

    ex.handle_errors = handle_errors


REJECTS = "sentinance_rejects"  # attribute of a client: rows set aside since the last drain
_EARLIEST_MS = int(EARLIEST.timestamp() * 1000)


def _time_problem(ts: object, now_ms: int) -> str | None:
    """Why a parsed timestamp cannot be placed in any fetch window (None: it can)."""
    if ts is None:
        return "no usable timestamp"
    if not isinstance(ts, int | float) or isinstance(ts, bool) or ts != ts:
        return f"timestamp is not a number ({ts!r})"
    if ts < _EARLIEST_MS:
        return f"timestamp {ts!r} is before {EARLIEST.date()} (wrong unit?)"
    if ts > now_ms + FUTURE_SKEW.total_seconds() * 1000:
        return f"timestamp {ts!r} is in the future"
    return None


_OHLC = ("open", "high", "low", "close")


def _missing(parsed: dict, fields: tuple[str, ...]) -> str | None:
    """ccxt reads a value it cannot parse as a number (``"abc"``, ``[1]``) as absent: such a row
    is set aside too, so its quarantine payload keeps what the venue actually sent."""
    gone = [f for f in fields if parsed.get(f) is None]
    return f"ccxt could not read {', '.join(gone)}" if gone else None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _salvage_rows(ex: ccxt.Exchange) -> None:
    """Per-row parsers that set unusable rows aside (on ``ex.sentinance_rejects``) instead of
    letting ccxt raise for the whole page or drop them; ccxt gets a placeholder it filters out.

    A row the venue parser raises on is parsed once more without ccxt's ``safe_trade`` number
    arithmetic, so the reject carries the values exactly as the venue sent them (the contract
    then says ``price is not a number (got 'abc')``).
    """
    setattr(ex, REJECTS, [])
    venue_trade, venue_ohlcv = ex.parse_trade, ex.parse_ohlcv

    def set_aside(raw: Any, parsed: Any, error: str) -> None:
        getattr(ex, REJECTS).append({"raw": raw, "parsed": parsed, "error": error})

    def parse_trade(trade: Any, market: Any = None) -> dict:
        try:
            parsed, error = venue_trade(trade, market), None
        except Exception as exc:  # noqa: BLE001 - one bad row never fails the page
            error = f"{type(exc).__name__}: {exc}"[:300]
            parsed = _as_sent(ex, venue_trade, trade, market)
        problem = (
            error
            or _time_problem(parsed.get("timestamp") if parsed else None, _now_ms())
            or _missing(parsed, ("price", "amount"))
        )
        if problem is None:
            return parsed
        set_aside(trade, parsed, problem)
        # timestamp 0 and no symbol: ccxt's since/symbol filter removes it from the page
        return {"id": "", "timestamp": 0, "symbol": None, "info": None}

    def parse_ohlcv(ohlcv: Any, market: Any = None) -> list:
        try:
            parsed, error = venue_ohlcv(ohlcv, market), None
        except Exception as exc:  # noqa: BLE001 - one bad row never fails the page
            parsed, error = None, f"{type(exc).__name__}: {exc}"[:300]
        ts = parsed[0] if isinstance(parsed, list) and parsed else None
        problem = (
            error
            or _time_problem(ts, _now_ms())
            or _missing(dict(zip(_OHLC, parsed[1:5], strict=False)), _OHLC)
        )
        if problem is None:
            return parsed
        set_aside(ohlcv, parsed, problem)
        return [0, None, None, None, None, None]

    ex.parse_trade = parse_trade
    ex.parse_ohlcv = parse_ohlcv


def _as_sent(ex: ccxt.Exchange, venue_parse: Callable, trade: Any, market: Any) -> dict | None:
    """The venue's own field mapping without ccxt's number handling (``safe_trade`` computes
    the cost with exact decimals and raises on ``"NaN"``/``"abc"``): values stay as sent."""
    had = "safe_trade" in vars(ex)
    ex.safe_trade = lambda t, market=None: dict(t)
    try:
        return venue_parse(trade, market)
    except Exception:  # noqa: BLE001 - no mapping at all: the raw row speaks for itself
        return None
    finally:
        if not had:
            del ex.safe_trade


def drain_rejects(ex: ccxt.Exchange) -> list[dict]:
    """Rows set aside by the client since the last drain (and forget them)."""
    rows = list(getattr(ex, REJECTS, []))
    setattr(ex, REJECTS, [])
    return rows


def raw_json(value: Any) -> str:
    """A venue row as JSON text (NaN/inf kept as tokens, anything odd via ``repr``)."""
    return json.dumps(value, default=repr, sort_keys=True)[:2000]


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
    rejects: list[dict] | None = None,
) -> list[list[float]]:
    """Candles with open time in ``[start_ms, end_ms)``, ascending.

    A candle re-read by an overlapping page is kept once; two *different* candles for one open
    time (or one sent twice in an answer) are all kept, for the contracts' uniqueness rule.
    Rows ccxt could not parse or time are appended to ``rejects`` (see :func:`_salvage_rows`).
    """
    prof = profile_for(ex.id, policy)
    tf_ms = ex.parse_timeframe(timeframe) * 1000
    limit = prof.ohlcv_limit
    kept = _Kept()
    since = start_ms
    drain_rejects(ex)
    while since < end_ms:
        page_end = min(end_ms, since + limit * tf_ms)
        params = {"until": page_end - 1} if prof.sends_until else {}
        rows = call_with_retries(
            ex.fetch_ohlcv, symbol, timeframe, since, limit, params, policy=policy, sleep=sleep
        )
        kept.reject(drain_rejects(ex), rejects)
        fresh = [r for r in rows if since <= r[0] < end_ms]
        added = kept.page([(int(r[0]), r) for r in fresh])
        if prof.sends_until:
            since = page_end  # windowed: an empty window is a gap, not the end
        else:
            if not added:
                break  # nothing newer than ``since``
            since = int(max(r[0] for r in fresh)) + tf_ms
    return sorted(kept.rows, key=lambda r: r[0])


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
    rejects: list[dict] | None = None,
) -> list[dict]:
    """Trades with timestamp in ``[start_ms, end_ms)``, ascending.

    A trade re-read by an overlapping page is kept once; two *different* trades with one id
    (or one sent twice in an answer) are all kept, for the contracts' uniqueness rule. Rows
    ccxt could not parse or time are appended to ``rejects`` (see :func:`_salvage_rows`).
    """
    prof = profile_for(ex.id, policy)
    limit = prof.trades_limit
    kept = _Kept()
    pages = 0
    drain_rejects(ex)

    def page(since: int, until: int | None) -> tuple[list[dict], bool]:
        """The page's usable rows, and whether the venue's answer was a full page (rows set
        aside count: a page is full by what the venue sent, not by what ccxt could read)."""
        nonlocal pages
        pages += 1
        if pages > max_pages:
            raise ccxt.ExchangeError(f"{ex.id} {symbol}: more than {max_pages} trade pages")
        params = {"until": until} if (until is not None and prof.sends_until) else {}
        rows = call_with_retries(
            ex.fetch_trades, symbol, since, limit, params, policy=policy, sleep=sleep
        )
        set_aside = drain_rejects(ex)
        kept.reject(set_aside, rejects)
        return rows, len(rows) + len(set_aside) >= limit

    def in_window(rows: list[dict]) -> list[dict]:
        return [t for t in rows if start_ms <= t["timestamp"] < end_ms]

    def keep(rows: list[dict]) -> int:
        return kept.page([(trade_key(t), t) for t in in_window(rows)])

    since = start_ms
    while since < end_ms:
        win_end = min(end_ms, since + prof.trades_window_ms) if prof.trades_window_ms else end_ms
        if prof.trades_newest_first:
            hi = win_end - 1
            while True:  # walk back through the window, newest page first
                rows, full = page(since, hi)
                added = keep(rows)
                if not full or not added:
                    break
                hi = int(min(t["timestamp"] for t in in_window(rows)))  # inclusive overlap
            since = win_end
            continue
        rows, full = page(since, win_end - 1)
        added = keep(rows)
        last = max((t["timestamp"] for t in in_window(rows)), default=None)
        if full and last is not None:
            # a full page: continue from its last trade (inclusive; ids dedupe), and make
            # progress even when one millisecond holds more than a page of trades
            # (Kraken reads ``since`` in whole seconds, so it must step by a second)
            step = 1 if prof.sends_until else 1000
            since = int(last) if added and last > since else since + step
        elif prof.trades_window_ms:
            since = win_end
        else:
            break  # an un-windowed venue answered a short page: caught up
    return sorted(kept.rows, key=lambda t: (t["timestamp"], trade_key(t)))


class _Kept:
    """Rows kept across the pages of one fetch: a row identical to one kept from an *earlier*
    page is a re-read of the overlap and skipped; anything else is kept, because dropping a
    differing copy here would hide a conflict from the contracts."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self._seen: dict[Any, set[str]] = {}  # key -> fingerprints kept from earlier pages
        self._rejected: set[str] = set()

    def page(self, keyed: list[tuple[Any, Any]]) -> int:
        """Keep a page's rows; returns how many were new."""
        added: list[tuple[Any, str]] = []
        for key, row in keyed:
            fp = _fingerprint(row)
            if fp in self._seen.get(key, ()):
                continue
            self.rows.append(row)
            added.append((key, fp))
        for key, fp in added:
            self._seen.setdefault(key, set()).add(fp)
        return len(added)

    def reject(self, rows: list[dict], into: list[dict] | None) -> None:
        """A page's rejects; one already set aside from an earlier (overlapping) page is a
        re-read and skipped."""
        fps = [raw_json(r["raw"]) for r in rows]
        if into is not None:
            into.extend(r for r, fp in zip(rows, fps, strict=True) if fp not in self._rejected)
        self._rejected.update(fps)


def _fingerprint(row: Any) -> str:
    """What identifies a row's content: a trade without ccxt's ``info`` echo, or the candle."""
    if isinstance(row, dict):
        row = {k: v for k, v in row.items() if k not in ("info", "fees", "fee")}
    return raw_json(row)
