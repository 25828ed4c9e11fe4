"""What the lake asks of its file system, and a check that a given folder provides it.

The lake's two safety rules (:mod:`lib.lake`) rest on three POSIX features: ``os.replace`` that
swaps a file atomically, **hard links** (a snapshot is a folder of links, so a reader keeps the
files it started with while writers replace them) and **``flock``** honoured between processes
(a read-merge-write holds the file's lock). A local disk has all three; so do NFS v4 and cluster
file systems, and JuiceFS, which keeps the lake's bytes in object storage (S3, GCS, Azure) and
its metadata in Redis or Postgres: that is how the lake moves to object storage with the same
code (docs/scale-out.md). FUSE mounts of a bucket such as s3fs or Mountpoint have no hard links
(snapshots then copy every file) and no lock shared between machines.

``sentinance lake check`` runs :func:`check` on the configured lake before a deployment points
its runs at it. A check on one machine cannot see whether a lock holds *between machines*; the
docs name the file systems that do.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["ok", "degraded", "fails"]

# A second process tries the lock without waiting: "free" when it got it (the lock is not
# shared between processes), "held" when it was refused.
_TRY_LOCK = (
    "import fcntl, sys\n"
    "f = open(sys.argv[1], 'a')\n"
    "try:\n"
    "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "    print('free')\n"
    "except BlockingIOError:\n"
    "    print('held')\n"
)


@dataclass(frozen=True)
class Finding:
    """One requirement of the lake and what this file system did."""

    feature: str
    status: Status
    detail: str


@contextmanager
def _scratch(lake_dir: Path) -> Iterator[Path]:
    folder = Path(lake_dir) / f".fscheck-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _atomic_replace(folder: Path) -> Finding:
    target, tmp = folder / "replace.bin", folder / ".replace.bin.tmp"
    target.write_bytes(b"old")
    with target.open("rb") as reader:  # a reader holding the old file
        tmp.write_bytes(b"new")
        try:
            os.replace(tmp, target)
        except OSError as exc:
            return Finding("atomic replace", "fails", f"os.replace failed: {exc}")
        kept = reader.read()
    if target.read_bytes() != b"new" or kept != b"old":
        return Finding(
            "atomic replace",
            "fails",
            f"after os.replace the path reads {target.read_bytes()!r} and an open reader "
            f"{kept!r} (expected b'new' and b'old')",
        )
    return Finding("atomic replace", "ok", "os.replace swaps a file; open readers keep the old one")


def _hard_links(folder: Path) -> Finding:
    src, link = folder / "file.bin", folder / "link.bin"
    src.write_bytes(b"old")
    try:
        os.link(src, link)
    except OSError as exc:
        return Finding(
            "hard links",
            "degraded",
            f"os.link failed ({exc}): every snapshot copies the lake's files instead of "
            "linking them (correct, but as slow as copying the lake per build)",
        )
    tmp = folder / ".file.bin.tmp"
    tmp.write_bytes(b"new")
    os.replace(tmp, src)
    if link.read_bytes() != b"old":
        return Finding(
            "hard links",
            "fails",
            "a link followed its path's replacement: snapshots would not keep the old files",
        )
    return Finding("hard links", "ok", "a link keeps the old file when its path is replaced")


def _flock_between_processes(folder: Path, timeout_s: float) -> Finding:
    lock_path = folder / "check.lock"
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            return Finding("flock", "fails", f"flock failed: {exc}")
        try:
            other = subprocess.run(
                [sys.executable, "-c", _TRY_LOCK, str(lock_path)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return Finding("flock", "fails", f"a non-blocking lock took over {timeout_s:.0f} s")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    answer = other.stdout.strip()
    if answer == "held":
        return Finding(
            "flock",
            "ok",
            "a lock held here refuses another process (between machines: see docs/scale-out.md)",
        )
    if answer == "free":
        return Finding(
            "flock",
            "fails",
            "another process took a lock held here: merging writers (ingest partitions in "
            "parallel, news scoring) could lose each other's rows; keep the ingest pool at 1",
        )
    return Finding("flock", "fails", f"the second process failed: {other.stderr.strip()[-300:]}")


def check(lake_dir: Path, timeout_s: float = 30.0) -> list[Finding]:
    """Try each feature the lake needs in a scratch folder under ``lake_dir`` (removed after)."""
    with _scratch(lake_dir) as folder:
        return [
            _atomic_replace(folder),
            _hard_links(folder),
            _flock_between_processes(folder, timeout_s),
        ]
