"""Alert delivery to people: routing, fatigue control, Apprise channels, a delivery log.

Channels are Apprise URLs (``slack://``, ``discord://``, ``tgram://``, ``msteams://``,
``mmost://``, ``mailto://``, ``json://``, ``form://`` ... about 100 services), declared in the
rules file's ``[[delivery.channels]]`` (with routing and templates) or, for the simple case, in
``SENTINANCE_ALERT_CHANNELS`` (one channel, ``default``, that receives every alert).

Path of an alert, per channel (:class:`Planner`, a pure state machine, also used by the
backtest with a simulated clock):

1. **Routing**: the channel's ``types``, ``severities``, ``exchanges`` and ``symbols``
   (assets or markets; empty = all). An alert older than ``max_alert_age_s`` (event time) is
   not sent (``stale``): re-running batch detection over last week does not flood a channel.
2. **Grouping** per market (exchange + symbol; ``group_by = "asset"``: per base asset across
   venues), Alertmanager's way: the first alert of a group waits ``group_wait_s`` (30 s) for
   others; after a message, new alerts of that group wait until ``group_interval_s`` (5 min)
   has passed since it; then one message carries them all.
3. **Repeat interval** for ongoing conditions: an alert of a (group, type) already notified
   less than ``repeat_interval_s`` (4 h) ago, at the same or a higher severity, is not itemized
   again (``suppressed``, counted in the message that goes out); a critical after a warning
   breaks through. ``repeat_interval_s = 0`` itemizes everything.
   **Per-type routes** (``[delivery.by_type.<type>]``, Alertmanager's child routes) change
   grouping and repeat for one type. Built in: volume spikes in one digest for every market
   (``group_by = "all"``) at most every 2 h, each itemized (no repeat); whales never folded
   as repeats (``rules_file.DEFAULT_BY_TYPE``).
4. **Quiet hours** (``quiet_hours = "22:00-07:00"`` in ``quiet_timezone``): alerts below
   ``quiet_breakthrough`` (default: critical passes) are held and go out, grouped, when the
   quiet period ends.
5. **Rate cap**: at most ``rate_limit_per_hour`` (20) messages per channel per rolling hour;
   a market's alerts then wait and are merged into its next message (nothing is dropped).

Sending (:class:`Deliverer`): every message is tried up to ``max_attempts`` times with a
doubling backoff from ``retry_backoff_s`` (without blocking the watch loop: a failed message
waits in the outbox for its next attempt); each attempt is logged (``delivered``,
``retried``, ``dead_lettered``) in ``<home>/delivery/log.jsonl``, and what could not be
delivered goes to ``<home>/delivery/dead-letter.jsonl`` with the message. The state
(``<home>/delivery/state.json``: alerts seen per channel, pending groups, outbox) is written
atomically under a file lock, shared by the watch loop and batch detection, so the same alert
(same ``alert_id``) is never sent twice to a channel, across processes and restarts. A
message is marked *in flight* before it is sent; if the process dies before recording the
outcome, it is logged ``interrupted`` and dead-lettered, not re-sent (at most once: whether it
reached the channel cannot be known). A channel with several URLs is delivered per URL.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import polars as pl

from sentinance_assets.lib.detection.rules_file import (
    DEFAULT_BY_TYPE,
    DEFAULT_FATIGUE,
    Channel,
    Delivery,
    Rules,
    Template,
    TypeRoute,
)
from sentinance_assets.lib.detection.sinks import alert_records

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
TYPE_LABEL = {
    "whale": "Whale",
    "volume_spike": "Volume spike",
    "divergence": "Divergence",
    "pump_and_dump": "Pump and dump",
    "wash_trading": "Wash trading",
}
DEFAULT_TITLE = "{SEVERITY} · {type_label} on {exchange} {symbol}"
DEFAULT_BODY = {
    "whale": "{time} {details[side]} of {details[amount]:g} {base} at {details[price]:,.2f} "
    "{quote}: **${value:,.0f}** notional (threshold ${threshold:,.0f})",
    "volume_spike": "{time} **${details[usd]:,.0f}** traded in 60 s over {details[n]} trades "
    "(hourly mean ${details[mean]:,.0f} a minute), z = {value:.1f} (threshold {threshold:g})",
    "divergence": "{time} price **{value:+.2f}%** away from the other venues for "
    "{details[duration_s]:.0f} s (threshold ±{threshold:g}%, {details[venues]} venues)",
    "pump_and_dump": "{time} rose **+{value:.2f}%** on {details[vol_ratio]:.1f}x the usual "
    "trade rate, then fell back to {details[after_low]:,.2f} (threshold {threshold:g}%)",
    "wash_trading": "{time} **{value:.0f}** alternating trades of {details[amount]:g} {base} at "
    "{details[price]:,.2f} (threshold {threshold:g} trades)",
}
# one alert inside a digest line (group_by = "all"): short, the time and the figure that matters
DEFAULT_ITEM = {
    "whale": "{time} **${value:,.0f}** {details[side]}",
    "volume_spike": "{time} **${details[usd]:,.0f}** in {details[n]} trades",
    "divergence": "{time} **{value:+.2f}%** for {details[duration_s]:.0f} s",
    "pump_and_dump": "{time} **+{value:.2f}%** then back to {details[after_low]:,.2f}",
    "wash_trading": "{time} **{value:.0f}** alternating trades of {details[amount]:g} {base}",
}
SAMPLE_DETAILS: dict[str, dict[str, Any]] = {
    "whale": {"trade_id": "1", "price": 60_000.0, "amount": 2.5, "side": "buy", "quote": "USDT"},
    "volume_spike": {
        "usd": 2_500_000.0,
        "n": 80,
        "mean": 150_000.0,
        "std": 90_000.0,
        "z": 26.1,
        "mean_n": 6.0,
        "median_n": 5.0,
    },
    "divergence": {"peak": 1.2, "duration_s": 120, "windows": 4, "venues": 3},
    "pump_and_dump": {
        "rise_pct": 4.1,
        "vol_ratio": 5.2,
        "px": 62_000.0,
        "low": 59_500.0,
        "after_low": 60_100.0,
    },
    "wash_trading": {
        "trades": 8,
        "amount": 0.25,
        "price": 60_000.0,
        "first_ts": "2026-11-10T12:00:00Z",
        "last_ts": "2026-11-10T12:00:21Z",
    },
}


# ------------------------------------------------------------------------------ templates
class _Formatter(string.Formatter):
    """``str.format`` without attribute access (``{x.__class__}``): fields and ``[key]`` only."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if "." in field_name.split("[", 1)[0] or "]." in field_name:
            raise KeyError(f"attribute access is not allowed: {field_name}")
        return super().get_field(field_name, args, kwargs)


