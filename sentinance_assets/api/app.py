"""The application: :func:`create_app` wires settings, read side, routes, limits and errors.

Layers, outermost first: CORS (only when ``SENTINANCE_API_CORS_ORIGINS`` is set), request
metrics, the per-client rate limit, the body-size limit, then FastAPI's routing with the API-key
check on ``/v1``. Every error leaves as JSON ``{"error", "message"[, "details"]}``: the
exceptions the modules raise map to 400/401/404/503, validation to 422, anything unexpected to
a 500 whose body says only "internal error" (the trace goes to the log, never to the client).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from sentinance_assets.api import routes
from sentinance_assets.api.auth import KeyCheck, Unauthorized
from sentinance_assets.api.limits import BodyLimit, RateLimit
from sentinance_assets.api.metrics import ApiMetrics, RequestMetrics
from sentinance_assets.api.queries import BadRequest, NotFound
from sentinance_assets.api.readside import DataUnavailable, ReadSide
from sentinance_assets.api.sentiment import ModelUnavailable, SentimentService
from sentinance_assets.api.stream import AlertHub
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import ALERTS
from sentinance_assets.settings import Settings

log = logging.getLogger("sentinance.api")

DESCRIPTION = """\
Sentinance over HTTP: the alert feed (pages and a live stream), market metrics, candles,
indicators, forecasts, sentiment scoring and the model registry, read from the published
warehouse. Authentication, limits and a `curl` session: `docs/api.md`.
"""
HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    body.update({k: v for k, v in extra.items() if k != "headers"})
    return JSONResponse(body, status_code=status, headers=extra.get("headers"))


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, without echoing inputs or internal objects."""
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ][:20]


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return _error(400, "invalid_request", str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc.args[0]) if exc.args else "not found")

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return _error(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(DataUnavailable)
    async def unavailable(request: Request, exc: DataUnavailable) -> JSONResponse:
        return _error(503, "unavailable", str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(ModelUnavailable)
    async def no_model(request: Request, exc: ModelUnavailable) -> JSONResponse:
        return _error(503, "model_unavailable", str(exc), headers={"Retry-After": "30"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] or first["loc"]) or "request"
        return _error(422, "invalid_request", f"{where}: {first['msg']}", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal_error", "internal error; the API log has the details")


def create_app(settings: Settings, *, poll_s: float | None = None) -> FastAPI:
    """The API for one home (``settings``); ``poll_s`` overrides the stream's poll interval."""
    rs = ReadSide(settings.read_path, lake.dataset_dir(settings.lake_dir, ALERTS))
    hub = AlertHub(rs) if poll_s is None else AlertHub(rs, poll_s=poll_s)
    metrics = ApiMetrics(settings, rs)
    key_check = KeyCheck(settings.api_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()

    app = FastAPI(
        title="Sentinance API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "alerts", "description": "the alert feed and its live stream"},
            {"name": "markets", "description": "metrics, markets, candles and indicators"},
            {"name": "models", "description": "forecasts, sentiment scoring, the registry"},
            {"name": "operations", "description": "liveness, readiness, Prometheus"},
        ],
    )
    app.state.api = routes.ApiState(
        settings=settings,
        rs=rs,
        hub=hub,
        sentiment=SentimentService(settings),
        metrics=metrics,
    )
    app.state.key_check = key_check
    app.include_router(routes.v1, dependencies=[Depends(key_check)])
    app.include_router(routes.ops)
    _install_errors(app)

    # middleware: the last added is the outermost
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_kib * 1024)
    if settings.api_rate_limit > 0:
        app.add_middleware(RateLimit, per_minute=settings.api_rate_limit)
    app.add_middleware(RequestMetrics, metrics=metrics)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-API-Key"],
            expose_headers=[
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
            max_age=600,
        )
    return app
