"""Retention: old raw trades, quarantine and alert files are removed so a home's disk stays
bounded; marts, models and ML outputs are never touched.

Applied daily by the ``operations/retention`` asset (``defs/operations``), which records what it
removed. Each setting keeps that many whole UTC days before today:

* ``SENTINANCE_RETAIN_TRADES_DAYS``: ``lake/raw/trades/date=<day>/``. The marts keep what was
  built from them (their dbt models are incremental); a ``--full-refresh`` would rebuild them
  from the days still in the lake only;
* ``SENTINANCE_RETAIN_QUARANTINE_DAYS``: ``lake/quarantine/<dataset>/date=<day>/``;
* ``SENTINANCE_RETAIN_ALERTS_DAYS``: the batch alerts' ``lake/alerts/alerts/date=<day>/`` and,
  in the watch loop's folders, batch files that end before the cut; the compacted file of a
  watch folder is rewritten without its older alerts (atomically, under the folder's compaction
  lock, keeping its name so the watch sensor's cursor and the loop's crash recovery hold).
"""

from __future__ import annotations

import fcntl
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.sinks import batch_span
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES
from sentinance_assets.settings import Settings


@dataclass(frozen=True)
class Removed:
    """One thing the cleanup removed: a day folder, a file, or rows of a rewritten file."""

    zone: str  # raw | quarantine | alerts
    path: str  # relative to the lake
    bytes: int
    rows: int | None = None  # rows removed from a rewritten file


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _day_folders(root: Path, before: date) -> list[Path]:
    out = []
    for folder in sorted(root.glob("date=*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue
        if day < before and folder.is_dir():
            out.append(folder)
    return out


def _drop(folder: Path, zone: str, lake_dir: Path) -> Removed:
    removed = Removed(zone, folder.relative_to(lake_dir).as_posix(), _size(folder))
    shutil.rmtree(folder)
    return removed


def cutoffs(settings: Settings, today: date) -> dict[str, date]:
    """The first day kept per zone."""
    return {
        "raw": today - timedelta(days=settings.retain_trades_days),
        "quarantine": today - timedelta(days=settings.retain_quarantine_days),
        "alerts": today - timedelta(days=settings.retain_alerts_days),
    }


def _watch_files(folder: Path, cut: datetime, lake_dir: Path) -> list[Removed]:
    """Batch files of one watch folder that end before ``cut``; the compacted file (spanning
    the cut) rewritten without the older alerts."""
    cut_ms = int(cut.timestamp() * 1000)
    removed = []
    with (folder / ".compact.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for f in sorted(folder.glob("*.parquet")):
                span = batch_span(f)
                if span is None:
                    continue
                if span[1] <= cut_ms:
                    removed.append(Removed("alerts", f.relative_to(lake_dir).as_posix(), _size(f)))
                    f.unlink()
                    continue
                if span[0] >= cut_ms:
                    continue
                frame = ALERTS.conform(pl.read_parquet(f))
                kept = frame.filter(pl.col("event_time") >= cut)
                if kept.height < frame.height:
                    before = _size(f)
                    lake.atomic_write_parquet(kept, f)
                    removed.append(
                        Removed(
                            "alerts",
                            f.relative_to(lake_dir).as_posix(),
                            max(before - _size(f), 0),
                            rows=frame.height - kept.height,
                        )
                    )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return removed


def cleanup(settings: Settings, today: date | None = None) -> list[Removed]:
    """Remove what the retention settings no longer keep; returns what was removed."""
    today = today or datetime.now(UTC).date()
    lake_dir = settings.lake_dir
    cut = cutoffs(settings, today)
    removed: list[Removed] = []
    for folder in _day_folders(lake.dataset_dir(lake_dir, RAW_TRADES), cut["raw"]):
        removed.append(_drop(folder, "raw", lake_dir))
    quarantine = lake_dir / "quarantine"
    for dataset in sorted(p for p in quarantine.glob("*") if p.is_dir()):
        for folder in _day_folders(dataset, cut["quarantine"]):
            removed.append(_drop(folder, "quarantine", lake_dir))
    alerts = lake.dataset_dir(lake_dir, ALERTS)
    for folder in _day_folders(alerts, cut["alerts"]):
        removed.append(_drop(folder, "alerts", lake_dir))
    cut_time = datetime.combine(cut["alerts"], datetime.min.time(), tzinfo=UTC)
    for folder in sorted(alerts.glob("watch-*")):
        if folder.is_dir():
            removed.extend(_watch_files(folder, cut_time, lake_dir))
    return removed


def summary(removed: list[Removed]) -> dict[str, dict[str, int]]:
    """Per zone: entries removed and bytes freed."""
    out: dict[str, dict[str, int]] = {}
    for r in removed:
        zone = out.setdefault(r.zone, {"removed": 0, "bytes": 0})
        zone["removed"] += 1
        zone["bytes"] += r.bytes
    return out