_FMT = _Formatter()


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def market_link(app_url: str, exchange: str, symbol: str) -> str:
    """The app's alerts page filtered to one market."""
    query = urlencode({"exchange": exchange, "symbol": symbol})
    return f"{app_url.rstrip('/')}/alerts?{query}"


def template_fields(record: Mapping[str, Any], app_url: str) -> dict[str, Any]:
    """The names a template may use for one alert (see docs/alerts.md)."""
    symbol = str(record.get("symbol") or "")
    base, _, quote = symbol.partition("/")
    when = _when(record.get("event_time"))
    details = record.get("details")
    return {
        "type": record.get("type"),
        "type_label": TYPE_LABEL.get(str(record.get("type")), str(record.get("type"))),
        "exchange": record.get("exchange"),
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "severity": record.get("severity"),
        "SEVERITY": str(record.get("severity") or "").upper(),
        "event_time": f"{when:%Y-%m-%d %H:%M:%S} UTC" if when else "",
        "time": f"{when:%H:%M:%S}" if when else "",
        "value": record.get("value"),
        "threshold": record.get("threshold"),
        "message": record.get("message"),
        "details": details if isinstance(details, dict) else {},
        "alert_id": record.get("alert_id"),
        "rules_version": record.get("rules_version"),
        "link": market_link(app_url, str(record.get("exchange")), symbol),
    }


def render(text: str, record: Mapping[str, Any], app_url: str) -> str:
    return _FMT.vformat(text, (), template_fields(record, app_url))


def render_sample(kind: str, text: str) -> str:
    """``text`` rendered for a made-up alert of ``kind`` (validates a template at load)."""
    sample = {
        "alert_id": "0" * 64,
        "type": kind,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "severity": "warning",
        "event_time": "2026-11-10T12:00:00Z",
        "value": 1.5,
        "threshold": 1.0,
        "message": "sample",
        "details": SAMPLE_DETAILS.get(kind, {}),
        "rules_version": "0" * 12,
    }
    return render(text, sample, "http://127.0.0.1:8501")


# ------------------------------------------------------------------------------ policies
def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@dataclass(frozen=True)
class Route:
    """Grouping and repeat of a channel's alerts, or of one type's (``by_type``)."""

    group_by: str  # market (exchange + symbol) | asset | all (one digest for every market)
    group_wait: float
    group_interval: float
    repeat_interval: float


