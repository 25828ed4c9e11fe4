"""Batch detection day by day: only the days whose trades changed are read again.

The batch asset used to read every stored trade on every run, so its cost grew with history.
Now each UTC day of ``raw.trades`` (one file, ``date=<day>/part.parquet``) has its alerts in
``alerts/alerts/date=<day>/batch.parquet`` plus a small record of the input it was computed
from (``_batch_input.json``: the size and modification time of that day's trades file and of
the previous day's). A run re-detects a day when that record no longer matches, so a live
refresh of today reads today (and the warm-up of yesterday), whatever the history holds.

Warm-up: the window rules look back at most an hour (volume baseline) and carry state for a
few buckets, so each day is detected over its own trades plus the last :data:`WARM_UP` of the
previous day, and only the alerts whose event time falls in the day are kept. On the simulated
market this gives exactly the alerts of one pass over the whole history (tests/defs/
test_detection.py compares them).

Plain functions (no definitions): ``assets.py`` calls them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES

WARM_UP = timedelta(hours=3)
INPUT_RECORD = "_batch_input.json"
BATCH_PART = "batch"
LEGACY_FILE = "batch.parquet"  # the former single file over the whole history

Detect = Callable[[pl.DataFrame], pl.DataFrame]


def _stamp(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}"


def trade_days(lake_dir: Path) -> dict[str, Path]:
    """{day: trades file} of every stored day."""
    root = lake.dataset_dir(lake_dir, RAW_TRADES)
    days: dict[str, Path] = {}
    for path in sorted(root.glob("date=*/*.parquet")):
        if path.name != lake.PLACEHOLDER:
            days.setdefault(path.parent.name.removeprefix("date="), path)
    return days


def _input_of(day: str, files: dict[str, Path]) -> dict[str, str | None]:
    previous = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    return {
        day: _stamp(files[day]),
        previous: _stamp(files[previous]) if previous in files else None,
    }


def day_dir(lake_dir: Path, day: str) -> Path:
    return lake.dataset_dir(lake_dir, ALERTS) / f"date={day}"


def stale_days(lake_dir: Path) -> list[str]:
    """The days whose alerts are missing or were computed from other trades than now."""
    files = trade_days(lake_dir)
    out = []
    for day in files:
        record = day_dir(lake_dir, day) / INPUT_RECORD
        try:
            done = json.loads(record.read_text())
        except (OSError, ValueError):
            done = None
        now = _input_of(day, files)
        # a previous day removed since (retention) changes nothing that was detected
        if done is None or any(v is not None and done.get(k) != v for k, v in now.items()):
            out.append(day)
    return out


def _day_bounds(day: str) -> tuple[datetime, datetime]:
    d = date.fromisoformat(day)
    lo = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return lo, lo + timedelta(days=1)


def day_trades(files: dict[str, Path], day: str) -> pl.DataFrame:
    """The day's trades plus the previous day's last :data:`WARM_UP`."""
    lo, _ = _day_bounds(day)
    frames = [RAW_TRADES.conform(pl.read_parquet(files[day]))]
    previous = (lo.date() - timedelta(days=1)).isoformat()
    if previous in files:
        tail = pl.scan_parquet(files[previous]).filter(pl.col("ts") >= lo - WARM_UP).collect()
        frames.insert(0, RAW_TRADES.conform(tail))
    return pl.concat(frames, how="vertical")


@dataclass
class BatchRun:
    """What one run of the batch asset did."""

    days: list[str] = field(default_factory=list)
    trades_scanned: int = 0
    alerts: pl.DataFrame = field(default_factory=ALERTS.empty)
    stored_days: int = 0


def detect_stale_days(lake_dir: Path, detect: Detect) -> BatchRun:
    """Re-detect every stale day (:func:`stale_days`) with ``detect`` and store its alerts."""
    legacy = lake.dataset_dir(lake_dir, ALERTS) / LEGACY_FILE
    files = trade_days(lake_dir)
    run = BatchRun(stored_days=len(files))
    found = []
    for day in stale_days(lake_dir):
        expected = _input_of(day, files)  # before reading: a change while we read stays stale
        trades = day_trades(files, day)
        lo, hi = _day_bounds(day)
        alerts = detect(trades).filter((pl.col("event_time") >= lo) & (pl.col("event_time") < hi))
        lake.write_partition(lake_dir, ALERTS, alerts, partition=day, part=BATCH_PART)
        _write_record(day_dir(lake_dir, day) / INPUT_RECORD, expected)
        run.days.append(day)
        run.trades_scanned += trades.height
        found.append(alerts)
    if found:
        run.alerts = pl.concat(found, how="vertical")
    legacy.unlink(missing_ok=True)  # its alerts are in the day files now
    return run


def _write_record(path: Path, record: dict[str, str | None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    tmp.replace(path)
