"""``GET /v1/alerts/stream``: an alert written by the watch loop reaches a connected client
within a second; Last-Event-ID resumes in detection order; filters apply to the stream."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.api.conftest import SENTINANCE, sql

ORDER = """
select alert_id, type, detected_at from alerts.alert_feed order by detected_at, alert_id
"""


class Listener(threading.Thread):
    """Reads one event stream in the background; each event with the time it arrived."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.params = url, headers or {}, params
        self.events: list[tuple[float, dict[str, str]]] = []
        self.connected = threading.Event()
        self.status: int | None = None
        self.error: Exception | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=None))

    def run(self) -> None:
        try:
            with self._client.stream(
                "GET", self.url, headers=self.headers, params=self.params
            ) as r:
                self.status = r.status_code
                self.connected.set()
                event: dict[str, str] = {}
                for line in r.iter_lines():
                    if not line:
                        if event:
                            self.events.append((time.time(), event))
                            event = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        event[key] = value.removeprefix(" ")
        except Exception as exc:  # noqa: BLE001 - closed by the test, or a real failure
            self.error = exc
            self.connected.set()

    def alerts(self) -> list[tuple[float, dict[str, Any]]]:
        return [
            (t, json.loads(e["data"])) for t, e in list(self.events) if e.get("event") == "alert"
        ]

    def ids(self) -> list[str]:
        return [e["id"] for _, e in list(self.events) if e.get("event") == "alert"]

    def wait_for(self, pred, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, alert in self.alerts():
                if pred(alert):
                    return t, alert
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; got {self.ids()}")

    def close(self) -> None:
        self._client.close()


@pytest.fixture
def listen(api):
    opened: list[Listener] = []

    def start(headers: dict[str, str] | None = None, **params: Any) -> Listener:
        listener = Listener(api.url + "/v1/alerts/stream", headers, **params)
        listener.start()
        assert listener.connected.wait(30)
        assert listener.status == 200, listener.error
        opened.append(listener)
        return listener

    yield start
    for listener in opened:
        listener.close()


def position(row: dict[str, Any]) -> str:
    return f"{round(row['detected_at'].timestamp() * 1_000_000)}-{row['alert_id']}"


def test_an_alert_from_the_watch_loop_arrives_within_a_second(api, api_home, listen, tmp_path):
    live = listen()
    time.sleep(0.5)  # the hub has taken its position
    trades = tmp_path / "trades.csv"
    trades.write_text(
        "exchange,symbol,trade_id,timestamp,price,amount,side\n"
        "binance,BTC/USDT,w1,2026-11-16T00:00:00Z,60000,0.01,buy\n"
        "binance,BTC/USDT,w2,2026-11-16T00:00:01Z,60000,12.5,sell\n"
        "binance,BTC/USDT,w3,2026-11-16T00:00:02Z,60001,0.02,buy\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINANCE_")}
    env["SENTINANCE_HOME"] = str(api_home)
    run = subprocess.run(
        [SENTINANCE, "watch", "--trades", str(trades), "--speed", "0", "--name", "apitest",
         "--quiet"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    received, alert = live.wait_for(
        lambda a: a["type"] == "whale" and a["details"].get("trade_id") == "w2",
        30,
        "the watch loop's whale alert",
    )
    detected = datetime.fromisoformat(alert["detected_at"].replace("Z", "+00:00")).timestamp()
    assert received - detected < 1.0, f"delivered {received - detected:.3f} s after detection"
    assert alert["exchange"] == "binance" and alert["symbol"] == "BTC/USDT"
    # only new alerts: nothing that was in the feed before the client connected
    assert [a["details"].get("trade_id") for _, a in live.alerts()] == ["w2"]
    (row,) = sql(
        api_home, "select alert_id from alerts.alert_feed where alert_id = ?", [alert["alert_id"]]
    )
    assert row  # the same feed the app reads


def test_last_event_id_resumes_in_detection_order(api_home, listen):
    rows = sql(api_home, ORDER)
    start = len(rows) - 6
    resumed = listen({"Last-Event-ID": position(rows[start])})
    want = [position(r) for r in rows[start + 1 :]]
    deadline = time.monotonic() + 15
    while len(resumed.ids()) < len(want) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resumed.ids()[: len(want)] == want
    # the query-parameter form, for clients that cannot set the header
    again = listen(last_event_id=position(rows[start]))
    deadline = time.monotonic() + 15
    while len(again.ids()) < len(want) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert again.ids()[: len(want)] == want


def test_stream_filters(api_home, listen):
    rows = sql(api_home, ORDER)
    want = [position(r) for r in rows if r["type"] == "divergence"]
    first = f"0-{'0' * 8}"  # before everything: the whole feed as backlog
    filtered = listen(type="divergence", last_event_id=first)
    deadline = time.monotonic() + 15
    while len(filtered.ids()) < len(want) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert filtered.ids() == want and want


def test_a_bad_last_event_id_is_a_400(api):
    r = api.get("/v1/alerts/stream", last_event_id="garbage")
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["message"]