@dataclass(frozen=True)
class Policy:
    """One channel's effective routing, fatigue settings and templates."""

    name: str
    urls: tuple[str, ...]
    types: frozenset[str]
    severities: frozenset[str]
    exchanges: frozenset[str]
    symbols: frozenset[str]
    group_wait: float
    group_interval: float
    repeat_interval: float
    rate_limit: int
    quiet: tuple[int, int] | None  # minutes of the day, start and end (may wrap midnight)
    quiet_zone: str
    breakthrough: str  # warning | critical | none
    group_by: str  # market (exchange + symbol) | asset
    operations: bool  # also receives operator incidents
    titles: Mapping[str, str]
    bodies: Mapping[str, str]
    app_url: str
    max_age: float
    # types with a route of their own (their own groups and timings; ``by_type``)
    type_routes: Mapping[str, Route] = field(default_factory=dict)
    items: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ITEM))

    @property
    def general(self) -> Route:
        return Route(self.group_by, self.group_wait, self.group_interval, self.repeat_interval)

    def route(self, kind: str | None) -> Route:
        """The grouping and repeat that apply to alerts of ``kind``."""
        return self.type_routes.get(str(kind), self.general) if kind else self.general

    def group_of(self, a: Mapping[str, Any]) -> tuple[str, str | None]:
        """The group key of an alert and the type whose own route it follows (None: the
        channel's grouping). A type whose route groups otherwise than the channel groups
        apart: ``<type>@<key>``; one that changes only the repeat interval does not."""
        kind = str(a.get("type"))
        r = self.type_routes.get(kind)
        g = self.general
        if r is not None and (r.group_by, r.group_wait, r.group_interval) != (
            g.group_by,
            g.group_wait,
            g.group_interval,
        ):
            return f"{kind}@{_group_key(a, r.group_by)}", kind
        # the channel's groups (a type whose route changes only its repeat stays in them)
        return _group_key(a, self.group_by), None

    def routes(self, a: Mapping[str, Any]) -> bool:
        symbol = str(a.get("symbol") or "")
        return (
            a.get("type") in self.types
            and a.get("severity") in self.severities
            and (not self.exchanges or a.get("exchange") in self.exchanges)
            and (
                not self.symbols
                or symbol in self.symbols
                or symbol.split("/", 1)[0] in self.symbols
            )
        )

    def quiet_until(self, now: float) -> float | None:
        """The end of the quiet period ``now`` is in (epoch s), None when not quiet."""
        if self.quiet is None:
            return None
        start, end = self.quiet
        local = datetime.fromtimestamp(now, ZoneInfo(self.quiet_zone))
        minute = local.hour * 60 + local.minute
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if not inside:
            return None
        ahead = (end - minute) % 1440 or 1440
        return now + ahead * 60 - local.second - local.microsecond / 1e6

    def passes_quiet(self, severity: str) -> bool:
        if self.breakthrough == "none":
            return False
        return SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.breakthrough]


def policies(
    rules: Rules, extra_urls: str | None = None, environ: Mapping[str, str] | None = None
) -> list[Policy]:
    """Every channel of the rules file, plus ``default`` for ``SENTINANCE_ALERT_CHANNELS``."""
    d = rules.delivery
    channels: list[Channel] = list(d.channels)
    if extra_urls and extra_urls.strip():
        channels.append(Channel(name="default", urls=tuple(extra_urls.split()), operations=True))
    return [_policy(d, c, environ) for c in channels]


def _policy(d: Delivery, c: Channel, environ: Mapping[str, str] | None) -> Policy:
    def pick(key: str) -> Any:
        for source in (c, d):
            value = getattr(source, key)
            if value is not None:
                return value
        return DEFAULT_FATIGUE[key]

    titles: dict[str, str] = {}
    bodies: dict[str, str] = dict(DEFAULT_BODY)
    items: dict[str, str] = dict(DEFAULT_ITEM)
    for layer in (d.templates, c.templates):
        for kind, tpl in layer.items():
            if tpl.title is not None:
                titles[kind] = tpl.title
            if tpl.body is not None:
                bodies[kind] = tpl.body
            if tpl.item is not None:
                items[kind] = tpl.item
    general = Route(
        str(pick("group_by")),
        float(pick("group_wait_s")),
        float(pick("group_interval_s")),
        float(pick("repeat_interval_s")),
    )
    layers: dict[str, list[TypeRoute]] = {}
    for src in (c.by_type, d.by_type, DEFAULT_BY_TYPE):  # the most specific first
        for t, route in src.items():
            layers.setdefault(str(t), []).append(route)

    def of(t: str, key: str) -> Any:
        return next((v for r in layers[t] if (v := getattr(r, key)) is not None), None)

    routes: dict[str, Route] = {}
    for t in sorted(layers):
        routes[t] = Route(
            str(of(t, "group_by") or general.group_by),
            float(v) if (v := of(t, "group_wait_s")) is not None else general.group_wait,
            float(v) if (v := of(t, "group_interval_s")) is not None else general.group_interval,
            float(v) if (v := of(t, "repeat_interval_s")) is not None else general.repeat_interval,
        )
    quiet = pick("quiet_hours")
    return Policy(
        name=c.name,
        urls=tuple(c.apprise_urls(environ)),
        types=frozenset(c.types),
        severities=frozenset(c.severities),
        exchanges=frozenset(e.lower() for e in c.exchanges),
        symbols=frozenset(s.upper() for s in c.symbols),
        group_wait=float(pick("group_wait_s")),
        group_interval=float(pick("group_interval_s")),
        repeat_interval=float(pick("repeat_interval_s")),
        rate_limit=int(pick("rate_limit_per_hour")),
        quiet=(_minutes(quiet[:5]), _minutes(quiet[6:])) if quiet else None,
        quiet_zone=str(pick("quiet_timezone")),
        breakthrough=str(pick("quiet_breakthrough")),
        group_by=str(pick("group_by")),
        operations=c.operations,
        titles=titles,
        bodies=bodies,
        app_url=d.app_url,
        max_age=d.max_alert_age_s,
        type_routes=routes,
        items=items,
    )


