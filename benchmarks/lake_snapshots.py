"""Readers of the lake while another process replaces its files: the live files against
snapshots (``lib/lake.py``), and what a snapshot costs.

    .venv/bin/python -m benchmarks.lake_snapshots [--seconds 10] [--files 6000]

1. A writer process replaces three day partitions in a loop (``lake.atomic_write_parquet``,
   20k-50k rows each). Meanwhile DuckDB scans them ``count(*), sum(x)`` for ``--seconds``:
   first over the live lake, then over a fresh snapshot per three scans (as a dbt build reads
   one snapshot for all its models). Prints the scans and how many failed, for each.
2. Making and removing a snapshot of ``--files`` day files (two datasets), hard links to one
   small file.

Why: the dbt build and batch detection read a snapshot so that ingest runs may overlap them
(docs/operations.md); this shows the failure that prevents and the price of preventing it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentinance_assets.lib import lake  # noqa: E402
from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_TRADES  # noqa: E402

DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")


def _frame(i: int) -> pl.DataFrame:
    n = 20_000 + (i * 7919) % 30_000
    return pl.DataFrame({"x": np.arange(n), "y": np.random.default_rng(i).random(n)})


def _writer(lake_dir: str, stop_at: float) -> None:
    i = 0
    while time.time() < stop_at:
        path = lake.partition_path(Path(lake_dir), RAW_TRADES, DAYS[i % len(DAYS)])
        lake.atomic_write_parquet(_frame(i), path)
        i += 1


def _scan(conn: duckdb.DuckDBPyConnection, lake_dir: Path) -> None:
    glob = lake.dataset_dir(lake_dir, RAW_TRADES) / "**" / "*.parquet"
    # as the warehouse views read the lake (lib/warehouse.register_lake_views)
    conn.execute(
        f"select count(*), sum(x) from read_parquet('{glob}', union_by_name = true)"
    ).fetchall()


def race(lake_dir: Path, seconds: float, snapshots: bool) -> tuple[int, int]:
    """Scans and failed scans while a writer process replaces the partitions."""
    lake.ensure_placeholders(lake_dir)  # the same files either way (a snapshot makes them)
    for i, day in enumerate(DAYS):
        lake.atomic_write_parquet(_frame(i), lake.partition_path(lake_dir, RAW_TRADES, day))
    writer = mp.get_context("spawn").Process(
        target=_writer, args=(str(lake_dir), time.time() + seconds)
    )
    writer.start()
    scans = failed = 0
    conn = duckdb.connect()
    try:
        while writer.is_alive():
            if snapshots:
                with lake.snapshot(lake_dir, [RAW_TRADES]) as snap:
                    for _ in range(3):
                        scans += 1
                        try:
                            _scan(conn, snap)
                        except duckdb.Error:
                            failed += 1
            else:
                scans += 1
                try:
                    _scan(conn, lake_dir)
                except duckdb.Error:
                    failed += 1
    finally:
        writer.join()
        conn.close()
    return scans, failed


def snapshot_cost(lake_dir: Path, files: int) -> tuple[float, float]:
    """Seconds to make and to remove a snapshot of ``files`` day files."""
    one = lake_dir / "one.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(one)
    first = date(2017, 1, 1)
    for ds in (RAW_TRADES, RAW_CANDLES):
        for i in range(files // 2):
            path = lake.partition_path(lake_dir, ds, str(first + timedelta(days=i)))
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(one, path)
    t0 = time.perf_counter()
    with lake.snapshot(lake_dir):
        made = time.perf_counter() - t0
        t1 = time.perf_counter()
    return made, time.perf_counter() - t1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each race")
    ap.add_argument("--files", type=int, default=6000, help="day files in the cost run")
    args = ap.parse_args(argv)
    for snapshots in (False, True):
        with tempfile.TemporaryDirectory(prefix="sentinance-lake-") as tmp:
            scans, failed = race(Path(tmp), args.seconds, snapshots)
        what = "through snapshots" if snapshots else "of the live files"
        print(f"DuckDB scans {what}: {scans}, failed {failed} ({failed / max(scans, 1):.1%})")
    with tempfile.TemporaryDirectory(prefix="sentinance-lake-") as tmp:
        made, removed = snapshot_cost(Path(tmp), args.files)
    print(f"snapshot of {args.files} day files: made in {made:.2f} s, removed in {removed:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
