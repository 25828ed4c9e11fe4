"""``GET /v1/alerts``: the contract, every filter and the keyset pagination, each checked
against SQL on the published warehouse (``alerts.alert_feed``, the app's feed)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.api.conftest import T0, iso, sql

FEED = """
select alert_id, type, exchange, symbol, severity, value, threshold, details, event_time,
       detected_at, message, rules_version
from alerts.alert_feed {where} order by event_time desc, alert_id
"""
FIELDS = {
    "alert_id", "type", "exchange", "symbol", "severity", "value", "threshold", "details",
    "event_time", "detected_at", "message", "rules_version",
}  # fmt: skip


def expected(home, where: str = "", params: list[Any] | None = None) -> list[dict[str, Any]]:
    return sql(home, FEED.format(where=where), params)


def walk(api, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every page, following next_cursor."""
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        page = api.get(
            "/v1/alerts", limit=limit, **params, **({"cursor": cursor} if cursor else {})
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["count"] == len(body["alerts"]) <= limit
        out += body["alerts"]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return out
        cursor = body["next_cursor"]
    raise AssertionError("pagination did not end")


def test_first_page_matches_the_feed_field_by_field(api, api_home):
    body = api.get("/v1/alerts").json()
    rows = expected(api_home)
    assert body["count"] == 50 and body["has_more"] is True and body["next_cursor"]
    assert [a["alert_id"] for a in body["alerts"]] == [r["alert_id"] for r in rows[:50]]
    for got, row in zip(body["alerts"], rows, strict=False):
        assert set(got) == FIELDS
        assert got["event_time"] == iso(row["event_time"])
        assert got["detected_at"] == iso(row["detected_at"])
        for key in ("type", "exchange", "symbol", "severity", "message", "rules_version"):
            assert got[key] == row[key]
        assert got["value"] == pytest.approx(row["value"])
        assert got["details"] == json.loads(row["details"])


def test_pages_walk_the_whole_feed_once_in_order_across_tied_times(api, api_home):
    rows = expected(api_home)
    ids = [a["alert_id"] for a in walk(api, 7)]
    assert ids == [r["alert_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    times = [r["event_time"] for r in rows]
    assert len(set(times)) < len(times)  # the fixture does have ties to break


def test_the_feed_keeps_the_first_detection_of_a_redetected_alert(api, api_home):
    got = [a for a in walk(api, 200) if a["alert_id"] == "t1000"]
    assert len(got) == 1 and got[0]["message"] != "again"


def test_a_nan_value_is_null_not_an_error(api):
    nan = [a for a in walk(api, 200) if a["alert_id"] == "t0900"][0]
    assert nan["value"] is None
    assert nan["details"] == {"ratio": None, "note": "a NaN in the numbers"}


@pytest.mark.parametrize(
    ("params", "where", "args"),
    [
        ({"type": "whale"}, "where type = ?", ["whale"]),
        (
            {"type": ["whale", "divergence"]},
            "where type in (?, ?)",
            ["whale", "divergence"],
        ),
        ({"symbol": "BTC/USDT"}, "where symbol = ?", ["BTC/USDT"]),
        ({"symbol": "eth-usd"}, "where symbol = ?", ["ETH/USD"]),
        ({"symbol": "BTC"}, "where split_part(symbol, '/', 1) = ?", ["BTC"]),
        ({"exchange": "coinbase"}, "where exchange = ?", ["coinbase"]),
        ({"severity": "critical"}, "where severity = ?", ["critical"]),
        (
            {"type": "whale", "symbol": "ETH", "severity": ["info", "warning"]},
            "where type = ? and split_part(symbol, '/', 1) = ? and severity in (?, ?)",
            ["whale", "ETH", "info", "warning"],
        ),
        (
            {"since": "2026-11-14T22:00:00Z", "until": "2026-11-14T23:00:00+00:00"},
            "where event_time >= ? and event_time < ?",
            ["2026-11-14 22:00:00+00", "2026-11-14 23:00:00+00"],
        ),
        (
            {"since": str(int((T0.timestamp() + 3600) * 1000))},  # epoch milliseconds
            "where event_time >= ?",
            ["2026-11-14 22:00:00+00"],
        ),
        ({"type": "no-such-type"}, "where type = ?", ["no-such-type"]),
    ],
)
def test_filters_match_sql(api, api_home, params, where, args):
    rows = expected(api_home, where, args)
    got = walk(api, 11, **params)
    assert [a["alert_id"] for a in got] == [r["alert_id"] for r in rows]


def test_limit_default_and_caps(api):
    assert api.get("/v1/alerts").json()["count"] == 50
    assert api.get("/v1/alerts", limit=200).json()["count"] <= 200
    for bad in (0, 201, -1, "x"):
        r = api.get("/v1/alerts", limit=bad)
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "invalid_request" and "limit" in body["message"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"cursor": "not-a-cursor"}, "invalid cursor"),
        ({"since": "yesterday"}, "is not a time"),
        ({"since": "2026-11-15", "until": "2026-11-14"}, "must be before"),
        ({"symbol": "BTC/USDT/EXTRA"}, "is not an asset"),
    ],
)
def test_bad_input_is_a_clear_400(api, params, words):
    r = api.get("/v1/alerts", **params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert words in r.json()["message"]


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} in the JSON")


def test_numbers_are_finite_json(api):
    text = api.get("/v1/alerts", limit=200).text
    for alert in json.loads(text, parse_constant=_no_constants)["alerts"]:
        assert alert["value"] is None or math.isfinite(alert["value"])