def backtest_policy(delivery: Delivery | None = None) -> Policy:
    """The fatigue settings of ``delivery`` (defaults when None) as one catch-all channel,
    without URLs and without an age limit: what the backtest counts messages with."""
    d = delivery or Delivery()
    p = _policy(d, Channel(name="backtest", url="null://"), {})
    return Policy(**{**p.__dict__, "urls": (), "max_age": float("inf")})


# ------------------------------------------------------------------------------ planning
def _now_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_epoch(a: Mapping[str, Any]) -> float:
    when = _when(a.get("event_time"))
    return when.timestamp() if when else 0.0


def _group_key(a: Mapping[str, Any], by: str = "market") -> str:
    if by == "all":
        return "*"
    if by == "asset":
        return str(a.get("symbol") or "").split("/", 1)[0]
    return f"{a.get('exchange')}|{a.get('symbol')}"


def empty_channel_state() -> dict[str, Any]:
    return {
        "seen": {},  # alert_id -> event time (epoch s): never sent twice
        "pending": {},  # market -> {"first": t, "alerts": [records]}
        "groups": {},  # market -> last message time
        "conditions": {},  # market|type -> [last itemized time, severity]
        "sends": [],  # message times in the last hour (rate cap)
        "outbox": [],  # messages waiting for their (next) attempt
        "inflight": {},  # message id -> message, being sent by a process
    }


@dataclass
class Event:
    """One delivery-log record."""

    channel: str
    status: str  # queued | delivered | retried | dead_lettered | suppressed | stale | interrupted
    at: float
    alert_ids: list[str] = field(default_factory=list)
    message_id: str | None = None
    title: str | None = None
    attempt: int | None = None
    error: str | None = None
    url: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "at": _now_iso(self.at),
            "channel": self.channel,
            "status": self.status,
            "alerts": len(self.alert_ids),
            "alert_ids": self.alert_ids,
            "message_id": self.message_id,
            "title": self.title,
            "attempt": self.attempt,
            "url": self.url,
            "error": self.error,
        }


