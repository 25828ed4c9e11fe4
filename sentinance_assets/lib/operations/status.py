"""How the service is doing: one report for ``sentinance status`` and the app's health page.

:func:`collect` gathers, for a running or stopped service:

* ``service``: whether a ``serve`` holds the home, since when, and the global indicator
  (:func:`live_indicator`: ``live``, ``stale`` since when, or ``offline``);
* ``components``: each supervised process up or down, uptime, restarts and crashes
  (supervisord's XML-RPC socket plus the event listener's counts);
* ``jobs``: per Dagster job the last successful run and the last run's status (automation runs
  are ``__ASSET_JOB``, shown as ``automation``);
* ``freshness``: per mart, the batch alert feed and the forecasts, the time since the last
  materialization against its window (``freshness.py``), and the data lag of the 1-minute
  candles behind the newest stored trade;
* ``watch``: the watch loop's lag and throughput (sampled by the event listener; read from the
  checkpoint when the service is stopped);
* ``failed_checks``: every asset check whose latest evaluation failed, with its severity;
* ``disk``: bytes used by each zone of the home.

Each section is computed on its own: one that cannot be read (no Dagster instance yet, no
warehouse) says why in ``errors`` instead of failing the report.
"""

from __future__ import annotations

import json
import os
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinance_assets.lib.operations import freshness
from sentinance_assets.lib.operations.supervision import (
    LISTENER,
    components_state_path,
    is_serving,
    logs_dir,
    read_lock,
    rpc,
    watch_state_path,
)
from sentinance_assets.settings import Settings

AUTOMATION_JOB = "__ASSET_JOB"
KNOWN_JOBS = (
    "ingest_job",
    AUTOMATION_JOB,
    "analytics_job",
    "forecast_retraining_job",
    "sentiment_training_job",
)
WATCH_STALE_S = 120.0


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def job_label(name: str) -> str:
    return "automation" if name == AUTOMATION_JOB else name


