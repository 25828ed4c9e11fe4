"""`sentinance serve` in live mode against a local market, observed from outside.

Used by the soak test (``tests/test_soak.py``, minutes) and ``benchmarks/live.py`` (30 minutes or
more): :class:`Service` starts the real command (supervisord, Dagster code server, daemon, UI,
watch loop, app) against :func:`tests.fakes.live_market.live_market`, and reads what an
operator would: supervisord's process table, the Dagster instance's runs, ``sentinance status``'s
report, the webhook's deliveries, and each component's memory and CPU.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from sentinance_assets.lib.operations.status import collect
from sentinance_assets.lib.operations.supervision import rpc
from sentinance_assets.settings import Settings
from tests.fakes.live_market import LiveMarket

SENTINANCE = str(Path(sys.executable).parent / "sentinance")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond: Callable[[], object], timeout: float, what: str, step: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


@dataclass(frozen=True)
class Run:
    run_id: str
    job: str
    status: str
    trigger: str | None
    created: float
    started: float | None
    ended: float | None
    assets: tuple[str, ...]

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


class Service:
    """One ``sentinance serve`` in live mode against ``market``."""

    def __init__(
        self,
        home: Path,
        market: LiveMarket,
        *,
        refresh_minutes: int = 1,
        automation_interval_seconds: int = 10,
        drain_seconds: float = 90,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.market = market
        self.drain_seconds = drain_seconds
        self.env = {
            **os.environ,
            **market.environment(),
            "SENTINANCE_HOME": str(home),
            "SENTINANCE_REFRESH_MINUTES": str(refresh_minutes),
            "SENTINANCE_AUTOMATION_INTERVAL_SECONDS": str(automation_interval_seconds),
            "SENTINANCE_DAGSTER_PORT": str(free_port()),
            "SENTINANCE_APP_PORT": str(free_port()),
            "SENTINANCE_CODE_SERVER_PORT": str(free_port()),
            "SENTINANCE_API_PORT": str(free_port()),
            **(extra_env or {}),
        }
        self.settings = Settings.from_env(self.env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._instance: Any = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Service:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.out = (self.settings.home / "serve-stdout.log").open("wb")
        self.proc = subprocess.Popen(
            [SENTINANCE, "serve", "--drain-seconds", str(self.drain_seconds)],
            env=self.env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def stop(self, timeout: float = 300) -> int:
        """SIGTERM ``serve`` (a graceful stop) and wait; its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.out.close()
        if self._instance is not None:
            self._instance.dispose()
        return code

    def output(self) -> str:
        return (self.settings.home / "serve-stdout.log").read_text(errors="replace")

    # ------------------------------------------------------------------ processes
    def processes(self) -> dict[str, dict[str, Any]]:
        try:
            return {p["name"]: p for p in rpc(self.settings).supervisor.getAllProcessInfo()}
        except OSError:
            return {}

    def running(self, *names: str) -> bool:
        procs = self.processes()
        return all(procs.get(n, {}).get("statename") == "RUNNING" for n in names)

    def pid(self, name: str) -> int:
        return int(self.processes()[name]["pid"])

    def kill(self, name: str) -> int:
        """SIGKILL a component (the process supervisord started); its pid."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        return pid

    def tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self, name: str, *, with_runs: bool = False) -> int:
        """Resident memory of a component with its children (bytes); without the processes
        of runs in progress (a run worker and its dbt), which come and go, unless ``with_runs``."""
        total = 0
        for p in self.tree(self.pid(name)):
            try:
                cmdline = " ".join(p.cmdline())
                if not with_runs and ("spawn_main" in cmdline or "/dbt " in cmdline):
                    continue
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def cpu_seconds(self) -> float:
        """CPU time of the whole service so far: every live process under ``serve`` plus the
        children they reaped (finished runs, dbt)."""
        assert self.proc is not None
        total = 0.0
        for p in self.tree(self.proc.pid):
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    # ------------------------------------------------------------------ Dagster
    def instance(self) -> Any:
        import dagster as dg

        if self._instance is None:
            self._instance = dg.DagsterInstance.from_config(str(self.settings.dagster_home))
        return self._instance

    def runs(self) -> list[Run]:
        if not (self.settings.dagster_home / "dagster.yaml").exists():
            return []
        out = []
        for r in self.instance().get_run_records(limit=1000):
            run = r.dagster_run
            out.append(
                Run(
                    run.run_id,
                    run.job_name,
                    run.status.value,
                    run.tags.get("sentinance/trigger"),
                    r.create_timestamp.timestamp(),
                    r.start_time,
                    r.end_time,
                    tuple(sorted(k.to_user_string() for k in run.asset_selection or ())),
                )
            )
        return sorted(out, key=lambda r: r.created)

    def report(self) -> dict[str, Any]:
        return collect(self.settings)
