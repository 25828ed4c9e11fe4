"""supervisord event listener of ``sentinance serve`` (``python -m`` this module).

supervisord tells it every process state change and a tick every 5 seconds. It keeps three
things supervisord itself does not:

* restart counts per component (``<home>/serve/components.json``: starts, unexpected exits,
  the last exit) for ``sentinance status``;
* the watch loop's lag and throughput (``<home>/serve/watch.json``), sampled from its
  checkpoint (the committed stream position and the trades processed so far);
* a new start for a component that gave up (FATAL, after supervisord's own retries with
  back-off), :data:`REVIVE_AFTER_S` later: a service left alone for days must not stay down
  because a venue or a port was unavailable for a while.

Everything is written atomically; a failure here is logged to stderr (``logs/listener.log``)
and never stops the listener.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from sentinance_assets.lib.operations.supervision import (
    components_state_path,
    watch_state_path,
)
from sentinance_assets.settings import Settings

REVIVE_AFTER_S = 60.0
THROUGHPUT_WINDOW_S = 60.0


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def parse_tokens(line: str) -> dict[str, str]:
    """``a:1 b:two`` -> ``{"a": "1", "b": "two"}`` (supervisord's header and payload form)."""
    out = {}
    for token in line.split():
        key, _, value = token.partition(":")
        out[key] = value
    return out


class Components:
    """Restart bookkeeping from PROCESS_STATE events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: dict[str, dict[str, Any]] = {}
        self.fatal_since: dict[str, float] = {}

    def on_event(self, event: str, payload: dict[str, str], now: float) -> None:
        name = payload.get("processname", "?")
        entry = self.state.setdefault(
            name, {"starts": 0, "restarts": 0, "crashes": 0, "state": "?"}
        )
        state = event.removeprefix("PROCESS_STATE_")
        entry["state"] = state
        entry["changed_at"] = now
        if state == "STARTING":
            entry["starts"] += 1
            entry["restarts"] = max(entry["starts"] - 1, 0)
        elif state == "RUNNING":
            entry["running_since"] = now
            self.fatal_since.pop(name, None)
        elif state in ("EXITED", "BACKOFF"):
            if payload.get("expected") == "0" or state == "BACKOFF":
                entry["crashes"] += 1
                entry["last_crash_at"] = now
        elif state == "FATAL":
            self.fatal_since[name] = now
            entry["fatal_at"] = now
        _write(self.path, self.state)

    def due_revivals(self, now: float) -> list[str]:
        due = [n for n, t in self.fatal_since.items() if now - t >= REVIVE_AFTER_S]
        for name in due:
            self.fatal_since.pop(name)
        return due


def read_checkpoint_head(path: Path) -> dict[str, Any] | None:
    """The JSON head line of a watch checkpoint (cursor_ms, trades, alerts, batches)."""
    try:
        with path.open("rb") as fh:
            return json.loads(fh.readline())
    except (OSError, ValueError):
        return None


def newest_checkpoint(settings: Settings) -> Path | None:
    files = list(settings.checkpoints_dir.glob("watch-*.ckpt"))
    return max(files, key=lambda p: p.stat().st_mtime) if files else None


class WatchSampler:
    """Lag (now - committed position) and trades per second over the last minute."""

    def __init__(self, settings: Settings, path: Path) -> None:
        self.settings = settings
        self.path = path
        self.samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float) -> dict[str, Any] | None:
        ckpt = newest_checkpoint(self.settings)
        head = read_checkpoint_head(ckpt) if ckpt is not None else None
        if ckpt is None or head is None:
            return None
        trades = int(head.get("trades", 0))
        if self.samples and trades < self.samples[-1][1]:
            self.samples.clear()  # a new checkpoint (another stream): start over
        self.samples.append((now, trades))
        while len(self.samples) > 2 and now - self.samples[0][0] > THROUGHPUT_WINDOW_S:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        rate = (trades - n0) / (now - t0) if now > t0 else None
        state = {
            "stream": ckpt.stem,
            "cursor": head.get("cursor_ms", 0) / 1000,
            "lag_s": round(now - head.get("cursor_ms", 0) / 1000, 3),
            "trades_per_s": None if rate is None else round(rate, 3),
            "trades": trades,
            "alerts": head.get("alerts", 0),
            "sampled_at": now,
        }
        _write(self.path, state)
        return state


def main() -> int:  # pragma: no cover - exercised through supervisord by tests/commands
    from supervisor import childutils

    settings = Settings.from_env()
    components = Components(components_state_path(settings))
    watch = WatchSampler(settings, watch_state_path(settings))
    rpc = childutils.getRPCInterface(os.environ)
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        now = time.time()
        try:
            event = headers.get("eventname", "")
            if event.startswith("PROCESS_STATE_"):
                head, _, _ = payload.partition("\n")
                components.on_event(event, parse_tokens(head), now)
            elif event.startswith("TICK"):
                watch.sample(now)
                for name in components.due_revivals(now):
                    print(f"{name} gave up: starting it again", file=sys.stderr, flush=True)
                    rpc.supervisor.startProcess(name, False)
        except Exception:  # noqa: BLE001 - the listener must keep answering supervisord
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
