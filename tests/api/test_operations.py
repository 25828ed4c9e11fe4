"""``/health``, ``/ready`` and the Prometheus ``/metrics``; readiness of an unpublished home."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sentinance_assets.api.app import create_app
from sentinance_assets.settings import Settings
from tests.api.conftest import sql


def test_health_is_always_ok(api):
    r = api.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_on_a_published_home(api):
    r = api.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True and body["checks"]["warehouse"]["ok"] is True
    assert body["published_at"] and body["last_ingest_age_s"] > 0
    assert set(body["checks"]) == {"warehouse", "ingest", "watch"}


def test_not_ready_without_a_published_warehouse(tmp_path):
    app = create_app(Settings(home=tmp_path / "empty"))
    with TestClient(app) as client:
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json()["checks"]["warehouse"]["ok"] is False
        assert "not been published" in r.json()["checks"]["warehouse"]["detail"]
        r = client.get("/v1/alerts")
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
        assert client.get("/health").status_code == 200


def test_live_readiness_judges_ingest_age(api_home):
    # the fixture's trades were ingested in 2026-11: far too old for a live service
    app = create_app(Settings(home=api_home, source="live"))
    with TestClient(app) as client:
        r = client.get("/ready")
        assert r.status_code == 503
        ingest = r.json()["checks"]["ingest"]
        assert ingest["ok"] is False and "limit" in ingest["detail"]


def _families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_prometheus_metrics_match_the_warehouse(api, api_home):
    api.get("/v1/alerts")
    api.get("/v1/metrics/BTC")
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fam = _families(r.text)
    ingested = {s.labels["dataset"]: s.value for s in fam["sentinance_rows_ingested"]}
    (counts,) = sql(
        api_home,
        "select (select count(*) from raw.trades) as trades, "
        "(select count(*) from raw.candles) as candles, (select count(*) from raw.news) as news",
    )
    assert ingested == {k: float(v) for k, v in counts.items()}
    assert {s.labels["dataset"] for s in fam["sentinance_rows_quarantined"]} == set(counts)
    by_type = sql(api_home, "select type, count(*) as n from alerts.alert_feed group by type")
    got = {s.labels["type"]: s.value for s in fam["sentinance_alerts"]}
    # the stream test may add a watch-loop alert meanwhile: at least what SQL saw before
    assert set(got) >= {r["type"] for r in by_type}
    assert fam["sentinance_warehouse_up"][0].value == 1.0
    requests = fam["sentinance_api_requests"]
    assert any(
        s.labels == {"method": "GET", "route": "/v1/metrics/{symbol:path}", "status": "200"}
        for s in requests
    )
    buckets = [
        s for s in fam["sentinance_api_request_duration_seconds"]
        if s.name.endswith("_bucket") and s.labels["route"] == "/v1/alerts"
    ]  # fmt: skip
    assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 1
    assert "sentinance_warehouse_published_timestamp_seconds" in fam
