"""The API's SQL: parameterised statements on the published read side, and the small Python
around them (cursors, windows, intervals).

The analyst app's queries are reused where the API answers the same question
(``streamlit_app/views``: the asset overview, the markets by venue, a market's latest forecasts
with their stored intervals): one definition per question, so the app and the API cannot
disagree. The rest is the API's own (keyset pagination, time filters, per-symbol metrics).

Every user value travels as a bound parameter (``?``); the only text spliced into SQL comes
from constants of this module (column lists, table names chosen from a fixed mapping).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sentinance_assets.api.appsql import (
    FORECAST_SQL,
    HORIZON_HOURS,
    MARKETS_SQL,
    ORIGIN_CLOSE_SQL,
    OVERVIEW_SQL,
)
from sentinance_assets.api.readside import FEED, ReadSide

TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")
ALERT_COLUMNS = (
    "alert_id, type, exchange, symbol, severity, value, threshold, details, event_time, "
    "detected_at, message, rules_version"
)


class BadRequest(ValueError):
    """A request the API understood but cannot answer as asked (400, the message says why)."""


class NotFound(LookupError):
    """Nothing of that name in the warehouse (404, the message says what)."""


# --------------------------------------------------------------------------- symbols
@dataclass(frozen=True)
class SymbolRef:
    """``BTC`` (every dollar market of the asset), ``BTC/USDT`` or ``BTC-USDT`` (that market)."""

    base: str
    symbol: str | None

    @classmethod
    def parse(cls, text: str) -> SymbolRef:
        raw = text.strip().upper().replace("-", "/")
        parts = raw.split("/")
        ok = 1 <= len(parts) <= 2 and all(p.isalnum() and 1 <= len(p) <= 20 for p in parts)
        if not ok:
            raise BadRequest(f"{text!r} is not an asset (BTC) or a symbol (BTC/USDT, BTC-USDT)")
        return cls(parts[0], raw if len(parts) == 2 else None)


def symbol_filters(values: list[str] | None) -> tuple[list[str], list[str]]:
    """``symbol`` query values as (unified symbols, bare assets)."""
    symbols: list[str] = []
    bases: list[str] = []
    for value in values or []:
        ref = SymbolRef.parse(value)
        if ref.symbol is None:
            bases.append(ref.base)
        else:
            symbols.append(ref.symbol)
    return symbols, bases


# --------------------------------------------------------------------------- cursors
def encode_cursor(event_time: datetime, alert_id: str) -> str:
    """An opaque page cursor: the (event_time, alert_id) of the last alert of a page."""
    micros = round(event_time.timestamp() * 1_000_000)
    raw = json.dumps([micros, alert_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, alert_id = json.loads(raw)
        if not isinstance(micros, int) or not isinstance(alert_id, str):
            raise ValueError
        return datetime.fromtimestamp(micros / 1_000_000, UTC), alert_id
    except (ValueError, TypeError, binascii.Error, OverflowError, OSError):
        raise BadRequest("invalid cursor: pass back the `next_cursor` of a previous page") from None


def event_id(detected_at: datetime, alert_id: str) -> str:
    """A stream event id: position in detection order (``<detected_at µs>-<alert_id>``)."""
    return f"{round(detected_at.timestamp() * 1_000_000)}-{alert_id}"


def parse_event_id(text: str) -> tuple[datetime, str]:
    micros, sep, alert_id = text.strip().partition("-")
    try:
        if not sep or not alert_id or len(text) > 200:
            raise ValueError
        return datetime.fromtimestamp(int(micros) / 1_000_000, UTC), alert_id
    except (ValueError, OverflowError, OSError):
        raise BadRequest(
            "invalid Last-Event-ID: pass back the `id` of an event this stream sent"
        ) from None


# --------------------------------------------------------------------------- alerts
# The page query: only the filters a request uses are spliced in (each a constant clause with
# its own parameters), so an unfiltered page costs no per-row list lookups.
ALERTS_SQL = f"""
select {ALERT_COLUMNS}
from {FEED}
where {{where}}
order by pos  -- = event_time desc, alert_id
limit ?
"""
FILTER_CLAUSES = {
    "types": "list_contains(?::varchar[], type)",
    "symbols": "list_contains(?::varchar[], symbol)",
    "bases": "list_contains(?::varchar[], split_part(symbol, '/', 1))",
    "exchanges": "list_contains(?::varchar[], exchange)",
    "severities": "list_contains(?::varchar[], severity)",
}

# Detection order, after a stream position (Last-Event-ID).
STREAM_AFTER_SQL = f"""
select {ALERT_COLUMNS}
from {FEED}
where (detected_at > ?::timestamptz or (detected_at = ?::timestamptz and alert_id > ?::varchar))
order by detected_at, alert_id
limit ?
"""

# Everything detected since a time (the stream's poll; duplicates are dropped by the caller).
STREAM_SINCE_SQL = f"""
select {ALERT_COLUMNS}
from {FEED}
where ?::timestamptz is null or detected_at >= ?::timestamptz
order by detected_at, alert_id
"""

LATEST_DETECTION_SQL = f"select max(detected_at) as latest from {FEED}"


@dataclass(frozen=True)
class AlertFilter:
    types: list[str]
    symbols: list[str]
    bases: list[str]
    exchanges: list[str]
    severities: list[str]

    def where(self) -> tuple[list[str], list[Any]]:
        """SQL conditions (constants of this module) and their parameters, in order. Values
        of one filter are alternatives (OR), and so are symbols and bare assets."""
        clauses: list[str] = []
        params: list[Any] = []
        groups = (("types",), ("symbols", "bases"), ("exchanges",), ("severities",))
        for group in groups:
            used = [name for name in group if getattr(self, name)]
            if used:
                clauses.append("(" + " or ".join(FILTER_CLAUSES[n] for n in used) + ")")
                params += [getattr(self, n) for n in used]
        return clauses, params

    def accepts(self, alert: dict[str, Any]) -> bool:
        """The same filter in Python, for alerts the stream already holds."""
        symbol = alert.get("symbol") or ""
        return (
            (not self.types or alert.get("type") in self.types)
            and (
                (not self.symbols and not self.bases)
                or symbol in self.symbols
                or symbol.split("/")[0] in self.bases
            )
            and (not self.exchanges or alert.get("exchange") in self.exchanges)
            and (not self.severities or alert.get("severity") in self.severities)
        )


def list_alerts(
    rs: ReadSide,
    flt: AlertFilter,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], bool, str | None]:
    """Newest first, ``limit`` alerts after ``cursor``; returns (alerts, has_more, next)."""
    if since is not None and until is not None and since >= until:
        raise BadRequest("`since` must be before `until`")
    clauses, params = flt.where()
    if since is not None:
        clauses.append("event_time >= ?")
        params.append(since)
    if until is not None:
        clauses.append("event_time < ?")
        params.append(until)
    if cursor:
        after_t, after_id = decode_cursor(cursor)
        clauses.append("(event_time < ? or (event_time = ? and alert_id > ?))")
        params += [after_t, after_t, after_id]
    sql = ALERTS_SQL.format(where=" and ".join(clauses) or "true")
    params.append(limit + 1)
    rows = rs.rows(sql, params)
    has_more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1]["event_time"], rows[-1]["alert_id"]) if has_more else None
    return rows, has_more, nxt


# --------------------------------------------------------------------------- metrics
VENUES_SQL = """
with bars as (
    select exchange, symbol, ts, close, volume, quote_volume, trade_count
    from marts.candles
    where timeframe = '1m' and base = ? and (?::varchar is null or symbol = ?::varchar)
), latest as (select max(ts) as as_of from bars)
select b.exchange, b.symbol, latest.as_of,
       max_by(b.close, b.ts) as price, max(b.ts) as price_at,
       sum(b.volume) filter (where b.ts > latest.as_of - interval 1 hour) as volume_1h,
       sum(b.quote_volume) filter (where b.ts > latest.as_of - interval 1 hour)
           as quote_volume_1h,
       sum(b.trade_count) filter (where b.ts > latest.as_of - interval 1 hour) as trades_1h
