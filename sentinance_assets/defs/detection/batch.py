"""Batch detection day by day: only the days whose trades changed are read again.

The batch asset used to read every stored trade on every run, so its cost grew with history.
Now each UTC day of ``raw.trades`` (one file, ``date=<day>/part.parquet``) has its alerts in
``alerts/alerts/date=<day>/batch.parquet`` plus a small record of the input it was computed
from (``_batch_input.json``: the size and modification time of that day's trades file and of
the previous day's). A run re-detects a day when that record no longer matches, so a live
refresh of today reads today (and the warm-up of yesterday), whatever the history holds.

Each day is detected over its own trades plus a warm-up from the day before
(``lib/detection/days.py``). The stale days are detected here one after another, or all at
once by a ``DetectMany`` such as ``lib.spark_detection.detect_days_on_spark`` (a backfill on
Spark, partitioned by base asset and day); either way each day is stored as soon as known.

Plain functions (no definitions): ``assets.py`` calls them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.days import (
    WARM_UP,
    Detect,
    day_bounds,
    detect_day,
    in_day,
    previous_day,
)
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES

INPUT_RECORD = "_batch_input.json"
BATCH_PART = "batch"
LEGACY_FILE = "batch.parquet"  # the former single file over the whole history

#: (trade files by day, the days to detect) -> (the alerts of those days, trades scanned)
DetectMany = Callable[[dict[str, Path], list[str]], tuple[pl.DataFrame, int]]


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
    previous = previous_day(day)
    return {
        day: _stamp(files[day]),
        previous: _stamp(files[previous]) if previous in files else None,
    }


def day_dir(lake_dir: Path, day: str) -> Path:
    return lake.dataset_dir(lake_dir, ALERTS) / f"date={day}"


def stale_days(lake_dir: Path, files: dict[str, Path] | None = None) -> list[str]:
    """The days whose alerts are missing or were computed from other trades than now
    (``files``: the trade files to judge, :func:`trade_days` of the lake by default)."""
    files = trade_days(lake_dir) if files is None else files
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


def day_trades(files: dict[str, Path], day: str) -> pl.DataFrame:
    """The day's trades plus the previous day's last :data:`WARM_UP`."""
    lo, _ = day_bounds(day)
    frames = [RAW_TRADES.conform(pl.read_parquet(files[day]))]
    previous = previous_day(day)
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


def detect_stale_days(lake_dir: Path, detect: Detect, many: DetectMany | None = None) -> BatchRun:
    """Re-detect every stale day (:func:`stale_days`) and store its alerts: one day at a time
    with ``detect``, or all stale days in one call of ``many`` (a Spark backfill)."""
    legacy = lake.dataset_dir(lake_dir, ALERTS) / LEGACY_FILE
    # the trades are read through a snapshot (hard links: same stamps), so an ingest run that
    # replaces a day meanwhile neither breaks a reader nor mixes two versions of that day
    with lake.snapshot(lake_dir, [RAW_TRADES]) as snap:
        files = trade_days(snap)
        run = BatchRun(stored_days=len(files))
        found = []
        stale = stale_days(lake_dir, files)
        expected = {day: _input_of(day, files) for day in stale}

        def store(day: str, alerts: pl.DataFrame) -> None:
            lake.write_partition(lake_dir, ALERTS, alerts, partition=day, part=BATCH_PART)
            _write_record(day_dir(lake_dir, day) / INPUT_RECORD, expected[day])
            run.days.append(day)
            found.append(alerts)

        if many is not None and stale:
            alerts, run.trades_scanned = many(files, stale)
            for day in stale:
                store(day, in_day(alerts, day))
        else:
            for day in stale:
                trades = day_trades(files, day)
                store(day, detect_day(trades, day, detect))
                run.trades_scanned += trades.height
    if found:
        run.alerts = pl.concat(found, how="vertical")
    legacy.unlink(missing_ok=True)  # its alerts are in the day files now
    return run


def _write_record(path: Path, record: dict[str, str | None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    tmp.replace(path)
