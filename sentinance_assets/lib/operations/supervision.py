"""What ``sentinance serve`` runs, and how: a table of components under supervisord.

Each :class:`Component` is one long-running process; :data:`COMPONENTS` is the table, in start
order (the HTTP API is its last entry). :func:`supervisord_config` turns the table into
a supervisord configuration under ``<home>/serve/`` with one log file per component under
``<home>/logs/``, and :func:`serve` runs supervisord in the foreground until SIGINT/SIGTERM.

Why supervisord (the ``supervisor`` package) rather than a home-made loop: restart on crash
with a back-off (a process that dies within ``startsecs`` of starting is retried after 1, 2,
3 ... seconds), stop in reverse order with a grace period then SIGKILL to the whole process
group, log rotation, and an XML-RPC interface that ``sentinance status`` reads. What it lacks is
added by the event listener (``listener.py``): restart counts, the watch loop's lag and
throughput, and a new start for a component that gave up (FATAL) after its retries.

The Dagster components share one code server (``dagster code-server start``): the daemon and
the UI both talk to it, and runs are started by it, so a run survives a crash (or SIGKILL) of
the daemon that launched it.

One ``serve`` per home: :func:`acquire_lock` takes an exclusive ``flock`` on
``<home>/serve/serve.lock`` (held by ``serve`` and handed to supervisord, so it stays held
while either lives); a second ``serve`` on the same home refuses with who holds it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinance_assets.lib.lake_filesystem import check as check_lake_filesystem
from sentinance_assets.settings import Settings

REPO_DIR = Path(__file__).resolve().parents[3]
BIN_DIR = Path(sys.executable).parent
LOCATION_NAME = "sentinance_assets"
LISTENER = "sentinance-listener"
LOG_MAX_BYTES = "20MB"
LOG_BACKUPS = 3


@dataclass(frozen=True)
class Component:
    """One supervised process: its name (also its log file), its command for the settings, what
    it is, and how to start and stop it."""

    name: str
    command: Callable[[Settings], list[str]]
    description: str
    startsecs: int = 10  # must stay up this long to count as started (else: back-off)
    stopwaitsecs: int = 20  # grace period after SIGTERM before SIGKILL
    url: Callable[[Settings], str] | None = None
    done_on_clean_exit: bool = False  # exit status 0 means "finished" (not restarted)


def _workspace(settings: Settings) -> str:
    return str(serve_dir(settings) / "workspace.yaml")


def _bin(name: str) -> str:
    return str(BIN_DIR / name)


def _code_server(s: Settings) -> list[str]:
    return [
        _bin("dagster"),
        "code-server",
        "start",
        "-m",
        "sentinance_assets.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(s.code_server_port),
        "--location-name",
        LOCATION_NAME,
    ]


def _daemon(s: Settings) -> list[str]:
    return [_bin("dagster-daemon"), "run", "-w", _workspace(s)]


def _webserver(s: Settings) -> list[str]:
    return [
        _bin("dagster-webserver"),
        "-w",
        _workspace(s),
        "-h",
        s.serve_host,
        "-p",
        str(s.dagster_port),
    ]


def _watch(s: Settings) -> list[str]:
    return [_bin("sentinance"), "watch", "--quiet"]


def _app(s: Settings) -> list[str]:
    from sentinance_assets.cli import streamlit_argv

    return streamlit_argv(s.serve_host, s.app_port)


def _api(s: Settings) -> list[str]:
    return [_bin("sentinance"), "api"]  # SENTINANCE_API_HOST/PORT/KEY from the environment


COMPONENTS: tuple[Component, ...] = (
    Component(
        "code-server",
        _code_server,
        "Dagster code server: loads the asset graph once; the daemon and the UI use it, and "
        "it starts the runs",
        startsecs=20,
        stopwaitsecs=30,
    ),
    Component(
        "daemon",
        _daemon,
        "Dagster daemon: schedules, sensors, automation conditions, run queue, freshness",
        startsecs=15,
    ),
    Component(
        "webserver",
        _webserver,
        "Dagster UI",
        startsecs=15,
        url=lambda s: f"http://{s.serve_host}:{s.dagster_port}",
    ),
    # live: runs until stopped; simulated or replayed: finishes at the end of the window
    Component(
        "watch",
        _watch,
        "watch loop: new trades -> detectors -> alerts, continuously",
        done_on_clean_exit=True,
    ),
    Component(
        "app",
        _app,
        "Streamlit analyst app",
        url=lambda s: f"http://{s.serve_host}:{s.app_port}",
    ),
    Component(
        "api",
        _api,
        "HTTP API (docs/api.md)",
        startsecs=5,
        url=lambda s: f"http://{s.api_host}:{s.api_port}/docs",
    ),
)


# --------------------------------------------------------------------------- paths
def serve_dir(settings: Settings) -> Path:
    return settings.home / "serve"


def logs_dir(settings: Settings) -> Path:
    return settings.home / "logs"


def lock_path(settings: Settings) -> Path:
    return serve_dir(settings) / "serve.lock"


def socket_path(settings: Settings) -> Path:
    """supervisord's XML-RPC socket; under /tmp when the home is too deep for a socket path."""
    path = serve_dir(settings) / "supervisor.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha1(str(settings.home).encode()).hexdigest()[:12]
    return Path("/tmp") / f"sentinance-{digest}.sock"