from bars as b, latest
group by b.exchange, b.symbol, latest.as_of
order by b.exchange, b.symbol
"""

SPREADS_SQL = """
select exchange_a, exchange_b, spread_pct, vwap_usd_a, vwap_usd_b, window_start
from marts.spreads
where base = ?
qualify row_number() over (partition by exchange_a, exchange_b order by window_start desc) = 1
order by exchange_a, exchange_b
"""

# One pass over the alert feed: the counts by type in the 24 h up to as_of, and the latest
# whale, for one asset (or one market of it).
ALERT_METRICS_SQL = f"""
with a as (
    select pos, {ALERT_COLUMNS} from {FEED}
    where split_part(symbol, '/', 1) = ? and (?::varchar is null or symbol = ?::varchar)
), counts as (
    select type, count(*) as n from a
    where event_time > ?::timestamptz - interval 24 hour and event_time <= ?::timestamptz
    group by type
), whale as (
    select * from a where type = 'whale' order by pos limit 1
)
select 'count' as kind, type, n, null::varchar as alert_id, null::varchar as exchange,
       null::varchar as symbol, null::varchar as severity, null::double as value,
       null::double as threshold, null::varchar as details, null::timestamptz as event_time,
       null::timestamptz as detected_at, null::varchar as message,
       null::varchar as rules_version
