"""Safe by default: the API key, the loopback-only bind without one, the rate limit, the body
limit, CORS, and errors that are JSON without a stack trace.

The strict server allows 5 requests a minute per client address; each test speaks from its own
loopback address (127.0.0.N), so each has a full allowance and none waits for a refill.
"""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests.api.conftest import API_KEY, CORS_ORIGIN, SENTINANCE

KEY = {"X-API-Key": API_KEY}


def client(server, n: int) -> httpx.Client:
    """A client whose requests come from 127.0.0.``n``."""
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{n}")
    return httpx.Client(base_url=server.url, transport=transport, timeout=30)


def test_v1_and_metrics_need_the_key(strict_api):
    with client(strict_api, 11) as c:
        for path in ("/v1/alerts", "/v1/markets", "/metrics"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/alerts", headers={"X-API-Key": API_KEY + "x"}).status_code == 401
        bad = {"Authorization": "Basic " + API_KEY}
        assert c.get("/v1/alerts", headers=bad).status_code == 401


def test_the_key_opens_v1_either_way_and_probes_stay_open(strict_api):
    with client(strict_api, 12) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/ready").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        r = c.get("/v1/alerts?limit=1", headers=KEY)
        assert r.status_code == 200, r.text
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        assert c.get("/metrics", headers=bearer).status_code == 200


def test_rate_limit_headers_then_429_with_retry_after_per_client(strict_api):
    with client(strict_api, 13) as c:
        seen = [c.get("/ready") for _ in range(6)]
        assert [r.status_code for r in seen] == [200] * 5 + [429]
        assert seen[0].headers["x-ratelimit-limit"] == "5"
        assert [int(r.headers["x-ratelimit-remaining"]) for r in seen[:5]] == [4, 3, 2, 1, 0]
        assert 0 < int(seen[4].headers["x-ratelimit-reset"]) <= 60
        refused = seen[-1]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "rate_limited"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert all(c.get("/health").status_code == 200 for _ in range(10))  # exempt
    with client(strict_api, 14) as other:
        assert other.get("/ready").status_code == 200  # another client, its own allowance


def test_oversized_bodies_are_refused(strict_api):
    with client(strict_api, 15) as c:
        r = c.post("/v1/sentiment", json={"texts": ["x" * 3000]}, headers=KEY)
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"

        def chunks():
            yield b'{"texts": ["'
            for _ in range(10):
                yield b"y" * 500
            yield b'"]}'

        headers = {**KEY, "content-type": "application/json"}
        assert c.post("/v1/sentiment", content=chunks(), headers=headers).status_code == 413
        small = c.post("/v1/sentiment", json={"texts": ["fine"]}, headers=KEY)
        assert small.status_code == 200


def test_too_many_texts_is_a_clear_400(strict_api):
    with client(strict_api, 16) as c:
        r = c.post("/v1/sentiment", json={"texts": ["a"] * 4}, headers=KEY)
        assert r.status_code == 400 and "at most 3" in r.json()["message"]


def test_cors_only_for_the_configured_origin(strict_api, api):
    pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"}
    with client(strict_api, 17) as c:
        r = c.options("/v1/alerts", headers={"Origin": CORS_ORIGIN, **pre})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == CORS_ORIGIN
        r = c.options("/v1/alerts", headers={"Origin": "https://evil.test", **pre})
        assert r.headers.get("access-control-allow-origin") is None
    r = api.client.get("/health", headers={"Origin": CORS_ORIGIN})  # CORS off by default
    assert "access-control-allow-origin" not in r.headers


def test_binding_beyond_loopback_needs_a_key(api_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINANCE_")}
    env["SENTINANCE_HOME"] = str(api_home)
    r = subprocess.run(
        [SENTINANCE, "api", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "without an API key" in r.stderr and "SENTINANCE_API_KEY" in r.stderr


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/no/such/path"), ("DELETE", "/v1/alerts"), ("GET", "/v1/alerts?limit=nope")],
)
def test_errors_are_json_without_traces(api, method, path):
    r = api.client.request(method, path)
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) >= {"error", "message"}
    assert "Traceback" not in r.text and 'File "' not in r.text
