"""sentinance_assets.lib.lake: typed placeholders keep every declared column readable; a
snapshot keeps a reader's files while writers replace them (also under a writer process replacing
partitions in a loop); a locked read-merge-write loses no rows between processes; a snapshot
left by a killed process is removed; without hard links a snapshot copies."""

import errno
import fcntl
import logging
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import FORECASTS, RAW_TRADES
from sentinance_assets.lib.warehouse import register_lake_views
from tests.lib.lake_rows import append_locked, count_trades, ids

OLD_COLUMNS = ["symbol", "exchange", "origin_ts", "horizon", "target", "prediction"]


def test_a_placeholder_from_an_older_release_is_rewritten_with_the_new_columns(tmp_path: Path):
    # a home upgraded from a release whose ml.forecasts had fewer columns: only old files
    folder = lake.dataset_dir(tmp_path, FORECASTS)
    folder.mkdir(parents=True)
    old = FORECASTS.empty().select(OLD_COLUMNS)
    old.write_parquet(folder / lake.PLACEHOLDER)
    row = {"symbol": "BTC/USDT", "exchange": "binance", "horizon": "1h", "target": "log_return"}
    legacy = pl.DataFrame([{**row, "prediction": 0.01}]).with_columns(
        pl.lit(None, FORECASTS.columns["origin_ts"]).alias("origin_ts")
    )
    legacy.select(OLD_COLUMNS).write_parquet(folder / "legacy.parquet")
    with duckdb.connect() as conn:
        register_lake_views(conn, tmp_path)
        got = conn.execute("select prediction, lower_95, model from ml.forecasts").fetchall()
    assert got == [(0.01, None, None)]  # the new columns read as nulls, not as an error
    assert pl.read_parquet_schema(folder / lake.PLACEHOLDER) == FORECASTS.empty().schema
    before = (folder / lake.PLACEHOLDER).stat().st_mtime_ns
    lake.ensure_placeholders(tmp_path)  # current placeholders are left alone
    assert (folder / lake.PLACEHOLDER).stat().st_mtime_ns == before


def test_a_snapshot_keeps_the_files_a_reader_started_with(tmp_path: Path):
    path = lake.partition_path(tmp_path, RAW_TRADES, "2024-01-01")
    lake.atomic_write_parquet(ids(3), path)
    with lake.snapshot(tmp_path, [RAW_TRADES]) as snap:
        assert snap.parent == tmp_path / lake.SNAPSHOTS
        lake.atomic_write_parquet(ids(5), path)  # a writer replaces the day meanwhile
        path.with_name("other.parquet").write_bytes(path.read_bytes())  # and adds a file
        assert count_trades(snap) == 3
        assert count_trades(tmp_path) == 10
    assert not snap.exists() and list((tmp_path / lake.SNAPSHOTS).iterdir()) == []
    assert count_trades(tmp_path) == 10  # the lake itself is untouched


def _replace_in_a_loop(lake_dir: str, stop_at: float) -> None:
    i = 0
    while time.time() < stop_at:
        day = f"2024-01-0{i % 3 + 1}"
        lake.atomic_write_parquet(
            ids(20_000 + (i * 7919) % 30_000),
            Path(lake.partition_path(Path(lake_dir), RAW_TRADES, day)),
        )
        i += 1


def test_duckdb_reads_snapshots_while_another_process_replaces_partitions(tmp_path: Path):
    # Without the snapshot, DuckDB scans of this lake fail now and then ("Invalid data": 220
    # of 3,004 in a 10 s run on this machine); through snapshots none may.
    for i in range(3):
        lake.atomic_write_parquet(
            ids(10), lake.partition_path(tmp_path, RAW_TRADES, f"2024-01-0{i + 1}")
        )
    writer = mp.get_context("spawn").Process(
        target=_replace_in_a_loop, args=(str(tmp_path), time.time() + 4.0)
    )
    writer.start()
    reads = 0
    try:
        while writer.is_alive():
            with lake.snapshot(tmp_path, [RAW_TRADES]) as snap:
                for _ in range(3):
                    assert count_trades(snap) >= 30
                    reads += 1
    finally:
        writer.join()
    assert writer.exitcode == 0 and reads > 10


def test_a_snapshot_left_by_a_killed_process_is_removed_and_a_live_one_kept(tmp_path: Path):
    root = tmp_path / lake.SNAPSHOTS
    root.mkdir()
    (root / "dead").mkdir()
    (root / "dead.lock").touch()  # nobody holds it: its process is gone
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
            ),
            str(root / "alive.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        (root / "alive").mkdir()
        with lake.snapshot(tmp_path, [RAW_TRADES]) as snap:
            names = {p.name for p in root.iterdir()}
            assert "dead" not in names and "dead.lock" not in names
            assert {"alive", "alive.lock", snap.name} <= names
    finally:
        holder.kill()
        holder.wait()


def test_a_day_old_snapshot_folder_without_its_lock_file_is_removed(tmp_path: Path):
    root = tmp_path / lake.SNAPSHOTS
    (root / "orphan").mkdir(parents=True)
    (root / "young").mkdir()
    day_ago = time.time() - lake.STALE_ORPHAN_S - 60
    os.utime(root / "orphan", (day_ago, day_ago))
    with lake.snapshot(tmp_path, [RAW_TRADES]):
        names = {p.name for p in root.iterdir()}
    assert "orphan" not in names and "young" in names  # young: maybe a snapshot being made


def test_locked_read_merge_writes_lose_no_rows_between_processes(tmp_path: Path):
    target = tmp_path / "scores.parquet"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=append_locked, args=(str(target), k * 100, 25)) for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    got = sorted(pl.read_parquet(target)["x"].to_list())
    assert got == list(range(25)) + list(range(100, 125))


def test_the_lock_is_a_file_beside_the_target_and_is_released(tmp_path: Path):
    target = tmp_path / "date=2024-01-01" / "part.parquet"
    with lake.locked(target):
        lock = target.parent / ".part.parquet.lock"
        with lock.open("a") as f:  # held: a second taker would wait
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("the lock was not held")
            except BlockingIOError:
                pass
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released


def test_without_hard_links_a_snapshot_copies_and_says_so_once(tmp_path, monkeypatch, caplog):
    for day in ("2024-01-01", "2024-01-02"):
        lake.atomic_write_parquet(ids(3), lake.partition_path(tmp_path, RAW_TRADES, day))

    def no_links(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    with caplog.at_level(logging.WARNING, logger=lake.__name__):
        with lake.snapshot(tmp_path, [RAW_TRADES]) as snap:
            lake.atomic_write_parquet(
                ids(5), lake.partition_path(tmp_path, RAW_TRADES, "2024-01-01")
            )
            assert count_trades(snap) == 6 and count_trades(tmp_path) == 8
    copies = [r.getMessage() for r in caplog.records if "copied" in r.getMessage()]
    assert len(copies) == 1 and "copied 3 files" in copies[0]  # two days + the placeholder
