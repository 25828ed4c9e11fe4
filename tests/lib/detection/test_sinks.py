"""Alert sinks: the lake file, JSON lines, and the webhook against a local HTTP server."""

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.sinks import (
    JsonlSink,
    LakeSink,
    WebhookSink,
    compact_alert_files,
)
from sentinance_assets.lib.schemas import ALERTS

T = datetime(2026, 11, 10, 12, tzinfo=UTC)


def _alerts(n: int) -> pl.DataFrame:
    return ALERTS.conform(
        pl.DataFrame(
            {
                "alert_id": [f"id{i}" for i in range(n)],
                "type": ["whale"] * n,
                "exchange": ["binance"] * n,
                "symbol": ["BTC/USDT"] * n,
                "severity": ["warning"] * n,
                "event_time": [T] * n,
                "detected_at": [T] * n,
                "value": [float(i) for i in range(n)],
                "threshold": [1e5] * n,
                "message": [f"alert {i}" for i in range(n)],
                "details": ['{"k": 1}'] * n,
            }
        )
    )


class Server:
    """127.0.0.1 server that fails the first ``fail`` requests with ``status``."""

    def __init__(self, fail: int = 0, status: int = 503, delay: float = 0.0) -> None:
        self.received: list[tuple[dict, str]] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                import time

                outer.calls += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if delay:
                    time.sleep(delay)
                if outer.calls <= fail:
                    self.send_response(status)
                    self.end_headers()
                    return
                outer.received.append((json.loads(body), self.headers["Idempotency-Key"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def make(**kw):
        s = Server(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def test_webhook_delivers_with_idempotency_key(server, tmp_path):
    srv = server()
    sink = WebhookSink(srv.url, tmp_path / "dead.jsonl", timeout=2, retries=2, backoff=0.01)
    sink.send(_alerts(3), "b")
    assert [key for _, key in srv.received] == ["id0", "id1", "id2"]
    body = srv.received[0][0]
    assert body["event_time"] == "2026-11-10T12:00:00Z" and body["details"] == {"k": 1}
    assert sink.delivered == 3 and not (tmp_path / "dead.jsonl").exists()


def test_webhook_retries_transient_errors(server, tmp_path):
    srv = server(fail=2, status=503)
    sink = WebhookSink(srv.url, tmp_path / "dead.jsonl", retries=2, backoff=0.01)
    sink.send(_alerts(1), "b")
    assert srv.calls == 3 and len(srv.received) == 1 and sink.failed == 0


def test_webhook_dead_letters_after_bounded_retries(server, tmp_path):
    srv = server(fail=100, status=500)
    dead = tmp_path / "dead.jsonl"
    sink = WebhookSink(srv.url, dead, retries=2, backoff=0.01)
    sink.send(_alerts(2), "b")
    assert srv.calls == 6  # 2 alerts x (1 + 2 retries)
    rows = [json.loads(x) for x in dead.read_text().splitlines()]
    assert [r["alert"]["alert_id"] for r in rows] == ["id0", "id1"]
    assert "500" in rows[0]["error"]


def test_webhook_client_error_is_not_retried(server, tmp_path):
    srv = server(fail=100, status=400)
    sink = WebhookSink(srv.url, tmp_path / "dead.jsonl", retries=3, backoff=0.01)
    sink.send(_alerts(1), "b")
    assert srv.calls == 1 and sink.failed == 1


def test_webhook_timeout_and_unreachable_go_to_dead_letter(server, tmp_path):
    slow = server(delay=1.0)
    sink = WebhookSink(slow.url, tmp_path / "dead.jsonl", timeout=0.2, retries=1, backoff=0.01)
    sink.send(_alerts(1), "b")
    assert sink.failed == 1
    # nothing listens on this port once the server is closed
    gone = Server()
    url = gone.url
    gone.close()
    sink2 = WebhookSink(url, tmp_path / "dead2.jsonl", timeout=0.5, retries=1, backoff=0.01)
    sink2.send(_alerts(1), "b")
    assert sink2.failed == 1 and (tmp_path / "dead2.jsonl").exists()


def test_jsonl_sink_skips_ids_already_written(tmp_path):
    path = tmp_path / "a.jsonl"
    JsonlSink(path).send(_alerts(2), "b1")
    with path.open("a") as fh:
        fh.write('{"torn": ')  # a crash mid-line must not break the next start
    JsonlSink(path).send(_alerts(3), "b2")
    ids = []
    for line in path.read_text().splitlines():
        try:
            ids.append(json.loads(line)["alert_id"])
        except ValueError:
            continue
    assert ids == ["id0", "id1", "id2"]


def test_lake_sink_writes_where_the_warehouse_view_reads(tmp_path):
    sink = LakeSink(tmp_path / "lake", folder="watch-x")
    sink.send(_alerts(2), "000-001")
    sink.send(_alerts(0), "001-002")  # empty batches write nothing
    assert [p.name for p in sink.files()] == ["000-001.parquet"]
    assert lake.read_dataset(tmp_path / "lake", ALERTS).height == 2


def _key(i: int) -> str:
    return f"{i:015d}-{i + 1:015d}"


def test_compaction_is_atomic_idempotent_and_finishes_an_interrupted_run(tmp_path):
    sink = LakeSink(tmp_path / "lake", folder="watch-x")
    a = _alerts(6)
    for i, rows in enumerate([(0, 2), (1, 3), (3, 4), (4, 6)]):  # id1 and id2 twice
        sink.send(a.slice(rows[0], rows[1] - rows[0]), _key(i))

    def ids() -> list[str]:
        return sorted(pl.concat([pl.read_parquet(f) for f in sink.files()])["alert_id"])

    assert sink.compact(upto_ms=3) == 2  # batches ending at <= 3 (the committed ones)
    assert [f.name for f in sink.files()] == [f"{_key(2)}.parquet", f"{_key(3)}.parquet"]
    assert ids() == sorted(a["alert_id"])  # nothing lost, duplicates folded away
    before = {f.name: f.read_bytes() for f in sink.files()}
    assert sink.compact(upto_ms=3) == 0  # idempotent: nothing changes
    assert {f.name: f.read_bytes() for f in sink.files()} == before
    # a crash after the merged file was written but before the old ones were deleted
    sink.send(a.slice(0, 2), _key(0))
    assert sink.compact() == 2  # upto None: everything
    assert [f.name for f in sink.files()] == [f"{_key(3)}.parquet"]
    assert ids() == sorted(a["alert_id"])
    # no temporary file is left behind and a busy folder is skipped, not waited on
    assert not [p for p in sink.root.iterdir() if p.name.endswith(".tmp")]
    sink.send(a.slice(0, 1), _key(9))
    import fcntl

    with (sink.root / ".compact.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert compact_alert_files(sink.root) == 0
    assert compact_alert_files(sink.root) == 1
