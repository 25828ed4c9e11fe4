"""Helpers shared by the lake tests (local disk and object storage): numbered rows, a DuckDB
count of a lake's trades, and a locked read-merge-write loop run in spawned processes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import RAW_TRADES


def ids(n: int, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame({"x": list(range(start, start + n))}, schema={"x": pl.Int64})


def count_trades(lake_dir: Path) -> int:
    glob = str(lake.dataset_dir(lake_dir, RAW_TRADES) / "**" / "*.parquet")
    with duckdb.connect() as conn:
        return conn.execute(f"select count(*) from read_parquet('{glob}')").fetchone()[0]


def append_locked(path: str, start: int, n: int) -> None:
    """Append rows ``start .. start+n-1`` to ``path`` one at a time, each under the file's lock."""
    target = Path(path)
    for i in range(start, start + n):
        with lake.locked(target):
            old = pl.read_parquet(target) if target.exists() else ids(0)
            lake.atomic_write_parquet(pl.concat([old, ids(1, i)]), target)
