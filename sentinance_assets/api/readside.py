"""The API's one door to the data: the *published* read-only warehouse, one snapshot at a time.

Why not ``duckdb.connect(read_path, read_only=True)`` per request: opening the file costs more
than most of the API's queries. Why not one ``duckdb.connect(read_path)`` kept forever: the
publisher replaces the file atomically (``lib/warehouse.publish``), so a connection opened
before sees the old snapshot forever — and DuckDB's Python instance cache hands back that same
old instance to a new ``connect`` of the same path while any cursor on it lives.

So each published version (identified by inode, mtime and size) is attached read-only to its
own in-memory DuckDB instance, and every query runs on its own cursor of the current one.
Queries already running finish on the snapshot they started on; the old instance goes away
with its last cursor. Lake views (alerts, forecasts, raw data) read Parquet files, so new files
written by the watch loop are visible at once, without a new publication.

The alert feed is the exception to "query the view": ``alerts.alert_feed`` deduplicates every
alert file of the lake on each read, which cost 50-80 ms per query at 10k alerts. The API keeps
a copy of the view in the snapshot's in-memory database (:data:`FEED`), rebuilt from the same
view whenever the set of alert files changes (their names, sizes and mtimes, looked at no
more than every :data:`FEED_CHECK_S` seconds): same rows, same read side, a few ms per query,
with ``pos``, each alert's rank newest first, to page on.
Answers that depend only on the data (``/v1/metrics``) are memoised per data version
(:meth:`ReadSide.memo`), so they can never outlive the data they were computed from.

The API never opens ``warehouse.duckdb`` (the file dbt writes) and never writes a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from sentinance_assets.lib.warehouse import sql_str

log = logging.getLogger("sentinance.api")
T = TypeVar("T")

CATALOG = "wh"
FEED = "memory.main.alert_feed"
FEED_CHECK_S = 0.2
MEMO_MAX = 256


class DataUnavailable(RuntimeError):
    """The warehouse cannot answer; the message is safe to show to a client (503)."""


class NotPublished(DataUnavailable):
    """Nothing has been published in this home yet."""


class _Snapshot:
    """One published version attached to its own in-memory DuckDB, with its feed copy."""

    def __init__(self, key: tuple[int, int, int], conn: duckdb.DuckDBPyConnection) -> None:
        self.key = key
        self.conn = conn
        self.feed_sig: str | None = None


def _files_signature(folder: Path) -> str:
    """Names, sizes and mtimes of every Parquet file under ``folder`` (one digest)."""
    h = hashlib.sha1()
    for root, _dirs, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if name.endswith(".parquet"):
                try:
                    st = os.stat(os.path.join(root, name))
                except FileNotFoundError:
                    continue  # replaced between listing and stat: the next check sees it
                h.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


class ReadSide:
    """Parameterised read-only queries on the published warehouse of one home."""

    def __init__(self, read_path: Path, alerts_dir: Path | None = None) -> None:
        self.read_path = Path(read_path)
        self.alerts_dir = alerts_dir
        self._lock = threading.Lock()
        self._feed_lock = threading.Lock()
        self._current: _Snapshot | None = None
        self._feed_checked = 0.0
        self._alerts_sig = ""
        self._memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._memo_version: tuple[Any, ...] | None = None

    # ------------------------------------------------------------------ snapshot
    def version(self) -> tuple[int, int, int] | None:
        """(inode, mtime_ns, size) of the published file; ``None`` when there is none."""
        try:
            st = os.stat(self.read_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def published_at(self) -> float | None:
        """When the read side was last published (epoch seconds)."""
        try:
            return self.read_path.stat().st_mtime
        except FileNotFoundError:
            return None

    def _snapshot(self) -> _Snapshot:
        key = self.version()
        if key is None:
            raise NotPublished(
                "the warehouse has not been published yet: run `sentinance demo` (or let the "
                "service materialize the graph) first"
            )
        with self._lock:
            if self._current is None or self._current.key != key:
                # one thread per query: requests run side by side on two cores
                conn = duckdb.connect(":memory:", config={"threads": 1})
                try:
                    conn.execute(f"ATTACH {sql_str(str(self.read_path))} AS {CATALOG} (READ_ONLY)")
                except duckdb.Error:
                    conn.close()
                    raise
                self._current = _Snapshot(key, conn)
            snap = self._current
        self._refresh_feed(snap)
        return snap

    def _refresh_feed(self, snap: _Snapshot) -> None:
        """Rebuild the snapshot's copy of the alert feed when the alert files changed."""
        now = time.monotonic()
        if snap.feed_sig is not None and now - self._feed_checked < FEED_CHECK_S:
            return
        with self._feed_lock:
            now = time.monotonic()
            if snap.feed_sig is None or now - self._feed_checked >= FEED_CHECK_S:
                if self.alerts_dir is not None:
                    self._alerts_sig = _files_signature(self.alerts_dir)
                self._feed_checked = now
            if snap.feed_sig != self._alerts_sig:
                cur = snap.conn.cursor()
                try:
                    # pos: rank newest first; ordering by one integer is 4x cheaper than by
                    # (event_time desc, alert_id), the order it stands for
                    cur.execute(
                        f"CREATE OR REPLACE TABLE {FEED} AS SELECT row_number() OVER "
                        "(ORDER BY event_time DESC, alert_id) AS pos, * "
                        f"FROM {CATALOG}.alerts.alert_feed ORDER BY pos"
                    )
                finally:
                    cur.close()
                snap.feed_sig = self._alerts_sig

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self._snapshot().conn.cursor()
        cur.execute(f"USE {CATALOG}; SET TimeZone = 'UTC'")
        return cur

    def data_version(self) -> tuple[Any, ...]:
        """What every answer depends on: the published file and the alert files."""
        snap = self._snapshot()
        return (snap.key, snap.feed_sig)

    def memo(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, remembered for ``key`` until the data version changes."""
        version = self.data_version()
        with self._lock:
            if self._memo_version != version:
                self._memo.clear()
                self._memo_version = version
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = compute()
        with self._lock:
            if self._memo_version == version:
                self._memo[key] = value
                while len(self._memo) > MEMO_MAX:
                    self._memo.popitem(last=False)
        return value

    # ------------------------------------------------------------------ queries
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of one parameterised statement as dicts (column name -> value).

        Retries briefly when the published file or a lake file is replaced under the query;
        raises :class:`DataUnavailable` with a client-safe message otherwise.
        """
        last: Exception | None = None
        for attempt in range(3):
            try:
                cur = self._cursor()
                try:
                    cur.execute(sql, list(params))
                    names = [d[0] for d in cur.description or []]
                    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                finally:
                    cur.close()
            except NotPublished:
                raise
            except (duckdb.IOException, duckdb.InvalidInputException, OSError) as exc:
                # the published copy or a lake file was replaced while we read it: try again
                last = exc
                with self._lock:
                    self._current = None  # reopen: the file may have been replaced
                time.sleep(0.05 * (attempt + 1))
            except duckdb.CatalogException as exc:
                log.warning("warehouse query failed: %s", exc)
                raise DataUnavailable(
                    "a table this endpoint needs is not in the warehouse yet: materialize the "
                    "asset graph (`sentinance demo`)"
                ) from exc
            except duckdb.Error as exc:
                last = exc
                break
        log.warning("warehouse query failed: %s: %s", type(last).__name__, last)
        raise DataUnavailable(
            "the warehouse could not answer right now (it may be being refreshed); retry shortly"
        ) from last

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None
