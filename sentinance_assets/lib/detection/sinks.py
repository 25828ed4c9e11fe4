"""Where alerts go: pluggable sinks (the warehouse lake, a JSON-lines file, a webhook).

Every sink receives a batch of alerts in the ``alerts.alerts`` layout plus a ``batch_key`` that
names the batch deterministically (the watch loop uses the stream position it covers).

Delivery guarantees after a crash (kill -9) and restart:

* :class:`LakeSink` - exactly once as seen by readers that deduplicate on ``alert_id``: the file
  for a batch is written atomically under a name derived from ``batch_key``, and the watch loop
  deletes the files of batches it had not checkpointed before re-processing them.
* :class:`JsonlSink` - exactly once: it loads the ids already in the file at start and skips them.
* :class:`WebhookSink` - at least once; every POST carries ``Idempotency-Key: <alert_id>`` so the
  receiver can drop repeats. What cannot be delivered after the retries goes to the dead-letter
  file (JSON lines, with the last error) and never blocks the loop for longer than
  ``timeout * (retries + 1)`` plus the backoff.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Protocol

import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import ALERTS
from sentinance_assets.settings import default_of


class AlertSink(Protocol):
    name: str

    def send(self, alerts: pl.DataFrame, batch_key: str) -> None: ...


def alert_records(alerts: pl.DataFrame) -> list[dict]:
    """Alerts as JSON-ready dicts (times as ISO-8601 UTC, ``details`` parsed)."""
    rows = []
    for row in ALERTS.conform(alerts).iter_rows(named=True):
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = value.isoformat().replace("+00:00", "Z")
        try:
            row["details"] = json.loads(row["details"]) if row["details"] else None
        except ValueError:
            pass
        rows.append(row)
    return rows


def write_jsonl(alerts: pl.DataFrame, fh) -> int:
    n = 0
    for rec in alert_records(alerts):
        fh.write(json.dumps(rec, sort_keys=True) + "\n")
        n += 1
    return n


class LakeSink:
    """One atomically written Parquet file per batch under ``alerts/alerts/<folder>/``."""

    name = "warehouse"

    def __init__(self, lake_dir: Path, folder: str = "watch") -> None:
        self.root = lake.dataset_dir(Path(lake_dir), ALERTS) / folder

    def path_for(self, batch_key: str) -> Path:
        return self.root / f"{batch_key}.parquet"

    def send(self, alerts: pl.DataFrame, batch_key: str) -> None:
        if alerts.height:
            lake.atomic_write_parquet(ALERTS.conform(alerts), self.path_for(batch_key))

    def files(self) -> list[Path]:
        return sorted(self.root.glob("*.parquet")) if self.root.exists() else []

    def compact(self, upto_ms: int | None = None) -> int:
        return compact_alert_files(self.root, upto_ms)


def batch_span(path: Path) -> tuple[int, int] | None:
    """(start, end) stream position in epoch ms of a ``<start>-<end>.parquet`` batch file."""
    try:
        lo, hi = path.stem.split("-")
        return int(lo), int(hi)
    except ValueError:
        return None


def compact_alert_files(folder: Path, upto_ms: int | None = None) -> int:
    """Merge the batch files of a watch folder that end at or before ``upto_ms`` into one.

    Only committed batches may be compacted (``upto_ms`` = the checkpoint cursor; None = all).
    The merged file (deduplicated on ``alert_id``) is written atomically under the name of the
    newest merged batch, replacing it, and only then are the other merged files deleted: a
    reader sees every alert at any moment, at worst twice (readers deduplicate on
    ``alert_id``). The merged name keeps the stream position of its newest batch, so the
    watch loop's crash recovery (drop batches starting at or after the checkpoint) and the
    sensor's cursor (file names in stream order) still hold. A crash in between leaves a
    state that the next compaction finishes; running it again changes nothing (idempotent).
    Concurrent compactions of one folder are serialized by a lock file; a busy folder is
    skipped. Returns the number of files merged away (0 when there was nothing to do).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    with (folder / ".compact.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        try:
            files = []
            for f in sorted(folder.glob("*.parquet")):
                span = batch_span(f)
                if span is not None and (upto_ms is None or span[1] <= upto_ms):
                    files.append(f)
            if len(files) < 2:
                return 0
            merged = (
                pl.concat([ALERTS.conform(pl.read_parquet(f)) for f in files])
                .unique("alert_id", keep="first")
                .sort("event_time", "alert_id")
            )
            lake.atomic_write_parquet(merged, files[-1])
            for f in files[:-1]:
                f.unlink(missing_ok=True)
            return len(files) - 1
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class JsonlSink:
    """Appends one JSON object per alert; ids already in the file are skipped."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.seen: set[str] = set()
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                # a line torn by a crash mid-write: drop it (its alert is re-sent on restart)
                with self.path.open("r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
            with self.path.open() as fh:
                for line in fh:
                    try:
                        self.seen.add(json.loads(line)["alert_id"])
                    except (ValueError, KeyError):
                        continue  # a torn last line from a crash

    def send(self, alerts: pl.DataFrame, batch_key: str) -> None:
        fresh = alerts.filter(~pl.col("alert_id").is_in(list(self.seen)))
        if fresh.height == 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            write_jsonl(fresh, fh)
            fh.flush()
            os.fsync(fh.fileno())
        self.seen.update(fresh["alert_id"].to_list())


class WebhookSink:
    """HTTP POST of each alert as JSON, with timeout, bounded retries and a dead-letter file."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        dead_letter: Path,
        timeout: float = default_of("alert_webhook_timeout"),
        retries: int = 2,
        backoff: float = 0.2,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        self.url = url
        self.dead_letter = Path(dead_letter)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.delivered = 0
        self.failed = 0

    def _post(self, record: dict) -> None:
        body = json.dumps(record, sort_keys=True).encode()
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": record["alert_id"],
                "User-Agent": "sentinance-watch",
            },
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only
            if not 200 <= resp.status < 300:
                raise urllib.error.HTTPError(self.url, resp.status, "not 2xx", resp.headers, None)

    def send(self, alerts: pl.DataFrame, batch_key: str) -> None:
        for record in alert_records(alerts):
            error = None
            for attempt in range(self.retries + 1):
                try:
                    self._post(record)
                    error = None
                    break
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    error = exc
                    if isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500:
                        if exc.code not in (408, 429):
                            break  # a client error will not get better by retrying
                    if attempt < self.retries:
                        time.sleep(self.backoff * (2**attempt))
            if error is None:
                self.delivered += 1
                continue
            self.failed += 1
            self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
            with self.dead_letter.open("a") as fh:
                fh.write(
                    json.dumps(
                        {"url": self.url, "error": repr(error), "alert": record}, sort_keys=True
                    )
                    + "\n"
                )