class Planner:
    """Routing, grouping, repeat, quiet hours and rate cap over a JSON-able state (see the
    module docstring). No I/O: :class:`Deliverer` persists and sends; the backtest simulates."""

    def __init__(self, channels: list[Policy], state: dict[str, Any]) -> None:
        self.channels = {c.name: c for c in channels}
        self.state = state
        for name in self.channels:
            state.setdefault(name, empty_channel_state())

    def submit(self, records: Iterable[Mapping[str, Any]], now: float) -> list[Event]:
        events: list[Event] = []
        records = list(records)
        for name, policy in self.channels.items():
            st = self.state[name]
            stale: list[str] = []
            for a in records:
                aid = str(a["alert_id"])
                if aid in st["seen"] or not policy.routes(a):
                    continue
                at = _event_epoch(a)
                st["seen"][aid] = at
                if now - at > policy.max_age:
                    stale.append(aid)
                    continue
                key, route = policy.group_of(a)
                group = st["pending"].setdefault(key, {"first": now, "alerts": [], "route": route})
                group["alerts"].append(dict(a))
            if stale:
                events.append(Event(name, "stale", now, stale))
        return events

    def _due(self, policy: Policy, key: str, group: dict, now: float, flush: bool) -> float:
        st = self.state[policy.name]
        route = policy.route(group.get("route"))
        last = st["groups"].get(key)
        if last is not None and group["first"] - last < route.group_interval:
            due = last + route.group_interval
        else:
            due = now if flush else group["first"] + route.group_wait
        at = max(due, now)
        quiet_end = policy.quiet_until(at)
        if quiet_end is not None and not any(
            policy.passes_quiet(str(a.get("severity"))) for a in group["alerts"]
        ):
            due = quiet_end
        return due

    def _room(self, policy: Policy, now: float) -> float:
        """When the next message fits under the rate cap (``now`` if it fits now)."""
        sends = [t for t in self.state[policy.name]["sends"] if t > now - 3600]
        self.state[policy.name]["sends"] = sends
        if len(sends) < policy.rate_limit:
            return now
        return sorted(sends)[len(sends) - policy.rate_limit] + 3600

    def plan(self, now: float, flush: bool = False) -> list[Event]:
        """Turn the groups that are due into messages in the outbox."""
        events: list[Event] = []
        for name, policy in self.channels.items():
            st = self.state[name]
            due = sorted((self._due(policy, k, g, now, flush), k) for k, g in st["pending"].items())
            for when, key in due:
                if when > now or self._room(policy, now) > now:
                    continue
                group = st["pending"].pop(key)
                events.extend(self._message(policy, key, group["alerts"], now, group.get("route")))
        return events

    def _message(
        self, policy: Policy, key: str, alerts: list[dict], now: float, route: str | None = None
    ) -> list[Event]:
        st = self.state[policy.name]
        fresh: list[dict] = []
        repeats: list[dict] = []
        for a in sorted(alerts, key=lambda r: (str(r.get("event_time")), str(r["alert_id"]))):
            cond = st["conditions"].get(f"{key}|{a.get('type')}")
            rank = SEVERITY_RANK.get(str(a.get("severity")), 0)
            if (
                cond is not None
                and now - cond[0] < policy.route(a.get("type")).repeat_interval
                and rank <= SEVERITY_RANK.get(cond[1], 0)
            ):
                repeats.append(a)
            else:
                fresh.append(a)
        events = []
        if repeats:
            events.append(Event(policy.name, "suppressed", now, [a["alert_id"] for a in repeats]))
        if not fresh:
            return events
        for a in fresh:
            ckey = f"{key}|{a.get('type')}"
            old = st["conditions"].get(ckey)
            sev = str(a.get("severity"))
            if (
                old is not None
                and now - old[0] < policy.route(a.get("type")).repeat_interval
                and SEVERITY_RANK.get(old[1], 0) > SEVERITY_RANK.get(sev, 0)
            ):
                sev = old[1]  # the condition stays notified at its highest severity
            st["conditions"][ckey] = [now, sev]
        title, body = compose(policy, fresh, repeats, policy.route(route).group_by)
        ids = [a["alert_id"] for a in fresh]
        mid = hashlib.sha256(f"{policy.name}|{'|'.join(ids)}".encode()).hexdigest()[:16]
        critical = any(a.get("severity") == "critical" for a in fresh)
        st["outbox"].append(
            {
                "id": mid,
                "group": key,
                "title": title,
                "body": body,
                "notify_type": "failure" if critical else "warning",
                "alert_ids": ids,
                "urls": list(range(len(policy.urls))),  # indexes of URLs still to deliver
                "attempts": 0,
                "next_at": now,
                "created": now,
            }
        )
        st["groups"][key] = now
        st["sends"].append(now)
        events.append(Event(policy.name, "queued", now, ids, mid, title))
        return events

    def next_due(self, now: float, outbox: bool = True) -> float | None:
        """The earliest time something becomes due (a group, or with ``outbox`` a message
        awaiting its next attempt), None when idle."""
        times: list[float] = []
        for name, policy in self.channels.items():
            st = self.state[name]
            for key, group in st["pending"].items():
                due = self._due(policy, key, group, now, False)
                times.append(max(due, self._room(policy, now)))
            if outbox:
                times += [m["next_at"] for m in st["outbox"]]
        return min(times) if times else None

    def take(self) -> list[dict]:
        """Empty every outbox (the backtest's "sent"); the messages, in creation order."""
        out = []
        for name in self.channels:
            out += self.state[name]["outbox"]
            self.state[name]["outbox"] = []
        return sorted(out, key=lambda m: m["created"])

    def prune(self, now: float) -> None:
        """Forget what can no longer matter: seen alerts past the age limit, old groups."""
        for name, policy in self.channels.items():
            st = self.state[name]
            if policy.max_age != float("inf"):
                horizon = now - policy.max_age - 3600
                st["seen"] = {k: t for k, t in st["seen"].items() if t >= horizon}
            spans = [(r.group_interval, r.repeat_interval) for r in policy.type_routes.values()]
            keep = max(policy.group_interval, policy.repeat_interval, *sum(spans, ())) + 3600
            st["groups"] = {k: t for k, t in st["groups"].items() if t >= now - keep}
            st["conditions"] = {k: v for k, v in st["conditions"].items() if v[0] >= now - keep}


PLURAL = {
    "whale": "whales",
    "volume_spike": "volume spikes",
    "divergence": "divergences",
    "pump_and_dump": "pumps and dumps",
    "wash_trading": "wash-trading runs",
}


def _label(kind: Any, n: int = 1) -> str:
    if n == 1:
        return TYPE_LABEL.get(str(kind), str(kind)).lower()
    return PLURAL.get(str(kind), str(kind))