def components_state_path(settings: Settings) -> Path:
    """Restart counts per component, written by the event listener."""
    return serve_dir(settings) / "components.json"


def watch_state_path(settings: Settings) -> Path:
    """The watch loop's lag and throughput, sampled by the event listener."""
    return serve_dir(settings) / "watch.json"


# --------------------------------------------------------------------------- configuration
def _quoted(argv: Sequence[str]) -> str:
    """One ``command=`` line: shell-quoted, ``%`` escaped (supervisord expands ``%(...)s``)."""
    if any("\n" in arg for arg in argv):
        raise ValueError(f"a supervised command cannot contain a newline: {argv!r}")
    return shlex.join(argv).replace("%", "%%")


def _program(c: Component, settings: Settings, priority: int) -> str:
    log = logs_dir(settings) / f"{c.name}.log"
    return f"""
[program:{c.name}]
command={_quoted(c.command(settings))}
directory={REPO_DIR}
priority={priority}
autostart=true
autorestart={"unexpected" if c.done_on_clean_exit else "true"}
exitcodes=0
startsecs={c.startsecs}
startretries=100
stopsignal=TERM
stopwaitsecs={c.stopwaitsecs}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={log}
stdout_logfile_maxbytes={LOG_MAX_BYTES}
stdout_logfile_backups={LOG_BACKUPS}
"""


def supervisord_config(settings: Settings, components: Sequence[Component] = COMPONENTS) -> str:
    """The supervisord configuration of ``components`` (started in this order, stopped in the
    reverse order), plus the event listener."""
    serve, logs = serve_dir(settings), logs_dir(settings)
    head = f"""; Written by `sentinance serve` for {settings.home}: regenerated at every start.
[supervisord]
nodaemon=true
silent=true
identifier=sentinance
directory={REPO_DIR}
logfile={logs / "supervisord.log"}
logfile_maxbytes={LOG_MAX_BYTES}
logfile_backups={LOG_BACKUPS}
pidfile={serve / "supervisord.pid"}
childlogdir={logs}

[unix_http_server]
file={socket_path(settings)}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket_path(settings)}
"""
    programs = [_program(c, settings, 10 * (i + 1)) for i, c in enumerate(components)]
    listener = f"""
[eventlistener:{LISTENER}]
command={_quoted([sys.executable, "-m", "sentinance_assets.lib.operations.listener"])}
directory={REPO_DIR}
events=PROCESS_STATE,TICK_5
autorestart=true
stdout_logfile=NONE
stderr_logfile={logs / "listener.log"}
stderr_logfile_maxbytes={LOG_MAX_BYTES}
stderr_logfile_backups={LOG_BACKUPS}
"""
    return head + "".join(programs) + listener


