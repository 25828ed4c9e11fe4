"""Operators are told: one notification per incident, through the alert delivery that exists.

An :class:`Incident` is a failed run, a failed ERROR-level check (quality score, counts
reconciliation, ...), a late asset (freshness) or detected drift. :func:`notify_operators` is the
one door: the Dagster sensors in ``defs/operations`` call it, and whatever delivers alerts can
deliver these: the webhook of ``SENTINANCE_ALERT_WEBHOOK``, through the same
:class:`~sentinance_assets.lib.detection.sinks.WebhookSink` as the watch loop (timeout, retries,
dead-letter file), and every Apprise channel of the rules file that takes operator incidents
(``operations = true``; docs/alerts.md).

Each incident has a stable ``key``; a ledger (``<home>/serve/notified.jsonl``) remembers the keys
already notified, so a sensor that evaluates twice (a daemon restart in the middle of a tick)
does not notify twice, and every POST carries ``Idempotency-Key`` (the hashed key) for the
receiver. Every notification is also appended to ``<home>/logs/notifications.jsonl``, webhook
or not.

The payload has the alert layout (``alerts.alerts``) so one receiver handles both: ``type`` is
``ops_<kind>``, ``exchange`` is ``sentinance``, ``message`` says what happened and ``details``
holds the rest (run id, check, asset, drift shares).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from sentinance_assets.lib.schemas import ALERTS
from sentinance_assets.settings import Settings

KINDS = ("run_failure", "check_failed", "freshness", "drift")


@dataclass(frozen=True)
class Incident:
    """Something an operator must know about, once."""

    key: str  # stable: the same incident always has the same key
    kind: str  # one of KINDS
    title: str
    severity: str = "critical"  # critical | warning
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def notification_id(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:20]


def ledger_path(settings: Settings) -> Path:
    return settings.home / "serve" / "notified.jsonl"


def log_path(settings: Settings) -> Path:
    return settings.home / "logs" / "notifications.jsonl"


def notified_keys(settings: Settings) -> set[str]:
    try:
        lines = ledger_path(settings).read_text().splitlines()
    except OSError:
        return set()
    keys = set()
    for line in lines:
        try:
            keys.add(json.loads(line)["key"])
        except (ValueError, KeyError):
            continue  # a line torn by a crash
    return keys


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def as_alert(incident: Incident, now: datetime | None = None) -> pl.DataFrame:
    """The incident in the alert layout (what the webhook receives)."""
    now = now or datetime.now(UTC)
    return ALERTS.conform(
        pl.DataFrame(
            {
                "alert_id": [incident.notification_id],
                "type": [f"ops_{incident.kind}"],
                "exchange": ["sentinance"],
                "symbol": [""],
                "severity": [incident.severity],
                "event_time": [now],
                "detected_at": [now],
                "value": [None],
                "threshold": [None],
                "message": [incident.title],
                "details": [json.dumps({"key": incident.key, **incident.details}, default=str)],
            },
            schema_overrides={"value": pl.Float64, "threshold": pl.Float64},
        )
    )


def notify_operators(incident: Incident, settings: Settings) -> bool:
    """Deliver ``incident`` once (``False``: it was already notified). Delivery failures are
    the sink's (dead-letter file); the incident counts as notified either way."""
    if incident.key in notified_keys(settings):
        return False
    record = {
        "key": incident.key,
        "id": incident.notification_id,
        "kind": incident.kind,
        "severity": incident.severity,
        "title": incident.title,
        "details": incident.details,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "webhook": bool(settings.alert_webhook),
    }
    # ledger first: a crash after it loses one notification rather than repeating it forever
    _append(ledger_path(settings), {"key": incident.key, "at": record["at"]})
    _append(log_path(settings), record)
    if settings.alert_webhook:
        from sentinance_assets.lib.detection.sinks import WebhookSink

        sink = WebhookSink(
            settings.alert_webhook,
            settings.alert_dead_letter,
            timeout=settings.alert_webhook_timeout,
        )
        sink.send(as_alert(incident), incident.notification_id)
    # the people channels that take operator incidents (docs/alerts.md, `operations = true`)
    from sentinance_assets.lib.detection.delivery import notify_channels

    body = "\n".join(f"- {k}: {v}" for k, v in {"key": incident.key, **incident.details}.items())
    notify_channels(
        settings, incident.notification_id, f"[ops] {incident.title}", body, incident.severity
    )
    return True