def compose(
    policy: Policy, fresh: list[dict], repeats: list[dict], group_by: str | None = None
) -> tuple[str, str]:
    """Title and Markdown body of one message for one group (a market, an asset, or with
    ``group_by = "all"`` a digest of every market: one line per market and type, each alert
    itemized in it by its type's short ``item`` template)."""
    by = group_by or policy.group_by
    first = fresh[0]
    app = policy.app_url
    worst = max((str(a.get("severity")) for a in fresh), key=lambda s: SEVERITY_RANK.get(s, 0))
    kinds = Counter(str(a["type"]) for a in fresh)
    what = ", ".join(f"{n} {_label(k, n)}" for k, n in sorted(kinds.items()))
    if by != "all":  # the titles as they were: "2 alerts on ...: 1 volume spike, 1 whale"
        labels = Counter(TYPE_LABEL.get(k, k).lower() for k in (str(a["type"]) for a in fresh))
        what = ", ".join(f"{n} {k}" for k, n in sorted(labels.items()))
    markets = sorted({f"{a['exchange']} {a['symbol']}" for a in fresh})
    lines = []
    if by == "all":
        where = markets[0] if len(markets) == 1 else f"{len(markets)} markets"
        if len(kinds) == 1:
            title = f"{worst.upper()} · {len(fresh)} {_label(first['type'], len(fresh))} on {where}"
        else:
            title = f"{worst.upper()} · {len(fresh)} alerts on {where}: {what}"
        rows: dict[tuple[str, str, str], list[dict]] = {}
        for a in fresh:
            rows.setdefault((str(a["exchange"]), str(a["symbol"]), str(a["type"])), []).append(a)
        for (ex, sym, kind), group in sorted(rows.items()):
            tpl = policy.items.get(kind, "{time}")
            shown = [
                _safe(tpl, a, app) + (" (critical)" if a.get("severity") == "critical" else "")
                for a in group
            ]
            label = TYPE_LABEL.get(kind, kind)
            lines.append(f"- {label} on {ex} {sym} ({len(group)}): " + "; ".join(shown))
    else:
        if len(fresh) == 1:
            title = _safe(policy.titles.get(str(first["type"]), DEFAULT_TITLE), first, app)
        else:
            market = markets[0] if len(markets) == 1 else f"{len(markets)} {_base(first)} markets"
            title = f"{worst.upper()} · {len(fresh)} alerts on {market}: {what}"
        for a in fresh:
            body = policy.bodies.get(str(a["type"]), "{time} {message}")
            label = TYPE_LABEL.get(str(a["type"]), str(a["type"]))
            where = f" on {a['exchange']} {a['symbol']}" if by == "asset" else ""
            lines.append(f"- {label}{where} ({a.get('severity')}): {_safe(body, a, app)}")
    if repeats:
        folded = Counter(str(a["type"]) for a in repeats)
        what = ", ".join(f"{n} {_label(k, n)}" for k, n in sorted(folded.items()))
        hours = policy.route(str(repeats[0]["type"])).repeat_interval / 3600
        lines.append(f"- also {what} of conditions already notified (repeat interval {hours:g} h)")
    lines.append("")
    if by == "all":
        link = f"{app.rstrip('/')}/alerts"
    elif by == "asset":
        link = f"{app.rstrip('/')}/alerts?{urlencode({'symbol': first['symbol']})}"
    else:
        link = market_link(app, str(first["exchange"]), str(first["symbol"]))
    lines.append(f"Open in Sentinance: [{link}]({link})")  # the URL survives plain text
    return title, "\n".join(lines)


def simulate(policy: Policy, alerts: Iterable[tuple[float, Mapping[str, Any]]]) -> list[dict]:
    """The messages ``policy`` would send for ``alerts`` arriving at the given times (epoch s,
    e.g. when the detector decided them), every send succeeding: the backtest's "delivered
    after grouping". Each message has ``created`` and ``alert_ids``; suppressed repeats are
    not in any message."""
    planner = Planner([policy], {})
    sent: list[dict] = []
    now = -float("inf")

    def run_until(limit: float) -> None:
        nonlocal now
        while True:
            due = planner.next_due(now, outbox=False)
            if due is None or due > limit:
                return
            now = max(now, due)
            planner.plan(now)
            sent.extend(planner.take())

    for at, record in sorted(alerts, key=lambda x: (x[0], str(x[1]["alert_id"]))):
        run_until(at)
        now = max(now, at)
        planner.submit([record], now)
        planner.plan(now)
        sent.extend(planner.take())
    run_until(float("inf"))
    return sent


def _base(a: Mapping[str, Any]) -> str:
    return str(a.get("symbol") or "").split("/", 1)[0]


def _safe(text: str, record: Mapping[str, Any], app_url: str) -> str:
    """A template rendered, or the detector's own message when the values do not fit it."""
    try:
        return render(text, record, app_url)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return f"{record.get('message')}"


# ------------------------------------------------------------------------------ sending
class Transport(Protocol):
    def send(self, url: str, title: str, body: str, notify_type: str) -> tuple[bool, str]: ...


class AppriseTransport:
    """Sends through Apprise; ``(ok, error text)``."""

    def send(self, url: str, title: str, body: str, notify_type: str) -> tuple[bool, str]:
        import apprise

        ap = apprise.Apprise()
        if not ap.add(url):
            return False, f"not a valid Apprise URL: {redact(url)}"
        result = ap.notify(
            body=body,
            title=title,
            body_format=apprise.NotifyFormat.MARKDOWN,
            notify_type=notify_type,
            log_level=logging.WARNING,
        )
        if result:
            return True, ""
        errors = [e.message for r in result.results for e in r.logs()]
        return False, "; ".join(errors)[-500:] or f"status {result.status.name}"