def workspace_yaml(settings: Settings) -> str:
    return (
        "# Written by `sentinance serve`: the daemon and the UI share one code server.\n"
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {settings.code_server_port}\n"
        f"      location_name: {LOCATION_NAME}\n"
    )


#: Concurrency pools (Dagster's, enforced by the instance across runs and machines) and their
#: limits, set on the instance when it has none for the pool (an operator's
#: ``dagster instance concurrency set ingest 4`` is kept). ``duckdb``: the warehouse writer,
#: one at a time (the instance's ``default_limit``). ``ingest``: day partitions landing side by
#: side, two at a time to stay polite to the exchanges. ``detection``: the batch alerts, one at
#: a time (a run re-detects every stale day). Runs that write the lake need no other limit:
#: readers of many files read a snapshot and read-merge-writes hold the file's lock
#: (lib/lake.py).
POOL_LIMITS = {"ingest": 2, "detection": 1}
#: The run-tag limit of earlier releases (one lake-writing run at a time), removed from an
#: existing ``dagster.yaml``: the lake's snapshots and locks replace it.
LEGACY_RUN_LIMIT_KEY = "sentinance/lake"

# Added to the home's Dagster instance when missing (the rest is `sentinance`'s default):
# run monitoring notices a run whose process died; tick retention keeps the instance small.
INSTANCE_ADDITIONS: dict[str, Any] = {
    "run_monitoring": {"enabled": True, "poll_interval_seconds": 30},
    "retention": {
        "schedule": {"purge_after_days": 7},
        "sensor": {"purge_after_days": {"skipped": 1, "failure": 30, "success": 7}},
        "auto_materialize": {"purge_after_days": {"skipped": 1, "failure": 30, "success": 7}},
    },
}


def prepare_instance(settings: Settings) -> Path:
    """Write ``dagster.yaml`` for the home: the CLI's default when there is none, plus each of
    :data:`INSTANCE_ADDITIONS` the file does not set yet (what it says is kept)."""
    import yaml

    from sentinance_assets.cli import DAGSTER_YAML

    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    path = settings.dagster_home / "dagster.yaml"
    text = path.read_text() if path.exists() else DAGSTER_YAML
    config = yaml.safe_load(text) or {}
    missing = {k: v for k, v in INSTANCE_ADDITIONS.items() if k not in config}
    runs = config.get("concurrency", {}).get("runs", {})
    limits = runs.get("tag_concurrency_limits") or []
    kept = [limit for limit in limits if limit.get("key") != LEGACY_RUN_LIMIT_KEY]
    if len(kept) < len(limits):
        runs["tag_concurrency_limits"] = kept
        if not kept:
            del runs["tag_concurrency_limits"]
        if not runs:
            del config["concurrency"]["runs"]
        missing["concurrency"] = config["concurrency"]
    if missing:
        config.update(missing)
        text = (
            "# Written by `sentinance serve` (from `sentinance`'s default instance): the duckdb\n"
            "# pool (one warehouse writer), run monitoring and tick retention.\n"
            + yaml.safe_dump(config, sort_keys=False)
        )
    if not path.exists() or missing:
        path.write_text(text)
    # Create the instance's SQLite storages now, in one process: the daemon, the UI and the code
    # server opening a new home at once race on the schema stamps ("more than one head").
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        instance.get_run_records(limit=1)
        instance.all_instigator_state()
        set_pool_limits(instance)
    finally:
        instance.dispose()
    return path


def set_pool_limits(instance: Any, limits: Mapping[str, int] = POOL_LIMITS) -> dict[str, int]:
    """Give each pool of ``limits`` its limit where the instance has none; returns the limits
    in force for those pools."""
    storage = instance.event_log_storage
    existing = set(storage.get_concurrency_keys())
    for pool, limit in limits.items():
        if pool not in existing:
            storage.set_concurrency_slots(pool, limit)
    return {pool: storage.get_concurrency_info(pool).slot_count for pool in limits}


