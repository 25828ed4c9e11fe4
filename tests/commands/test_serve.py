"""`sentinance serve` supervises its components: logs, restart with back-off, clean stop, one
serve per home. Fast components stand in for Dagster here (tests/test_soak.py runs the real
service)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

from sentinance_assets.lib.operations import supervision
from sentinance_assets.lib.operations.supervision import (
    AlreadyServing,
    acquire_lock,
    components_state_path,
    is_serving,
    rpc,
    socket_path,
    supervisord_config,
)
from sentinance_assets.settings import Settings

SENTINANCE = str(Path(sys.executable).parent / "sentinance")

SCRIPT = """
import sys
from sentinance_assets.lib.operations.supervision import Component, serve
from sentinance_assets.settings import Settings

PY = sys.executable
SLEEPER = "import time; print('sleeper up', flush=True); time.sleep(3600)"
CRASHER = "import sys; print('crasher starting', flush=True); sys.exit(3)"
components = [
    Component("sleeper", lambda s: [PY, "-c", SLEEPER], "sleeps", startsecs=1, stopwaitsecs=5),
    Component("crasher", lambda s: [PY, "-c", CRASHER], "crashes at once", startsecs=5),
]
raise SystemExit(serve(Settings.from_env(), components, drain_seconds=0))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SENTINANCE_HOME": str(tmp_path / "home"),
        "SENTINANCE_DAGSTER_PORT": str(_free_port()),
        "SENTINANCE_APP_PORT": str(_free_port()),
        "SENTINANCE_CODE_SERVER_PORT": str(_free_port()),
        "SENTINANCE_API_PORT": str(_free_port()),
    }


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _states(settings: Settings) -> dict[str, dict]:
    try:
        return {p["name"]: p for p in rpc(settings).supervisor.getAllProcessInfo()}
    except OSError:
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_config_has_one_program_per_component_with_logs_and_backoff(tiny_settings):
    conf = supervisord_config(tiny_settings)
    names = re.findall(r"^\[program:(.+)\]$", conf, flags=re.M)
    assert names == [c.name for c in supervision.COMPONENTS]
    assert conf.count("startretries=100") == len(names)
    assert f"stdout_logfile={tiny_settings.home / 'logs' / 'daemon.log'}" in conf
    assert "autorestart=unexpected" in conf  # the watch loop: a finished replay is not restarted
    assert "dagster-daemon run -w" in conf and "code-server start" in conf
    assert re.search(r"^command=\S*sentinance api$", conf, flags=re.M)  # the HTTP API
    assert "[eventlistener:sentinance-listener]" in conf


def test_serve_supervises_restarts_refuses_a_second_and_stops_cleanly(env, tmp_path):
    settings = Settings.from_env(env)
    script = tmp_path / "serve_fakes.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait(lambda: _states(settings).get("sleeper", {}).get("statename") == "RUNNING", 60,
              "the sleeper")  # fmt: skip
        assert is_serving(settings)

        # one serve per home: the lock, and the command's message
        with pytest.raises(AlreadyServing, match="already running"):
            acquire_lock(settings)
        second = subprocess.run(
            [SENTINANCE, "serve"], env=env, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 3
        assert f"already running for {settings.home}" in second.stderr

        # per-component logs
        _wait(lambda: "sleeper up" in _log(settings, "sleeper"), 30, "the sleeper's log")

        # a killed component is restarted, and counted
        pid = _states(settings)["sleeper"]["pid"]
        os.kill(pid, signal.SIGKILL)
        _wait(
            lambda: (
                _states(settings)["sleeper"]["statename"] == "RUNNING"
                and _states(settings)["sleeper"]["pid"] != pid
            ),
            60,
            "the restart",
        )
        # the event listener records the restart just after supervisord reports it
        _wait(lambda: _counts(settings).get("restarts") == 1, 30, "the restart's count")
        assert _counts(settings)["crashes"] >= 1

        # a component that keeps crashing is retried with a growing back-off
        _wait(lambda: _log(settings, "supervisord").count("spawned: 'crasher'") >= 6, 90,
              "six starts of the crasher")  # fmt: skip
        spawns = [
            datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            for line in _log(settings, "supervisord").splitlines()
            if "spawned: 'crasher'" in line
        ]
        gaps = [(b - a).total_seconds() for a, b in zip(spawns, spawns[1:], strict=False)]
        assert gaps[-1] >= gaps[0] + 2, gaps  # waits 1, 2, 3 ... s between attempts

        status = subprocess.run(
            [SENTINANCE, "status", "--json"], env=env, capture_output=True, text=True, timeout=120
        )
        report = json.loads(status.stdout)
        assert report["service"]["serving"] is True
        by_name = {c["name"]: c for c in report["components"]}
        assert by_name["sleeper"]["up"] and by_name["sleeper"]["restarts"] == 1
        assert not by_name["crasher"]["up"] and by_name["crasher"]["crashes"] >= 3
        assert status.returncode == 1  # serving, but a component is down

        pids = [p["pid"] for p in _states(settings).values() if p["pid"]]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert "stopped" in out.decode()
    assert not any(_alive(pid) for pid in pids)
    assert not is_serving(settings)
    assert not socket_path(settings).exists() or not _states(settings)


def _counts(settings: Settings, name: str = "sleeper") -> dict:
    try:
        return json.loads(components_state_path(settings).read_text()).get(name, {})
    except (OSError, ValueError):
        return {}


def _log(settings: Settings, name: str) -> str:
    try:
        return (settings.home / "logs" / f"{name}.log").read_text()
    except OSError:
        return ""


def test_status_of_a_stopped_home(env):
    result = subprocess.run(
        [SENTINANCE, "status", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2  # not serving
    report = json.loads(result.stdout)
    assert report["service"]["serving"] is False
    assert {c["name"] for c in report["components"]} >= {"daemon", "webserver", "watch", "app"}
    assert all(c["state"] == "DOWN" for c in report["components"])
    assert {d["zone"] for d in report["disk"]} >= {"raw", "quarantine", "alerts", "warehouse"}
    text = subprocess.run(
        [SENTINANCE, "status"], env=env, capture_output=True, text=True, timeout=120
    ).stdout
    assert "not serving" in text and "components" in text and "disk" in text