from counts
union all
select 'whale', type, null, alert_id, exchange, symbol, severity, value, threshold, details,
       event_time, detected_at, message, rules_version
from whale
"""


def market_metrics(rs: ReadSide, ref: SymbolRef) -> dict[str, Any]:
    venues = rs.rows(VENUES_SQL, [ref.base, ref.symbol, ref.symbol])
    if not venues:
        what = ref.symbol or ref.base
        raise NotFound(f"no 1-minute candles for {what}: see GET /v1/markets for what there is")
    as_of = venues[0]["as_of"]
    spreads = [] if ref.symbol else rs.rows(SPREADS_SQL, [ref.base])
    by_type: dict[str, int] = {}
    whale = None
    for row in rs.rows(ALERT_METRICS_SQL, [ref.base, ref.symbol, ref.symbol, as_of, as_of]):
        if row["kind"] == "count":
            by_type[row["type"]] = int(row["n"])
        else:
            whale = row
    return {
        "base": ref.base,
        "symbol": ref.symbol,
        "as_of": as_of,
        "venues": venues,
        "spreads": spreads,
        "alerts_24h": sum(by_type.values()),
        "alerts_24h_by_type": dict(sorted(by_type.items())),
        "last_whale": whale,
        "updated_at": max(v["price_at"] for v in venues),
        "published_at": _utc(rs.published_at()),
    }


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


# --------------------------------------------------------------------------- markets
def markets(rs: ReadSide) -> dict[str, Any]:
    return {"assets": rs.rows(OVERVIEW_SQL), "markets": rs.rows(MARKETS_SQL)}


# --------------------------------------------------------------------------- series
MARKET_EXISTS_SQL = "select 1 as found from marts.candles where exchange = ? and symbol = ? limit 1"

CANDLE_COLUMNS = "ts, open, high, low, close, volume, quote_volume, vwap, trade_count, quality"
INDICATOR_COLUMNS = (
    "ts, close, log_return, sma_20, sma_50, sma_200, ema_20, ema_50, ema_200, rsi_14, macd, "
    "macd_signal, macd_hist, bb_upper, bb_middle, bb_lower, atr_14, realized_vol"
)
SERIES = {
    "candles": ("marts.candles", CANDLE_COLUMNS),
    "indicators": (
        "marts.indicators",
        INDICATOR_COLUMNS,
    ),
}

_SERIES_WHERE = """
where exchange = ? and symbol = ? and timeframe = ?
  and (?::timestamptz is null or ts >= ?::timestamptz)
  and (?::timestamptz is null or ts < ?::timestamptz)
"""


def series(
    rs: ReadSide,
    kind: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> tuple[list[dict[str, Any]], bool, datetime | None]:
    """Bars of one market, oldest first: from ``since`` forward (``next_since`` pages on), or
    without ``since`` the newest ``limit`` bars before ``until``. Returns
    (rows, has_more, next_since)."""
    if since is not None and until is not None and since >= until:
        raise BadRequest("`since` must be before `until`")
    ref = SymbolRef.parse(symbol)
    if ref.symbol is None:
        raise BadRequest(f"{symbol!r} names an asset: name one market, e.g. {ref.base}/USDT")
    if not rs.rows(MARKET_EXISTS_SQL, [exchange, ref.symbol]):
        raise NotFound(f"no candles for {ref.symbol} on {exchange}: see GET /v1/markets")
    table, columns = SERIES[kind]
    order = "ts" if since is not None else "ts desc"
    sql = f"select {columns} from {table} {_SERIES_WHERE} order by {order} limit ?"
    params = [exchange, ref.symbol, timeframe, since, since, until, until, limit + 1]
    rows = rs.rows(sql, params)
    has_more = len(rows) > limit
    nxt = rows[limit]["ts"] if has_more and since is not None else None
    rows = rows[:limit]
    if since is None:
        rows.reverse()
    return rows, has_more, nxt


# --------------------------------------------------------------------------- forecasts
FORECAST_MARKETS_SQL = """
select distinct exchange, symbol from ml.forecasts
where (symbol = ?::varchar or (?::varchar is null and split_part(symbol, '/', 1) = ?))
  and (?::varchar is null or exchange = ?::varchar)
