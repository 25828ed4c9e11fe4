"""The lake in object storage through a POSIX mount: a local S3 server (moto, 127.0.0.1) mounted
with s3fs, the layer that has no hard links (docs/scale-out.md#the-lake). What must hold there:
the file-system check says "degraded", a landed day is an object in the bucket, a snapshot
copies and keeps a reader's files while a writer replaces them, and locked read-merge-writes
from two processes lose no rows (s3fs keeps ``flock`` per machine, which is all one machine
needs). Skips with the reason when s3fs, FUSE or the moto server is not installed here
(``.ci/run`` installs them)."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib.lake_filesystem import check
from sentinance_assets.lib.schemas import RAW_TRADES
from tests.lib.lake_rows import append_locked, count_trades, ids
from tests.soak_harness import free_port, wait_until

MOTO = Path(sys.executable).with_name("moto_server")
BUCKET = "sentinance-lake"
KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3_lake(tmp_path_factory) -> Iterator[tuple[Path, Any]]:
    """A lake folder on an s3fs mount of a moto bucket, and a boto3 client of that bucket."""
    missing = [
        what
        for what, ok in (
            ("s3fs (Debian package s3fs)", shutil.which("s3fs")),
            ("/dev/fuse", os.path.exists("/dev/fuse")),
            ("moto_server (dev extra moto[server])", MOTO.exists()),
        )
        if not ok
    ]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    import boto3

    root = tmp_path_factory.mktemp("s3")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    mount = root / "mnt"
    mount.mkdir()
    try:
        wait_until(lambda: _answers(url), 30, "the moto S3 server", step=0.2)
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **KEYS)
        client.create_bucket(Bucket=BUCKET)
        passwd = root / "passwd"
        passwd.write_text("test:test\n")
        passwd.chmod(0o600)
        mounted = subprocess.run(
            ["s3fs", BUCKET, str(mount), "-o", f"passwd_file={passwd}", "-o", f"url={url}"]
            + ["-o", "use_path_request_style"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if mounted.returncode != 0:
            pytest.skip(f"s3fs could not mount here: {mounted.stderr.strip()[-300:]}")
        wait_until(lambda: os.path.ismount(mount), 30, "the s3fs mount", step=0.2)
        yield mount / "lake", client
    finally:
        if os.path.ismount(mount):
            subprocess.run(["fusermount", "-u", str(mount)], capture_output=True, timeout=60)
        server.terminate()
        server.wait(timeout=30)


def test_the_check_finds_no_hard_links_and_calls_the_mount_degraded(s3_lake):
    lake_dir, _ = s3_lake
    lake_dir.mkdir(parents=True, exist_ok=True)
    found = {f.feature: f.status for f in check(lake_dir)}
    assert found == {"atomic replace": "ok", "hard links": "degraded", "flock": "ok"}


def test_a_landed_day_is_an_object_in_the_bucket(s3_lake):
    lake_dir, client = s3_lake
    path = lake.partition_path(lake_dir, RAW_TRADES, "2024-02-01")
    lake.atomic_write_parquet(ids(7), path)
    key = path.relative_to(lake_dir.parent).as_posix()
    head = client.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == path.stat().st_size > 0
    names = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not any(".tmp" in n for n in names)  # the temporary file was renamed away


def test_a_snapshot_copies_and_keeps_a_readers_files_while_a_writer_replaces(s3_lake):
    lake_dir, _ = s3_lake
    shutil.rmtree(lake.dataset_dir(lake_dir, RAW_TRADES), ignore_errors=True)
    path = lake.partition_path(lake_dir, RAW_TRADES, "2024-01-01")
    lake.atomic_write_parquet(ids(3), path)
    with lake.snapshot(lake_dir, [RAW_TRADES]) as snap:
        lake.atomic_write_parquet(ids(5), path)
        assert count_trades(snap) == 3
        assert count_trades(lake_dir) == 5
    assert not snap.exists()


def test_locked_read_merge_writes_lose_no_rows_on_the_mount(s3_lake):
    lake_dir, _ = s3_lake
    target = lake_dir / "ml" / "scores.parquet"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=append_locked, args=(str(target), k * 100, 8)) for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    got = sorted(pl.read_parquet(target)["x"].to_list())
    assert got == list(range(8)) + list(range(100, 108))
