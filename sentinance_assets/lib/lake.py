"""The lake: Parquet files under ``<home>/lake``, one folder per dataset.

Every Python writer (ingest, ML, detectors, the watch loop) lands its output here rather than
in the DuckDB file, and always atomically (write a temporary file beside the target, then
``os.replace``). That is what makes concurrent use safe by construction: DuckDB allows one
writing process per database file, but any number of processes may read Parquet files that
never change once visible. The warehouse exposes each dataset as a view over its files.

Two rules make runs that write the lake safe to run side by side (issue #20: ingest partitions
in parallel under Dagster's pools):

* **Readers of many files read a snapshot** (:func:`snapshot`). A reader that opens a file
  more than once (DuckDB: metadata, then row groups, from several threads) can meet the old
  file the first time and its replacement the next, and fails ("Invalid data"; about one
  DuckDB scan in ten did while another process replaced partitions in a loop:
  ``benchmarks/lake_snapshots.py``). The dbt build therefore
  reads hard links to the files as they were when it started: a replaced path gets a new
  inode, the link keeps the old one, and the link is removed when the build ends.
* **Writers that read, merge and write a file hold its lock** (:func:`locked`), so two runs
  landing the same day cannot lose each other's rows.

Both rest on the lake's file system (atomic replace, hard links, ``flock``):
:mod:`lib.lake_filesystem` checks a mount for them (``sentinance lake check``).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import polars as pl

from sentinance_assets.lib.schemas import ALL_DATASETS, Dataset

log = logging.getLogger(__name__)

PLACEHOLDER = "_empty.parquet"
SNAPSHOTS = ".snapshots"  # under the lake: hard links need the same file system


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


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the writers' lock of one lake file (``.<name>.lock`` beside it) for a
    read-merge-write of that file. An advisory ``flock``: released when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _link(src: Path, dst: Path) -> Literal["linked", "copied", "gone"]:
    """Hard-link ``src`` to ``dst``: ``"linked"``, ``"copied"`` where the file system has no
    hard links (``sentinance lake check`` says so beforehand), or ``"gone"`` when ``src`` is.
    ``link`` fails with ENOENT when a concurrent ``os.replace`` drops the inode it found (the
    path itself always exists): looked up again, the path names the new file."""
    for _ in range(50):
        try:
            os.link(src, dst)
            return "linked"
        except FileNotFoundError:
            if not src.exists():
                return "gone"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            try:
                shutil.copyfile(src, dst)  # a whole file, old or new: os.replace is atomic
            except FileNotFoundError:
                return "gone"
            return "copied"
    raise OSError(f"could not link {src}: replaced 50 times meanwhile")


STALE_ORPHAN_S = 86_400.0


def _drop_stale_snapshots(root: Path) -> None:
    """Remove the snapshots no living process holds (their owner ended or was killed), and any
    folder a day old whose lock file is gone (a cleanup that raced with its creation)."""
    for folder in root.iterdir():
        if folder.is_dir() and not (root / f"{folder.name}.lock").exists():
            try:
                orphan = time.time() - folder.stat().st_mtime > STALE_ORPHAN_S
            except FileNotFoundError:  # removed by another cleanup meanwhile
                continue
            if orphan:
                shutil.rmtree(folder, ignore_errors=True)
    for lock_path in root.glob("*.lock"):
        with lock_path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            shutil.rmtree(root / lock_path.stem, ignore_errors=True)
            lock_path.unlink(missing_ok=True)


@contextmanager
def _held_lock(root: Path) -> Iterator[str]:
    """A new snapshot name whose lock file this process holds. A cleanup in another process
    may remove a lock file between its creation and the ``flock``: then the lock held is of a
    file no longer there, and another name is tried."""
    while True:
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        path = root / f"{name}.lock"
        with path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                still_there = os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino
            except FileNotFoundError:
                still_there = False
            if still_there:
                yield name
                return


@contextmanager
def snapshot(lake_dir: Path, datasets: Sequence[Dataset] = ALL_DATASETS) -> Iterator[Path]:
    """A lake folder of hard links to the files of ``datasets`` (all) as they are now, valid
    until the block ends: what a reader scanning many files reads while other runs write (module
    docstring). Same layout as the lake (``dataset_dir`` works on it); costs one link per file.
    Its lock is held while it lives, so a snapshot left by a killed process is removed by the
    next one."""
    lake_dir = Path(lake_dir)
    ensure_placeholders(lake_dir)
    root = lake_dir / SNAPSHOTS
    root.mkdir(parents=True, exist_ok=True)
    _drop_stale_snapshots(root)
    with _held_lock(root) as name:
        target = root / name
        try:
            copied = 0
            for ds in datasets:
                src_root = dataset_dir(lake_dir, ds)
                for src in sorted(src_root.rglob("*.parquet")):
                    dst = dataset_dir(target, ds) / src.relative_to(src_root)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    copied += _link(src, dst) == "copied"
            if copied:
                log.warning(
                    "no hard links in the lake's file system: the snapshot copied %d files "
                    "(`sentinance lake check`; docs/scale-out.md)",
                    copied,
                )
            yield target
        finally:
            shutil.rmtree(target, ignore_errors=True)
            (root / f"{name}.lock").unlink(missing_ok=True)