order by exchange, symbol
"""
KNOWN_BASE_SQL = "select 1 as found from marts.candles where base = ? limit 1"


LEVELS = (80, 95)  # the stored interval levels, percent


def forecasts(rs: ReadSide, ref: SymbolRef, exchange: str | None) -> list[dict[str, Any]]:
    """The latest forecast per target and horizon of each market of ``ref`` (on ``exchange``),
    as the app shows it: the serving model's prediction and its stored split-conformal 80 % /
    95 % intervals in the target's own units (``prediction*``), and for the log return the
    same as prices ``p0 * exp(.)`` from the close at the origin (``price``, ``lower_*``,
    ``upper_*``; null for the realized volatility, and where an interval is not stored)."""
    if not rs.rows(KNOWN_BASE_SQL, [ref.base]):
        raise NotFound(f"no market of {ref.base} in the warehouse: see GET /v1/markets")
    out: list[dict[str, Any]] = []
    markets_ = rs.rows(FORECAST_MARKETS_SQL, [ref.symbol, ref.symbol, ref.base, exchange, exchange])
    for m in markets_:
        ex, sym = m["exchange"], m["symbol"]
        rows = rs.rows(FORECAST_SQL, [sym, ex, sym, ex])
        if not rows:
            continue
        origin = rows[0]["origin_ts"]
        close = rs.one(ORIGIN_CLOSE_SQL, [ex, sym, origin])
        p0 = float(close["close"]) if close and close["close"] is not None else None
        for f in rows:
            hours = HORIZON_HOURS.get(str(f["horizon"]))
            # a price only for the return; a volatility has none
            base = p0 if f["target"] == "log_return" else None
            point = {
                "exchange": ex,
                "symbol": sym,
                "target": f["target"],
                "horizon": f["horizon"],
                "model": f["model"],
                "model_version": f["model_version"],
                "reason": f["reason"],
                "origin_ts": origin,
                "target_ts": origin + timedelta(hours=hours) if hours else None,
                "prediction": f["prediction"],
                "origin_price": p0,
                "price": _price(base, f["prediction"]),
                "created_at": f["created_at"],
            }
            for level in LEVELS:
                lo, hi = f[f"lower_{level}"], f[f"upper_{level}"]
                if lo is None or hi is None:  # a half-stored interval is no interval
                    lo = hi = None
                point[f"prediction_lower_{level}"] = lo
                point[f"prediction_upper_{level}"] = hi
                point[f"lower_{level}"] = _price(base, lo)
                point[f"upper_{level}"] = _price(base, hi)
                point[f"coverage_{level}"] = f[f"coverage_{level}"]
            out.append(point)
    return out


def _price(p0: float | None, log_value: float | None) -> float | None:
    """``p0 * exp(log_value)``; None without a close or a finite value."""
    if p0 is None or log_value is None or not math.isfinite(log_value):
        return None
    try:
        return p0 * math.exp(log_value)
    except OverflowError:
        return None


# --------------------------------------------------------------------------- operations
INGEST_SQL = "select max(ingested_at) as last_ingest from raw.trades"
COUNTS_SQL = """
select 'trades' as dataset, (select count(*) from raw.trades) as ingested,
       (select count(*) from quarantine.trades) as quarantined
union all
select 'candles', (select count(*) from raw.candles), (select count(*) from quarantine.candles)
union all
select 'news', (select count(*) from raw.news), (select count(*) from quarantine.news)
"""
ALERTS_BY_TYPE_SQL = f"select type, count(*) as n from {FEED} group by type order by 1"
