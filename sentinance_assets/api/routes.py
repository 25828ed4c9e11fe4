"""The endpoints: thin functions that parse a request, call :mod:`queries` (or the sentiment and
registry modules) and return a typed body. Everything they need sits in :class:`ApiState`
(``request.app.state.api``), built once by :func:`sentinance_assets.api.app.create_app`.

Handlers are plain ``def``: FastAPI runs them in its thread pool, where DuckDB releases the GIL,
so slow queries never block the event loop that serves the alert stream.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from sentinance_assets.api import queries
from sentinance_assets.api.metrics import CONTENT_TYPE, ApiMetrics, watch_lag_s
from sentinance_assets.api.models import (
    AlertPage,
    CandleSeries,
    Check,
    ErrorBody,
    Forecasts,
    Health,
    IndicatorSeries,
    MarketMetrics,
    Markets,
    Models,
    Ready,
    SentimentRequest,
    SentimentResponse,
)
from sentinance_assets.api.readside import DataUnavailable, ReadSide
from sentinance_assets.api.sentiment import SentimentService
from sentinance_assets.api.stream import AlertHub, events
from sentinance_assets.lib import registry
from sentinance_assets.lib.timestamps import TimestampError, parse_time
from sentinance_assets.settings import Settings

MAX_ALERT_PAGE = 200
MAX_BARS = 5000
MAX_FILTER_VALUES = 50
READY_TTL_S = 2.0


@dataclass
class ApiState:
    """What the endpoints share: settings, the read side, the stream hub, the models."""

    settings: Settings
    rs: ReadSide
    hub: AlertHub
    sentiment: SentimentService
    metrics: ApiMetrics
    _ready: tuple[float, Ready] | None = None
    _ready_lock: threading.Lock = field(default_factory=threading.Lock)


def state(request: Request) -> ApiState:
    return request.app.state.api


State = Annotated[ApiState, Depends(state)]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "the request cannot be answered as asked",
        401: "API key missing or wrong",
        404: "no such market or series",
        413: "request body too large",
        422: "invalid parameters",
        429: "rate limit exceeded (see Retry-After)",
        503: "the warehouse or the model is not available yet",
    }.items()
}


def _time(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_time(value, what=name)
    except (TimestampError, ValueError, OverflowError) as exc:
        raise queries.BadRequest(str(exc)) from None


def _values(values: list[str] | None, name: str) -> list[str]:
    out = [v.strip() for v in values or [] if v.strip()]
    if len(out) > MAX_FILTER_VALUES:
        raise queries.BadRequest(f"at most {MAX_FILTER_VALUES} values of `{name}`")
    return out


def _filter(
    type_: list[str] | None,
    symbol: list[str] | None,
    exchange: list[str] | None,
    severity: list[str] | None,
) -> queries.AlertFilter:
    symbols, bases = queries.symbol_filters(_values(symbol, "symbol"))
    return queries.AlertFilter(
        types=_values(type_, "type"),
        symbols=symbols,
        bases=bases,
        exchanges=[e.lower() for e in _values(exchange, "exchange")],
        severities=_values(severity, "severity"),
    )


TypeQ = Annotated[
    list[str] | None,
    Query(alias="type", description="alert type (repeatable): whale, volume_spike, ..."),
]
SymbolQ = Annotated[
    list[str] | None,
    Query(
        description="`BTC/USDT` (or `BTC-USDT`) for one market, `BTC` for every market of "
        "the asset (repeatable)"
    ),
]
ExchangeQ = Annotated[list[str] | None, Query(description="ccxt exchange id (repeatable)")]
SeverityQ = Annotated[list[str] | None, Query(description="info | warning | critical (repeatable)")]
SinceQ = Annotated[
    str | None,
    Query(
        description="from this time on, inclusive (ISO-8601 such as `2026-11-15T12:00:00Z`, "
        "or epoch seconds/ms)"
    ),
]
UntilQ = Annotated[str | None, Query(description="before this time, exclusive (same forms)")]

v1 = APIRouter(prefix="/v1", responses=ERRORS)
ops = APIRouter()


# --------------------------------------------------------------------------- alerts
@v1.get("/alerts", response_model=AlertPage, tags=["alerts"], summary="Alerts, newest first")
def get_alerts(
    st: State,
    type_: TypeQ = None,
    symbol: SymbolQ = None,
    exchange: ExchangeQ = None,
    severity: SeverityQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ALERT_PAGE, description="page size")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page")
    ] = None,
) -> dict[str, Any]:
    """Alerts of the feed (one per `alert_id`), newest event first, with keyset pagination:
    pass `next_cursor` back as `cursor` until `has_more` is false. Filters combine with AND;
    repeated values of one filter with OR."""
    flt = _filter(type_, symbol, exchange, severity)
    rows, has_more, nxt = queries.list_alerts(
        st.rs, flt, _time(since, "since"), _time(until, "until"), cursor, limit
    )
    return {"alerts": rows, "count": len(rows), "has_more": has_more, "next_cursor": nxt}


@v1.get(
    "/alerts/stream",
    tags=["alerts"],
    summary="New alerts as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def stream_alerts(
    request: Request,
    st: State,
    type_: TypeQ = None,
    symbol: SymbolQ = None,
    exchange: ExchangeQ = None,
    severity: SeverityQ = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=200, description="resume after this event id (as the header)"),
    ] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=200)
    ] = None,
) -> StreamingResponse:
    """`event: alert` per new alert (`data`: the alert as in `GET /v1/alerts`, `id`: its
    position). Reconnect with `Last-Event-ID` to get what was missed. Comment lines keep the
    connection alive."""
    flt = _filter(type_, symbol, exchange, severity)
    resume = last_event_id_header or last_event_id
    after = queries.parse_event_id(resume) if resume else None
    return StreamingResponse(
        events(st.hub, flt, after, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --------------------------------------------------------------------------- markets
@v1.get(
    "/metrics/{symbol:path}",
    response_model=MarketMetrics,
    tags=["markets"],
    summary="Price, spread, volume and alerts of one asset or market",
)
def get_metrics(
    st: State, symbol: Annotated[str, Path(description="`BTC`, `BTC/USDT` or `BTC-USDT`")]
) -> dict[str, Any]:
    """Per venue: the latest 1-minute close and the volume over the hour up to `as_of` (the
    newest bar); the latest cross-venue spread per venue pair; alerts in the 24 h up to
    `as_of` by type; the last whale trade; `updated_at`, the newest data behind it."""
    ref = queries.SymbolRef.parse(symbol)
    return st.rs.memo(("metrics", ref), lambda: queries.market_metrics(st.rs, ref))


@v1.get("/markets", response_model=Markets, tags=["markets"], summary="Every asset and market")
def get_markets(st: State) -> dict[str, Any]:
    """The asset overview (as on the app's Markets page) and each market's latest day."""
    return queries.markets(st.rs)


Timeframe = Annotated[Literal["1m", "5m", "15m", "1h", "4h", "1d"], Query()]
Bars = Annotated[int, Query(ge=1, le=MAX_BARS, description="bars per page")]


def _series(
    st: ApiState,
    kind: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    since: str | None,
    until: str | None,
    limit: int,
) -> dict[str, Any]:
    rows, has_more, nxt = queries.series(
        st.rs,
        kind,
        exchange.lower(),
        symbol,
        timeframe,
        _time(since, "since"),
        _time(until, "until"),
        limit,
    )
    return {
        "exchange": exchange.lower(),
        "symbol": queries.SymbolRef.parse(symbol).symbol,
        "timeframe": timeframe,
        "count": len(rows),
        "has_more": has_more,
        "next_since": nxt,
        kind: rows,
    }


@v1.get(
    "/candles/{exchange}/{symbol:path}",
    response_model=CandleSeries,
    tags=["markets"],
    summary="OHLCV bars of one market",
)
def get_candles(
    st: State,
    exchange: str,
    symbol: str,
    timeframe: Timeframe = "1h",
    since: SinceQ = None,
    until: UntilQ = None,
    limit: Bars = 500,
) -> dict[str, Any]:
    """Oldest first. With `since`: bars from `since` on, `next_since` continues; without:
    the newest `limit` bars before `until` (`has_more`: older bars exist)."""
    return _series(st, "candles", exchange, symbol, timeframe, since, until, limit)


@v1.get(
    "/indicators/{exchange}/{symbol:path}",
    response_model=IndicatorSeries,
    tags=["markets"],
    summary="Technical indicators of one market",
)
def get_indicators(
    st: State,
    exchange: str,
    symbol: str,
    timeframe: Timeframe = "1h",
    since: SinceQ = None,
    until: UntilQ = None,
    limit: Bars = 500,
) -> dict[str, Any]:
    """SMA/EMA 20/50/200, RSI 14, MACD, Bollinger bands, ATR 14 and realised volatility per
    bar (null in the warm-up); paging as `GET /v1/candles`."""
    return _series(st, "indicators", exchange, symbol, timeframe, since, until, limit)


@v1.get(
    "/forecasts/{symbol:path}",
    response_model=Forecasts,
    tags=["models"],
    summary="Latest forecasts of an asset or market, with intervals",
)
def get_forecasts(
    st: State,
    symbol: str,
    exchange: Annotated[str | None, Query(description="only this venue")] = None,
) -> dict[str, Any]:
    """The latest forecasts per market, for both targets (log return, realized volatility) and
    every horizon, each from the model that won its walk-forward hold-out: the prediction, its
    stored 80 % / 95 % split-conformal intervals with their measured hold-out coverage and the
    reason the model serves; for the log return also as prices from the origin close. Empty
    when nothing has been forecast yet."""
    from ml.forecast_lifecycle import REGISTERED_NAME

    ref = queries.SymbolRef.parse(symbol)
    rows = queries.forecasts(st.rs, ref, exchange.lower() if exchange else None)
    return {
        "symbol": ref.symbol or ref.base,
        "model": REGISTERED_NAME,
        "model_version": rows[0]["model_version"] if rows else None,
        "serving_version": registry.serving(st.settings.mlflow_db, REGISTERED_NAME),
        "forecasts": rows,
    }


# --------------------------------------------------------------------------- models
@v1.post(
    "/sentiment",
    response_model=SentimentResponse,
    tags=["models"],
    summary="Score texts with the serving model and VADER",
)
def post_sentiment(st: State, body: SentimentRequest) -> dict[str, Any]:
    """A label (negative | neutral | positive) and a signed score in [-1, 1] per text, from
    the serving sentiment model and from VADER side by side, with the model's version."""
    most = st.settings.api_sentiment_max_texts
    if len(body.texts) > most:
        raise queries.BadRequest(
            f"{len(body.texts)} texts: at most {most} per request "
            "(SENTINANCE_API_SENTIMENT_MAX_TEXTS)"
        )
    return st.sentiment.score(body.texts)


@v1.get("/models", response_model=Models, tags=["models"], summary="Registered models")
def get_models(st: State) -> dict[str, Any]:
    """Every registered version with its aliases, promotion decision and held-out metrics;
    which versions serve."""
    from ml.forecast_lifecycle import REGISTERED_NAME

    return {
        "registered": registry.versions(st.settings.mlflow_db),
        "sentiment_serving": st.sentiment.describe(),
        "forecaster_serving": registry.serving(st.settings.mlflow_db, REGISTERED_NAME),
    }


# --------------------------------------------------------------------------- operations
@ops.get("/health", response_model=Health, tags=["operations"], summary="Liveness")
def health() -> dict[str, Any]:
    """200 while the process serves requests."""
    return {"status": "ok"}


def _readiness(st: ApiState) -> Ready:
    from sentinance_assets.lib.operations import freshness

    s = st.settings
    live = s.source == "live"
    checks: dict[str, Check] = {}
    published = st.rs.published_at()
    age = lag = None
    try:
        last = st.rs.one(queries.INGEST_SQL)
        checks["warehouse"] = Check(ok=True, detail=f"published {st.rs.read_path}")
        if last and last["last_ingest"] is not None:
            age = max(time.time() - last["last_ingest"].timestamp(), 0.0)
    except DataUnavailable as exc:
        checks["warehouse"] = Check(ok=False, detail=str(exc))
    fail = freshness.windows(s)[freshness.REFRESH][1].total_seconds()
    if not live:
        checks["ingest"] = Check(ok=True, detail=f"{s.source} source: no live ingest expected")
    elif age is None:
        checks["ingest"] = Check(ok=False, detail="no trade ingested yet")
    else:
        checks["ingest"] = Check(
            ok=age <= fail, detail=f"last ingest {age:.0f} s ago (limit {fail:.0f} s)"
        )
    try:
        lag = watch_lag_s(s)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint: report, do not crash
        lag = None
    most = s.api_ready_max_lag_seconds
    if lag is None:
        checks["watch"] = Check(ok=True, detail="no watch loop has run in this home")
    elif not live:
        checks["watch"] = Check(ok=True, detail=f"lag {lag:.1f} s ({s.source} source: not judged)")
    else:
        checks["watch"] = Check(ok=lag <= most, detail=f"lag {lag:.1f} s (limit {most:.0f} s)")
    return Ready(
        ready=all(c.ok for c in checks.values()),
        source=s.source,
        checks=checks,
        published_at=datetime.fromtimestamp(published, UTC) if published else None,
        last_ingest_age_s=age,
        watch_lag_s=lag,
    )


@ops.get(
    "/ready",
    response_model=Ready,
    tags=["operations"],
    summary="Readiness",
    responses={503: {"model": Ready, "description": "not ready: see `checks`"}},
)
def ready(st: State, response: Response) -> Ready:
    """200 when the warehouse is published and (live mode) the last ingest and the watch
    loop's lag are within their limits; 503 with the failing checks otherwise."""
    with st._ready_lock:
        now = time.monotonic()
        if st._ready is None or now - st._ready[0] > READY_TTL_S:
            st._ready = (now, _readiness(st))
        report = st._ready[1]
    if not report.ready:
        response.status_code = 503
    return report


def metrics_key(request: Request) -> None:
    """``/metrics`` is behind the API key like ``/v1`` (it reveals volumes)."""
    request.app.state.key_check(request)


@ops.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    dependencies=[Depends(metrics_key)],
)
def prometheus(st: State) -> Response:
    """Rows ingested and quarantined, alerts by type, the watch loop's lag, request counts and
    latency histograms, in the Prometheus text format."""
    return Response(st.metrics.render(), media_type=CONTENT_TYPE)
