"""``GET /metrics`` in the Prometheus text format (``prometheus_client``).

Two kinds of series:

* the API's own, counted as requests pass through :class:`RequestMetrics`:
  ``sentinance_api_requests_total{method,route,status}`` and the latency histogram
  ``sentinance_api_request_duration_seconds{method,route}`` (``route`` is the path template,
  ``/v1/metrics/{symbol}``, never the raw path, so label values stay few);
* the data's, read at scrape time by :class:`DataCollector` from the published warehouse and
  the watch loop's checkpoint, cached :data:`DATA_TTL_S` seconds so that frequent scrapes do not
  rescan the lake: rows ingested and quarantined per dataset, alerts by type, the watch loop's
  lag, when the read side was published and when trades were last ingested.

Each application has its own registry (no process-global state), so several apps in one
process (the tests) never collide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentinance_assets.api import queries
from sentinance_assets.api.readside import DataUnavailable, ReadSide
from sentinance_assets.settings import Settings

DATA_TTL_S = 10.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STREAM_ROUTES = frozenset({"/v1/alerts/stream"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def watch_lag_s(settings: Settings) -> float | None:
    """The watch loop's lag (now minus its committed position), as ``sentinance status``
    reports it; ``None`` when no watch loop ever ran in this home."""
    from sentinance_assets.lib.operations.status import watch
    from sentinance_assets.lib.operations.supervision import is_serving

    sample = watch(settings, is_serving(settings))
    return None if sample is None else float(sample["lag_s"])


class DataCollector(Collector):
    """Gauges about the data, computed at scrape time (cached)."""

    def __init__(self, settings: Settings, rs: ReadSide) -> None:
        self.settings = settings
        self.rs = rs
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > DATA_TTL_S:
                self._cached = (now, self._measure())
            yield from self._cached[1]

    def _measure(self) -> list[Metric]:
        up = GaugeMetricFamily(
            "sentinance_warehouse_up", "1 when the published warehouse answered the scrape"
        )
        ingested = GaugeMetricFamily(
            "sentinance_rows_ingested", "clean rows in the lake, per dataset", labels=["dataset"]
        )
        quarantined = GaugeMetricFamily(
            "sentinance_rows_quarantined",
            "rows rejected by the ingest checks, per dataset",
            labels=["dataset"],
        )
        alerts = GaugeMetricFamily(
            "sentinance_alerts", "alerts in the feed (one per alert_id), per type", labels=["type"]
        )
        out: list[Metric] = [up, ingested, quarantined, alerts]
        try:
            for row in self.rs.rows(queries.COUNTS_SQL):
                ingested.add_metric([row["dataset"]], float(row["ingested"]))
                quarantined.add_metric([row["dataset"]], float(row["quarantined"]))
            for row in self.rs.rows(queries.ALERTS_BY_TYPE_SQL):
                alerts.add_metric([str(row["type"])], float(row["n"]))
            last = self.rs.one(queries.INGEST_SQL)
            up.add_metric([], 1.0)
        except DataUnavailable:
            up.add_metric([], 0.0)
            last = None
        if last and last["last_ingest"] is not None:
            out.append(
                GaugeMetricFamily(
                    "sentinance_last_ingest_timestamp_seconds",
                    "ingested_at of the newest clean trade",
                    value=last["last_ingest"].timestamp(),
                )
            )
        published = self.rs.published_at()
        if published is not None:
            out.append(
                GaugeMetricFamily(
                    "sentinance_warehouse_published_timestamp_seconds",
                    "when the read side was last published",
                    value=published,
                )
            )
        lag = _quietly(lambda: watch_lag_s(self.settings))
        if lag is not None:
            out.append(
                GaugeMetricFamily(
                    "sentinance_watch_lag_seconds",
                    "now minus the watch loop's committed stream position",
                    value=lag,
                )
            )
        return out


def _quietly(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - one unreadable signal must not fail the scrape
        return None


class ApiMetrics:
    """The registry of one application: request series plus the data collector."""

    def __init__(self, settings: Settings, rs: ReadSide) -> None:
        disable_created_metrics()  # the `_created` twin of every series is noise here
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sentinance_api_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sentinance_api_request_duration_seconds",
            "time to answer, by method and route template (the alert stream excluded)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(DataCollector(settings, rs))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: counts every request and times every non-stream one."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, route, str(status)).inc()
            if route not in STREAM_ROUTES:
                self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