def write_files(settings: Settings, components: Sequence[Component] = COMPONENTS) -> Path:
    """The serve folder's configuration files; returns the supervisord configuration."""
    serve_dir(settings).mkdir(parents=True, exist_ok=True)
    logs_dir(settings).mkdir(parents=True, exist_ok=True)
    prepare_instance(settings)
    (serve_dir(settings) / "workspace.yaml").write_text(workspace_yaml(settings))
    conf = serve_dir(settings) / "supervisord.conf"
    conf.write_text(supervisord_config(settings, components))
    return conf


# --------------------------------------------------------------------------- lock
class AlreadyServing(RuntimeError):
    """Another ``sentinance serve`` holds this home's lock."""


def acquire_lock(settings: Settings) -> int:
    """An exclusive lock on the home (a file descriptor, kept open while serving)."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_lock(settings) or {}
        since = holder.get("started_at", "?")
        raise AlreadyServing(
            f"sentinance serve is already running for {settings.home} "
            f"(pid {holder.get('pid', '?')}, since {since}): stop it first "
            f"(Ctrl-C in its terminal, or kill -TERM {holder.get('pid', '<pid>')}), "
            "or use another SENTINANCE_HOME"
        ) from None
    os.ftruncate(fd, 0)
    info = {"pid": os.getpid(), "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    os.write(fd, json.dumps(info).encode())
    return fd


def read_lock(settings: Settings) -> dict[str, Any] | None:
    """Who holds (or last held) the lock: ``{"pid", "started_at"}``."""
    try:
        return json.loads(lock_path(settings).read_text() or "null")
    except (OSError, ValueError):
        return None


def is_serving(settings: Settings) -> bool:
    """Whether a ``serve`` holds the home's lock right now."""
    path = lock_path(settings)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def busy_ports(settings: Settings) -> list[str]:
    """The ports ``serve`` needs that something else already listens on."""
    busy = []
    for host, port, what in (
        ("127.0.0.1", settings.code_server_port, "SENTINANCE_CODE_SERVER_PORT"),
        (settings.serve_host, settings.dagster_port, "SENTINANCE_DAGSTER_PORT"),
        (settings.serve_host, settings.app_port, "SENTINANCE_APP_PORT"),
        (settings.api_host, settings.api_port, "SENTINANCE_API_PORT"),
    ):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(f"{what}={port} ({host})")
    return busy