def redact(url: str) -> str:
    """An URL without its secrets: scheme and host only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return url.split(":", 1)[0] + "://"


@dataclass
class DeliveryPaths:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def dead_letter(self) -> Path:
        return self.root / "dead-letter.jsonl"


def delivery_dir(home: Path) -> Path:
    return Path(home) / "delivery"


class Deliverer:
    """The planner over the persisted state, with sending, retries and the delivery log."""

    def __init__(
        self,
        channels: list[Policy],
        root: Path,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 4,
        retry_backoff: float = 5.0,
    ) -> None:
        self.channels = channels
        self.paths = DeliveryPaths(Path(root))
        self.transport: Transport = transport or AppriseTransport()
        self.clock = clock
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.owner = os.getpid()

    @classmethod
    def from_rules(
        cls, rules: Rules, home: Path, extra_urls: str | None = None, **kw: Any
    ) -> Deliverer | None:
        """None when no channel is configured."""
        chans = policies(rules, extra_urls)
        if not chans:
            return None
        d = rules.delivery
        return cls(
            chans,
            delivery_dir(home),
            max_attempts=d.max_attempts,
            retry_backoff=d.retry_backoff_s,
            **kw,
        )

    # ------------------------------------------------------------------ state
    @contextmanager
    def _state(self) -> Iterator[Planner]:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with (self.paths.root / ".state.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._load()
                planner = Planner(self.channels, state.setdefault("channels", {}))
                yield planner
                self._save(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.paths.state.read_text("utf-8"))
        except FileNotFoundError:
            return {"version": 1, "channels": {}}

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.paths.state.with_name(f".{self.paths.state.name}.{uuid.uuid4().hex}.tmp")
        with tmp.open("w") as fh:
            json.dump(state, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.paths.state)

    def _log(self, events: Iterable[Event]) -> None:
        lines = [json.dumps(e.record(), sort_keys=True) + "\n" for e in events]
        if not lines:
            return
        _append(self.paths.log, "".join(lines))

    def _dead(self, channel: str, msg: dict, error: str, now: float, url: str) -> None:
        rec = {"at": _now_iso(now), "channel": channel, "url": url, "error": error, **msg}
        _append(self.paths.dead_letter, json.dumps(rec, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ API
    def submit(self, alerts: pl.DataFrame | list[dict]) -> None:
        records = alert_records(alerts) if isinstance(alerts, pl.DataFrame) else alerts
        now = self.clock()
        with self._state() as planner:
            events = planner.submit(records, now)
        self._log(events)

    def tick(self, flush: bool = False) -> int:
        """Plan what is due and attempt every message whose time has come; the number of
        messages delivered. ``flush`` sends groups without their group wait (batch)."""
        now = self.clock()
        claimed: list[tuple[Policy, dict]] = []
        with self._state() as planner:
            events = self._recover(planner, now)
            events += planner.plan(now, flush)
            for policy in self.channels:
                st = planner.state[policy.name]
                keep = []
                for msg in st["outbox"]:
                    if msg["next_at"] <= now:
                        st["inflight"][msg["id"]] = {**msg, "owner": self.owner}
                        claimed.append((policy, msg))
                    else:
                        keep.append(msg)
                st["outbox"] = keep
            planner.prune(now)
        self._log([e for e in events if e.status != "queued"])
        if not claimed:
            return 0
        outcomes = [(p, m, self._attempt(p, m)) for p, m in claimed]
        delivered = 0
        now = self.clock()
        with self._state() as planner:
            events = []
            for policy, msg, failures in outcomes:
                st = planner.state[policy.name]
                st["inflight"].pop(msg["id"], None)
                msg["attempts"] += 1
                done = [i for i in msg["urls"] if i not in failures]
                for i in done:
                    delivered += 1
                    events.append(self._event(policy, msg, "delivered", now, i))
                if not failures:
                    continue
                msg["urls"] = sorted(failures)
                for i, error in failures.items():
                    if msg["attempts"] >= self.max_attempts:
                        url = redact(policy.urls[i])
                        self._dead(policy.name, msg, error, now, url)
                        events.append(self._event(policy, msg, "dead_lettered", now, i, error))
                    else:
                        events.append(self._event(policy, msg, "retried", now, i, error))
                if msg["attempts"] < self.max_attempts:
                    msg["next_at"] = now + self.retry_backoff * 2 ** (msg["attempts"] - 1)
                    st["outbox"].append(msg)
        self._log(events)
        return delivered

    def _event(
        self,
        policy: Policy,
        msg: dict,
        status: str,
        now: float,
        url_index: int,
        error: str | None = None,
    ) -> Event:
        return Event(
            policy.name,
            status,
            now,
            list(msg["alert_ids"]),
            msg["id"],
            msg["title"],
            msg["attempts"],
            error,
            redact(policy.urls[url_index]) if url_index < len(policy.urls) else None,
        )

    def _attempt(self, policy: Policy, msg: dict) -> dict[int, str]:
        """Send ``msg`` to each of its URLs still pending; {url index: error} of failures."""
        failures: dict[int, str] = {}
        for i in msg["urls"]:
            if i >= len(policy.urls):
                failures[i] = "the channel no longer has this URL"
                continue
            try:
                ok, error = self.transport.send(
                    policy.urls[i], msg["title"], msg["body"], msg["notify_type"]
                )
            except Exception as exc:  # noqa: BLE001 - a plugin's failure is a failed attempt
                ok, error = False, repr(exc)
            if not ok:
                failures[i] = error or "failed"
        return failures

    def _recover(self, planner: Planner, now: float) -> list[Event]:
        """In-flight messages of a process that died: logged ``interrupted``, dead-lettered,
        never re-sent (they may have reached the channel)."""
        events = []
        for policy in self.channels:
            st = planner.state[policy.name]
            for mid, msg in list(st["inflight"].items()):
                owner = int(msg.get("owner", 0))
                if owner == self.owner or _alive(owner):
                    continue
                del st["inflight"][mid]
                error = "interrupted: the sending process stopped before recording the outcome"
                for i in msg["urls"]:
                    url = redact(policy.urls[i]) if i < len(policy.urls) else ""
                    self._dead(policy.name, msg, error, now, url)
                    events.append(self._event(policy, msg, "interrupted", now, i, error))
        return events

    def submit_incident(self, incident_id: str, title: str, body: str, severity: str) -> None:
        """An operator incident, straight to the outbox of every channel with ``operations``
        (no grouping or repeat: incidents are deduplicated by their sender), once per channel
        (``incident_id`` joins the alert ids a channel has seen)."""
        now = self.clock()
        with self._state() as planner:
            for policy in self.channels:
                st = planner.state[policy.name]
                if not policy.operations or incident_id in st["seen"]:
                    continue
                st["seen"][incident_id] = now
                st["outbox"].append(
                    {
                        "id": hashlib.sha256(f"{policy.name}|{incident_id}".encode()).hexdigest()[
                            :16
                        ],
                        "group": "operations",
                        "title": title,
                        "body": body,
                        "notify_type": "failure" if severity == "critical" else "warning",
                        "alert_ids": [incident_id],
                        "urls": list(range(len(policy.urls))),
                        "attempts": 0,
                        "next_at": now,
                        "created": now,
                    }
                )

    def drain(self, max_wait: float = 120.0, sleep: Callable[[float], None] = time.sleep) -> int:
        """Batch delivery: flush every group now, then wait out retries (at most
        ``max_wait`` seconds in all). Groups held by quiet hours or the rate cap stay
        pending for the next tick (the watch loop's, or the next batch run's)."""
        delivered = self.tick(flush=True)
        deadline = self.clock() + max_wait
        while True:
            with self._state() as planner:
                retry = [
                    m["next_at"] for p in self.channels for m in planner.state[p.name]["outbox"]
                ]
            if not retry:
                return delivered
            wait = min(retry) - self.clock()
            if self.clock() + max(wait, 0) > deadline:
                return delivered
            if wait > 0:
                sleep(wait)
            delivered += self.tick(flush=True)

    def pending(self) -> dict[str, int]:
        """Alerts waiting per channel (groups not yet sent) plus messages awaiting a retry."""
        with self._state() as planner:
            return {
                p.name: sum(len(g["alerts"]) for g in planner.state[p.name]["pending"].values())
                + len(planner.state[p.name]["outbox"])
                for p in self.channels
            }


def notify_channels(
    settings: Any, incident_id: str, title: str, body: str, severity: str, max_wait: float = 20.0
) -> int:
    """Deliver an operator incident to the channels with ``operations`` (and the
    ``SENTINANCE_ALERT_CHANNELS`` channel); the number delivered. Invalid rules or a missing
    channel URL variable deliver nothing (the incident is still in the sender's own log)."""
    from sentinance_assets.lib.detection.rules_file import RulesError, rules_for

    try:
        deliverer = Deliverer.from_rules(
            rules_for(settings), settings.home, settings.alert_channels
        )
    except RulesError:
        return 0
    if deliverer is None:
        return 0
    deliverer.submit_incident(incident_id, title, body, severity)
    return deliverer.drain(max_wait=max_wait)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _append(path: Path, text: str) -> None:
    """One ``write`` with O_APPEND: concurrent writers do not interleave within a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_delivery_log(home: Path, limit: int = 5000) -> pl.DataFrame:
    """The newest ``limit`` records of the delivery log (the app's view), newest first."""
    path = DeliveryPaths(delivery_dir(home)).log
    schema = {
        "at": pl.String,
        "channel": pl.String,
        "status": pl.String,
        "alerts": pl.Int64,
        "title": pl.String,
        "attempt": pl.Int64,
        "url": pl.String,
        "error": pl.String,
        "message_id": pl.String,
    }
    if not path.exists():
        return pl.DataFrame(schema=schema)
    rows = []
    with path.open() as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line
            rows.append({k: rec.get(k) for k in schema})
    df = pl.DataFrame(rows[-limit:], schema=schema)
    return df.reverse()


# ------------------------------------------------------------------------------ the sink
class DeliverySink:
    """The watch loop's sink: submit a batch's alerts, then send what is due. The loop also
    calls :meth:`tick` after every step so that group waits expire without new alerts."""

    name = "delivery"

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer

    def send(self, alerts: pl.DataFrame, batch_key: str) -> None:
        if alerts.height:
            self.deliverer.submit(alerts)
        self.deliverer.tick()

    def tick(self) -> None:
        self.deliverer.tick()


def template_of(kind: str, part: str = "body") -> str:
    """The built-in template of ``kind`` (``body``) or the single-alert title."""
    return DEFAULT_BODY[kind] if part == "body" else DEFAULT_TITLE


__all__ = [
    "AppriseTransport",
    "Deliverer",
    "DeliverySink",
    "Planner",
    "Policy",
    "Template",
    "backtest_policy",
    "policies",
    "read_delivery_log",
    "render",
]