# --------------------------------------------------------------------------- service
def live_indicator(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """The global indicator: ``live`` while the marts were refreshed within their window,
    ``stale`` (with ``since``: when the window ran out) otherwise, ``offline`` for a simulated or
    replayed home. Cheap: the published warehouse's modification time is the last refresh of
    the marts (every dbt build republishes it)."""
    now = time.time() if now is None else now
    try:
        refreshed = settings.read_path.stat().st_mtime
    except OSError:
        refreshed = None
    out: dict[str, Any] = {"refreshed_at": _iso(refreshed)}
    if settings.source != "live":
        return {**out, "state": "offline", "since": None, "source": settings.source}
    _, fail = freshness.windows(settings)[freshness.REFRESH]
    if refreshed is None:
        return {**out, "state": "stale", "since": None, "source": settings.source}
    deadline = refreshed + fail.total_seconds()
    if now < deadline:
        return {**out, "state": "live", "since": None, "source": settings.source}
    return {**out, "state": "stale", "since": _iso(deadline), "source": settings.source}


def service(settings: Settings) -> dict[str, Any]:
    serving = is_serving(settings)
    lock = read_lock(settings) or {}
    return {
        "serving": serving,
        "pid": lock.get("pid") if serving else None,
        "since": lock.get("started_at") if serving else None,
        "indicator": live_indicator(settings),
    }


# --------------------------------------------------------------------------- components
def components(settings: Settings, serving: bool) -> list[dict[str, Any]]:
    """Each supervised component: state, up, uptime, restarts, crashes, pid."""
    from sentinance_assets.lib.operations.supervision import COMPONENTS

    try:
        counts = json.loads(components_state_path(settings).read_text())
    except (OSError, ValueError):
        counts = {}
    infos: dict[str, dict[str, Any]] = {}
    if serving:
        try:
            infos = {p["name"]: p for p in rpc(settings).supervisor.getAllProcessInfo()}
        except (OSError, xmlrpc.client.Error):
            infos = {}
    table = [c.name for c in COMPONENTS]
    names = table + [n for n in infos if n not in table]
    out = []
    for name in names:
        if name == LISTENER:
            continue
        info = infos.get(name)
        count = counts.get(name, {})
        state = info["statename"] if info else "DOWN"
        up = state == "RUNNING"
        out.append(
            {
                "name": name,
                "state": state,
                "up": up,
                "uptime_s": (info["now"] - info["start"]) if info and up else None,
                "pid": info["pid"] if info and up else None,
                "restarts": count.get("restarts", 0),
                "crashes": count.get("crashes", 0),
                "detail": (info.get("spawnerr") or info.get("description")) if info else None,
            }
        )
    return out


# --------------------------------------------------------------------------- watch loop
def watch(settings: Settings, serving: bool, now: float | None = None) -> dict[str, Any] | None:
    """The watch loop's lag and throughput: the listener's sample while serving, else the
    newest checkpoint (lag only)."""
    from sentinance_assets.lib.operations.listener import newest_checkpoint, read_checkpoint_head

    now = time.time() if now is None else now
    if serving:
        try:
            sample = json.loads(watch_state_path(settings).read_text())
        except (OSError, ValueError):
            sample = None
        if sample is not None and now - sample.get("sampled_at", 0) < WATCH_STALE_S:
            sample["lag_s"] = round(now - sample["cursor"], 3)
            return sample
    ckpt = newest_checkpoint(settings)
    head = read_checkpoint_head(ckpt) if ckpt is not None else None
    if ckpt is None or head is None:
        return None
    cursor = head.get("cursor_ms", 0) / 1000
    return {
        "stream": ckpt.stem,
        "cursor": cursor,
        "lag_s": round(now - cursor, 3),
        "trades_per_s": None,
        "trades": head.get("trades", 0),
        "alerts": head.get("alerts", 0),
        "sampled_at": now,
    }


# --------------------------------------------------------------------------- data lag
def candle_lag(settings: Settings) -> dict[str, Any] | None:
    """Newest stored trade, newest 1-minute candle in the marts, and the trading time the
    candles do not cover yet: the newest trade minus the end of the newest 1-minute bar (a bar
    opened at 12:00 covers trades up to 12:01), 0 when the candles are current."""
    import duckdb

    from sentinance_assets.lib.warehouse import WarehouseNotBuiltError, reading

    try:
        with reading(settings.read_path) as conn:
            (trade,) = conn.execute("select max(ts) from raw.trades").fetchone() or (None,)
            (candle,) = conn.execute(
                "select max(ts) from marts.candles where timeframe = '1m'"
            ).fetchone() or (None,)
    except (WarehouseNotBuiltError, duckdb.Error):
        return None
    lag = None
    if trade is not None and candle is not None:
        lag = max((trade - candle).total_seconds() - 60.0, 0.0)
    return {
        "latest_trade": trade.isoformat() if trade is not None else None,
        "latest_candle_1m": candle.isoformat() if candle is not None else None,
        "candle_lag_s": lag,
    }


# --------------------------------------------------------------------------- Dagster
@dataclass
class DagsterHealth:
    jobs: list[dict[str, Any]]
    freshness: list[dict[str, Any]]
    failed_checks: list[dict[str, Any]]


def _instance(settings: Settings) -> Any:
    import dagster as dg

    if not (settings.dagster_home / "dagster.yaml").exists():
        raise FileNotFoundError(f"no Dagster instance at {settings.dagster_home} yet")
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def dagster_health(settings: Settings, now: float | None = None) -> DagsterHealth:
    """Jobs, freshness and failed checks from the home's Dagster instance (read only)."""
    import dagster as dg

    now = time.time() if now is None else now
    if not (settings.dagster_home / "dagster.yaml").exists():
        return DagsterHealth(jobs=[], freshness=[], failed_checks=[])  # nothing ran here yet
    instance = _instance(settings)
    try:
        return DagsterHealth(
            jobs=_jobs(instance, dg),
            freshness=freshness_states(instance, settings, now),
            failed_checks=failed_checks(instance),
        )
    finally:
        instance.dispose()


def _jobs(instance: Any, dg: Any) -> list[dict[str, Any]]:
    recent = instance.get_run_records(limit=300)
    names = list(KNOWN_JOBS) + sorted({r.dagster_run.job_name for r in recent} - set(KNOWN_JOBS))
    out = []
    for name in names:
        last = instance.get_run_records(filters=dg.RunsFilter(job_name=name), limit=1)
        if not last:
            continue
        ok = instance.get_run_records(
            filters=dg.RunsFilter(job_name=name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
        )
        failed = instance.get_run_records(
            filters=dg.RunsFilter(job_name=name, statuses=[dg.DagsterRunStatus.FAILURE]), limit=1
        )
        out.append(
            {
                "job": job_label(name),
                "last_success": _iso(ok[0].end_time) if ok else None,
                "last_run_status": last[0].dagster_run.status.value,
                "last_run_at": _iso(last[0].create_timestamp.timestamp()),
                "last_failure": _iso(failed[0].end_time) if failed else None,
            }
        )
    return out


def freshness_states(instance: Any, settings: Settings, now: float) -> list[dict[str, Any]]:
    keys = [k for k in instance.all_asset_keys() if freshness.kind_of(k.to_user_string())]
    latest = instance.get_latest_materialization_events(keys)
    out = []
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        name = key.to_user_string()
        window = freshness.window_of(name, settings)
        assert window is not None
        warn, fail = window
        event = latest.get(key)
        lag = now - event.timestamp if event is not None else None
        if lag is None:
            state = "never"
        elif settings.source != "live":
            state = "offline"
        elif lag > fail.total_seconds():
            state = "late"
        elif lag > warn.total_seconds():
            state = "warn"
        else:
            state = "fresh"
        out.append(
            {
                "asset": name,
                "last_update": _iso(event.timestamp) if event is not None else None,
                "lag_s": None if lag is None else round(lag, 1),
                "warn_s": warn.total_seconds(),
                "limit_s": fail.total_seconds(),
                "state": state,
            }
        )
    return out


def failed_checks(instance: Any) -> list[dict[str, Any]]:
    """Every check whose latest evaluation failed: key, severity, when, description."""
    import dagster as dg
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

    # Dagster has no public "list every check key" on an instance: read the distinct keys from
    # the checks table, then ask the public API for each key's latest evaluation.
    table = AssetCheckExecutionsTable
    with instance.event_log_storage.index_connection() as conn:
        rows = conn.execute(
            table.select().with_only_columns(table.c.asset_key, table.c.check_name).distinct()
        ).fetchall()
    keys = []
    for asset_key, name in rows:
        asset = dg.AssetKey.from_db_string(asset_key)
        if asset is not None and name:
            keys.append(dg.AssetCheckKey(asset, name))
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    out = []
    for key, record in latest.items():
        evaluation = record.event.asset_check_evaluation if record.event is not None else None
        if evaluation is None or evaluation.passed:
            continue
        out.append(
            {
                "check": f"{key.asset_key.to_user_string()}:{key.name}",
                "severity": evaluation.severity.value,
                "at": _iso(record.event.timestamp) if record.event is not None else None,
                "description": evaluation.description,
                "run_id": record.run_id,
                "evaluation_id": record.id,
            }
        )
    return sorted(out, key=lambda c: (c["severity"] != "ERROR", c["check"]))


# --------------------------------------------------------------------------- disk
def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def disk(settings: Settings) -> list[dict[str, Any]]:
    """Bytes per zone: the lake's zones, the warehouse, models and MLflow, Dagster, logs."""
    home = settings.home
    lake = settings.lake_dir
    zones: list[tuple[str, list[Path]]] = [
        ("raw", [lake / "raw"]),
        ("quarantine", [lake / "quarantine"]),
        ("ml", [lake / "ml"]),
        ("alerts", [lake / "alerts"]),
        ("warehouse", [p for p in home.glob("warehouse*.duckdb*")]),
        ("models", [settings.models_dir, settings.mlflow_artifacts, settings.mlflow_db]),
        ("checkpoints", [settings.checkpoints_dir]),
        ("dagster", [settings.dagster_home]),
        ("logs", [logs_dir(settings)]),
    ]
    return [
        {"zone": zone, "bytes": sum(_bytes(p) for p in paths if p.exists())}
        for zone, paths in zones
    ]


# --------------------------------------------------------------------------- the report
def collect(settings: Settings, *, with_dagster: bool = True) -> dict[str, Any]:
    """The whole report (see the module docstring), as JSON-ready data."""
    errors: dict[str, str] = {}

    def section(name: str, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one unreadable section must not hide the rest
            errors[name] = f"{type(exc).__name__}: {exc}"
            return default

    svc = section("service", lambda: service(settings), {"serving": False})
    serving = bool(svc.get("serving"))
    report: dict[str, Any] = {
        "home": str(settings.home),
        "lake": str(settings.lake_dir),
        "source": settings.source,
        "checked_at": _iso(time.time()),
        "service": svc,
        "components": section("components", lambda: components(settings, serving), []),
        "watch": section("watch", lambda: watch(settings, serving), None),
        "data": section("data", lambda: candle_lag(settings), None),
        "disk": section("disk", lambda: disk(settings), []),
    }
    health = section("dagster", lambda: dagster_health(settings), None) if with_dagster else None
    report["jobs"] = health.jobs if health else []
    report["freshness"] = health.freshness if health else []
    report["failed_checks"] = health.failed_checks if health else []
    report["errors"] = errors
    report["healthy"] = healthy(report)
    return report


def healthy(report: dict[str, Any]) -> bool:
    """Serving, every component up, nothing late, no failed ERROR check."""
    if not report["service"].get("serving"):
        return False
    if any(not c["up"] for c in report["components"]):
        return False
    if any(f["state"] == "late" for f in report["freshness"]):
        return False
    return not any(c["severity"] == "ERROR" for c in report["failed_checks"])