# --------------------------------------------------------------------------- running
def child_environment(settings: Settings) -> dict[str, str]:
    """What every component sees: the caller's environment (the settings), this home's Dagster
    instance and the venv's executables first on PATH."""
    return {
        **os.environ,
        "SENTINANCE_HOME": str(settings.home),
        "SENTINANCE_LAKE_DIR": str(settings.lake_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
        "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }


#: On stop, how long in-flight Dagster runs may take to finish before they are canceled.
DRAIN_SECONDS = 90.0
#: ... and how long a canceled run may take to stop.
CANCEL_SECONDS = 30.0


def runs_in_progress(settings: Settings) -> list[str]:
    """Ids of this home's Dagster runs that are starting or running."""
    import dagster as dg

    if not (settings.dagster_home / "dagster.yaml").exists():
        return []
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
        records = instance.get_run_records(filters=dg.RunsFilter(statuses=statuses))
        return [r.dagster_run.run_id for r in records]
    finally:
        instance.dispose()


def cancel_runs(settings: Settings, run_ids: list[str]) -> None:
    """Ask the runs to stop (through the code server that started them): they end CANCELED, as
    stopped by the operator, rather than FAILURE when their process is killed."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        for run_id in run_ids:
            try:
                instance.run_launcher.terminate(run_id)
            except Exception:  # noqa: BLE001 - already finished, or its process is gone
                continue
    finally:
        instance.dispose()


def rpc(settings: Settings) -> Any:
    """supervisord's XML-RPC interface (``.supervisor.getAllProcessInfo()``, ...)."""
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{socket_path(settings)}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


class _Stop:
    """SIGINT/SIGTERM: the first asks for a graceful stop, the next one for an immediate one."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, signum: int, frame: object) -> None:  # noqa: ARG002
        self.requests += 1


def _drain(
    settings: Settings,
    stop: _Stop,
    announce: Callable[[str], None],
    seconds: float,
) -> None:
    """Stop the daemon (nothing new starts), give in-flight runs ``seconds`` to finish, then
    cancel those still going: a run killed by the stop would be recorded as failed."""
    try:
        rpc(settings).supervisor.stopProcess("daemon", True)
    except Exception as exc:  # noqa: BLE001 - not running, or supervisord already going
        announce(f"(daemon: {exc})")
    deadline = time.monotonic() + seconds
    waiting = runs_in_progress(settings)
    if waiting:
        announce(
            f"waiting up to {seconds:.0f} s for {len(waiting)} run(s) in progress to finish "
            "(Ctrl-C again to stop now) ..."
        )
    while waiting and stop.requests < 2 and time.monotonic() < deadline:
        time.sleep(1.0)
        waiting = runs_in_progress(settings)
    if waiting:
        announce(f"canceling {len(waiting)} run(s) still in progress ...")
        cancel_runs(settings, waiting)
        end = time.monotonic() + CANCEL_SECONDS
        while runs_in_progress(settings) and time.monotonic() < end:
            time.sleep(1.0)


def lake_is_safe(settings: Settings, announce: Callable[[str], None]) -> bool:
    """Check the lake's file system before serving: a degraded feature is announced, one that
    fails stops the start (its overlapping runs could lose rows or read zeroed files)."""
    settings.lake_dir.mkdir(parents=True, exist_ok=True)
    findings = [f for f in check_lake_filesystem(settings.lake_dir) if f.status != "ok"]
    for f in findings:
        word = "error" if f.status == "fails" else "warning"
        announce(f"{word}: the lake at {settings.lake_dir}: {f.feature}: {f.detail}")
    if any(f.status == "fails" for f in findings):
        announce("error: this file system is not safe for the lake (`sentinance lake check`)")
        return False
    return True


def serve(
    settings: Settings,
    components: Sequence[Component] = COMPONENTS,
    *,
    announce: Callable[[str], None] = print,
    drain_seconds: float = DRAIN_SECONDS,
) -> int:
    """Run ``components`` under supervisord until SIGINT/SIGTERM, then stop them all: the
    daemon first, in-flight runs get ``drain_seconds`` to finish, then every other component
    in reverse start order (SIGTERM, SIGKILL after its grace period).

    Raises :class:`AlreadyServing` when another ``serve`` holds the home.
    """
    fd = acquire_lock(settings)
    try:
        busy = busy_ports(settings)
        if busy:
            announce(f"error: already in use: {', '.join(busy)}; set other ports")
            return 2
        if not lake_is_safe(settings, announce):
            return 2
        conf = write_files(settings, components)
        socket_path(settings).unlink(missing_ok=True)
        components_state_path(settings).unlink(missing_ok=True)
        stop = _Stop()
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            proc = subprocess.Popen(
                [_bin("supervisord"), "-c", str(conf)],
                env=child_environment(settings),
                cwd=REPO_DIR,
                pass_fds=(fd,),  # the lock stays held while supervisord lives
                start_new_session=True,  # a terminal's Ctrl-C reaches serve only: stop in order
            )
            announce(
                f"serving {settings.home} (source={settings.source}); logs in {logs_dir(settings)}"
            )
            for c in components:
                where = f" at {c.url(settings)}" if c.url else ""
                announce(f"  {c.name:<12} {c.description}{where}")
            announce("`sentinance status` shows their health; Ctrl-C stops them all.")
            while proc.poll() is None and not stop.requests:
                time.sleep(0.2)
            if proc.poll() is None:
                announce("stopping ...")
                if any(c.name == "daemon" for c in components) and stop.requests < 2:
                    _drain(settings, stop, announce, drain_seconds)
                announce("stopping every component ...")
                proc.send_signal(signal.SIGTERM)
            code = proc.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        announce(f"stopped (supervisord exited with {code})")
        return 0 if stop.requests or code == 0 else 1
    finally:
        os.close(fd)
