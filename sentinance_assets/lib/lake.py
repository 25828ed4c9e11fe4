"""The lake: Parquet files under ``<home>/lake``, one folder per dataset.

Every Python writer (ingest, ML, detectors, the watch loop) lands its output here rather than
in the DuckDB file, and always atomically (write a temporary file beside the target, then
``os.replace``). That is what makes concurrent use safe by construction: DuckDB allows one
writing process per database file, but any number of processes may read Parquet files that
never change once visible. The warehouse exposes each dataset as a view over its files.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl

from sentinance_assets.lib.schemas import ALL_DATASETS, Dataset

PLACEHOLDER = "_empty.parquet"


def dataset_dir(lake_dir: Path, ds: Dataset) -> Path:
    return Path(lake_dir) / ds.schema / ds.name


def partition_path(lake_dir: Path, ds: Dataset, partition: str | None, part: str = "part") -> Path:
    base = dataset_dir(lake_dir, ds)
    if partition is not None:
        base = base / f"date={partition}"
    return base / f"{part}.parquet"


def atomic_write_parquet(df: pl.DataFrame, path: Path) -> Path:
    """Write ``df`` to ``path`` so that readers see either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        df.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_partition(
    lake_dir: Path,
    ds: Dataset,
    df: pl.DataFrame,
    partition: str | None = None,
    part: str = "part",
) -> Path:
    """Replace one partition (or the unpartitioned ``part``) of a dataset with ``df``.

    Re-running a partition therefore replaces it rather than appending: idempotent by
    construction.
    """
    return atomic_write_parquet(ds.conform(df), partition_path(lake_dir, ds, partition, part))


def data_files(lake_dir: Path, ds: Dataset) -> list[Path]:
    root = dataset_dir(lake_dir, ds)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*.parquet") if p.name != PLACEHOLDER)


def read_dataset(lake_dir: Path, ds: Dataset) -> pl.DataFrame:
    """All rows of a dataset (an empty frame with the declared columns when there are none)."""
    files = data_files(lake_dir, ds)
    if not files:
        return ds.empty()
    return pl.concat([ds.conform(pl.read_parquet(f)) for f in files], how="vertical")


def ensure_placeholders(lake_dir: Path) -> None:
    """Give every dataset an empty typed file so its warehouse view can always be created.

    A placeholder written by an older release with fewer columns is rewritten: the views read
    the files ``union_by_name``, so the placeholder is what guarantees every declared column
    exists (older data files then read as nulls in the new columns) even before a new-shape
    partition has been written.
    """
    for ds in ALL_DATASETS:
        placeholder = dataset_dir(lake_dir, ds) / PLACEHOLDER
        if not placeholder.exists() or pl.read_parquet_schema(placeholder) != ds.empty().schema:
            atomic_write_parquet(ds.empty(), placeholder)
