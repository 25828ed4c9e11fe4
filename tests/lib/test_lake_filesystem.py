"""The lake's file-system check: passes on a local disk, and names each way a file system can
fall short (simulated here by replacing the POSIX call the feature rests on)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from sentinance_assets.cli import main
from sentinance_assets.lib import lake_filesystem
from sentinance_assets.lib.lake_filesystem import check


def _by_feature(tmp_path: Path) -> dict[str, lake_filesystem.Finding]:
    return {f.feature: f for f in check(tmp_path)}


def test_a_local_disk_has_everything_and_the_scratch_folder_is_removed(tmp_path: Path):
    found = _by_feature(tmp_path)
    assert {f: x.status for f, x in found.items()} == {
        "atomic replace": "ok",
        "hard links": "ok",
        "flock": "ok",
    }
    assert list(tmp_path.iterdir()) == []


def test_no_hard_links_is_degraded_because_snapshots_copy(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    found = _by_feature(tmp_path)
    assert found["hard links"].status == "degraded"
    assert "copies" in found["hard links"].detail


def test_a_link_that_follows_its_paths_replacement_fails(tmp_path, monkeypatch):
    # what JuiceFS 0.14.2 did (docs/scale-out.md): after a rename over one of two links the
    # other read zeros. Simulated by a replace that writes into the old file in place.
    def replace_in_place(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes())
        os.unlink(src)

    monkeypatch.setattr(os, "replace", replace_in_place)
    found = _by_feature(tmp_path)
    assert found["hard links"].status == "fails"
    assert found["atomic replace"].status == "fails"  # an open reader saw the new bytes


def test_a_lock_another_process_can_take_fails(tmp_path, monkeypatch):
    # a file system whose locks are not shared: here this process never really takes it
    real = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda f, op: None if op & fcntl.LOCK_EX else real(f, op))
    found = _by_feature(tmp_path)
    assert found["flock"].status == "fails"
    assert "keep the ingest pool at 1" in found["flock"].detail


def test_the_command_prints_each_feature_and_exits_by_the_worst(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    assert main(["lake", "check"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "home" / "lake") in out and out.strip().endswith("ready")

    monkeypatch.setattr(os, "link", lambda s, d: (_ for _ in ()).throw(OSError(errno.EXDEV, "x")))
    assert main(["lake", "check", "--path", str(tmp_path / "other")]) == 1
    assert "degraded" in capsys.readouterr().out


def test_the_check_of_a_missing_parent_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["lake", "check", "--path", str(blocker / "lake")]) == 2
    assert "cannot check" in capsys.readouterr().err
