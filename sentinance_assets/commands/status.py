"""``sentinance status``: how the service is doing, running or stopped (``--json`` for scripts).

Prints each component up or down with uptime and restarts, the last successful run of each
Dagster job, the freshness of each mart, the alert feed and the forecasts against their limits,
the watch loop's lag and throughput, the checks that failed, and the disk used by each zone
(``docs/operations.md`` says what each signal means). Exit status: 0 healthy (serving, every
component up, nothing late, no failed ERROR check), 1 degraded, 2 not serving.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinance_assets.lib.operations.status import collect


def register(subparsers: Any) -> None:
    """Add ``status`` to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "status",
        help="health of the service: components, jobs, freshness, watch loop, checks, disk",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=cmd_status)


def cmd_status(settings: Any, args: argparse.Namespace) -> int:
    report = collect(settings)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    if not report["service"].get("serving"):
        return 2
    return 0 if report["healthy"] else 1


def duration(seconds: float | None) -> str:
    """``42 s``, ``3m05s``, ``2h01m``, ``3d04h``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


def _ago(iso: str | None, now: datetime) -> str:
    if iso is None:
        return "never"
    when = datetime.fromisoformat(iso)
    return f"{when:%Y-%m-%d %H:%M:%S} ({duration((now - when).total_seconds())} ago)"


def render(report: dict[str, Any]) -> str:
    now = datetime.fromisoformat(report["checked_at"]) if report.get("checked_at") else None
    now = now or datetime.now(UTC)
    svc = report["service"]
    indicator = svc.get("indicator", {})
    lines = [f"Sentinance at {report['home']} (source {report['source']})"]
    if report.get("lake") and Path(report["lake"]) != Path(report["home"]) / "lake":
        lines.append(f"lake at {report['lake']}")
    if svc.get("serving"):
        lines.append(f"serving since {svc.get('since')} (pid {svc.get('pid')})")
    else:
        lines.append("not serving (start it with `sentinance serve`)")
    state = indicator.get("state", "?")
    if state == "stale":
        since = indicator.get("since")
        lines.append(f"data: STALE since {since}" if since else "data: STALE (never refreshed)")
    else:
        lines.append(f"data: {state}, marts refreshed {_ago(indicator.get('refreshed_at'), now)}")

    def section(title: str, items: list, empty: str, line: Callable[[Any], str]) -> None:
        lines.extend(["", title])
        lines.extend(f"  {line(i)}" for i in items) if items else lines.append(f"  {empty}")

    def component(c: dict[str, Any]) -> str:
        up = f"up {duration(c['uptime_s'])}" if c["up"] else "down"
        detail = f"  ({c['detail']})" if c.get("detail") else ""
        return (
            f"{c['name']:<12} {c['state']:<9} {up:<14} restarts {c['restarts']:<3} "
            f"crashes {c['crashes']}{detail}"
        )

    section("components", report["components"], "none", component)
    section(
        "jobs (last successful run; last run)",
        report["jobs"],
        "no runs recorded",
        lambda j: (
            f"{j['job']:<24} {_ago(j['last_success'], now):<36} last run {j['last_run_status']}"
        ),
    )
    section(
        "freshness (since the last materialization / limit)",
        report["freshness"],
        "nothing materialized yet",
        lambda f: (
            f"{f['asset']:<28} {duration(f['lag_s']):>9} / {duration(f['limit_s']):<8} {f['state']}"
        ),
    )
    data = report.get("data")
    if data:
        lines.append(
            f"  1m candles behind the newest stored trade: {duration(data.get('candle_lag_s'))} "
            f"(trade {data.get('latest_trade')}, candle {data.get('latest_candle_1m')})"
        )

    lines += ["", "watch loop"]
    w = report.get("watch")
    if not w:
        lines.append("  no checkpoint yet")
    else:
        rate = w.get("trades_per_s")
        lines.append(
            f"  {w['stream']}: lag {duration(w['lag_s'])}, "
            + ("throughput - " if rate is None else f"{rate:,.1f} trades/s, ")
            + f"{w['trades']:,} trades and {w['alerts']:,} alerts so far"
        )

    section(
        "failed checks",
        report["failed_checks"],
        "none",
        lambda c: f"{c['severity']:<5} {c['check']}  {c['at']}  {c.get('description') or ''}",
    )

    lines += ["", "disk"]
    lines.append("  " + ", ".join(f"{d['zone']} {size(d['bytes'])}" for d in report["disk"]))
    for name, error in report.get("errors", {}).items():
        lines.append(f"(could not read {name}: {error})")
    return "\n".join(lines) + "\n"
