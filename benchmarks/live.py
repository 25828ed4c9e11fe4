"""Live service benchmark: `sentinance serve` in live mode against a local market for a while.

    .venv/bin/python benchmarks/live.py --minutes 30 [--refresh-minutes 1] [--home DIR]

Runs the same setup as the soak test (``tests/test_soak.py``: Binance over REST and websocket,
Coinbase over REST, trades in real time with a whale every 15 s, an RSS feed publishing every
20 s) and prints:

* freshness lag p50 / p95 per mart, the batch alert feed and the forecasts (seconds since the
  last materialization, sampled every ``--sample-seconds``), and of the newest 1-minute candle
  behind the newest stored trade;
* refresh cost per cycle: wall seconds of the ingest run and of the automation runs that
  followed it (median, p95), and CPU seconds of the whole service per refresh interval;
* CPU share of the service (all its processes, finished runs included) over the run, of the
  machine's cores;
* memory per component at the start (after warm-up) and at the end, and the growth;
* the watch loop's lag and throughput, and the whale alerts delivered (missed, doubled).

With ``--json FILE`` the figures are also written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.live_market import live_market  # noqa: E402
from tests.soak_harness import Run, Service, wait_until  # noqa: E402

COMPONENTS = ("code-server", "daemon", "webserver", "watch", "app", "api")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cycles(runs: list[Run]) -> list[dict[str, Any]]:
    """Each successful live refresh and the automation runs it led to (those created after it
    and before the next refresh's)."""
    ingest = [r for r in runs if r.job == "ingest_job" and r.status == "SUCCESS"]
    auto = [r for r in runs if r.job == "__ASSET_JOB" and r.seconds is not None]
    out = []
    for i, r in enumerate(ingest):
        nxt = ingest[i + 1].ended if i + 1 < len(ingest) else float("inf")
        follow = [a for a in auto if (r.ended or 0) <= a.created < (nxt or float("inf"))]
        out.append(
            {
                "ingest_s": r.seconds,
                "automation_runs": len(follow),
                "automation_s": sum(a.seconds or 0 for a in follow),
                "start_delay_s": [round((a.started or 0) - a.created, 1) for a in follow],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--refresh-minutes", type=int, default=1)
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    parser.add_argument("--home", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="sentinance-live-")) / "home"
    print(f"home {home}; {args.minutes:g} minutes, refresh every {args.refresh_minutes} min")
    lags: dict[str, list[float]] = defaultdict(list)
    watch_lags: list[float] = []
    watch_rates: list[float] = []
    with live_market(per_second=2.0, whale_every_s=15.0, news_every_s=20.0) as market:
        service = Service(home, market, refresh_minutes=args.refresh_minutes).start()
        try:
            wait_until(lambda: service.running(*COMPONENTS), 300, "every component")
            wait_until(lambda: (service.report().get("watch") or {}).get("lag_s") is not None,
                       180, "the watch loop")  # fmt: skip
            market.printer.whaling.set()
            wait_until(lambda: any(r.status == "SUCCESS" and "marts/candles" in r.assets
                                   for r in service.runs()), 600, "the first marts")  # fmt: skip
            start_rss = {n: service.rss(n) for n in COMPONENTS}
            cpu0, t0 = service.cpu_seconds(), time.monotonic()
            deadline = t0 + args.minutes * 60
            while time.monotonic() < deadline:
                report = service.report()
                for f in report["freshness"]:
                    if f["lag_s"] is not None:
                        lags[f["asset"]].append(f["lag_s"])
                data = report.get("data") or {}
                if data.get("candle_lag_s") is not None:
                    lags["1m candle behind newest trade"].append(data["candle_lag_s"])
                w = report.get("watch") or {}
                if w.get("lag_s") is not None:
                    watch_lags.append(w["lag_s"])
                if w.get("trades_per_s") is not None:
                    watch_rates.append(w["trades_per_s"])
                time.sleep(args.sample_seconds)
            elapsed = time.monotonic() - t0
            cpu = service.cpu_seconds() - cpu0
            end_rss = {n: service.rss(n) for n in COMPONENTS}
            market.printer.whaling.clear()
            time.sleep(20)
            runs = service.runs()
            whales = {(w.venue, w.symbol, w.ts_ms) for w in market.printer.whales}
            got: Counter[tuple[str, str, int]] = Counter(
                (str(b.get("exchange")), str(b.get("symbol")),
                 int(datetime.fromisoformat(b["event_time"].replace("Z", "+00:00")).timestamp()
                     * 1000))
                for b in market.webhook.bodies() if b.get("type") == "whale"
            )  # fmt: skip
        finally:
            code = service.stop()
    cyc = cycles(runs)[1:]  # the first refresh also built the whole history
    refresh_s = args.refresh_minutes * 60
    figures = {
        "minutes": round(elapsed / 60, 1),
        "freshness_lag_s": {
            k: {"p50": pct(v, 0.5), "p95": pct(v, 0.95), "samples": len(v)}
            for k, v in sorted(lags.items())
        },
        "refresh_cycles": len(cyc),
        "ingest_s_p50": pct([c["ingest_s"] for c in cyc if c["ingest_s"]], 0.5),
        "automation_s_per_cycle_p50": pct([c["automation_s"] for c in cyc], 0.5),
        "automation_s_per_cycle_p95": pct([c["automation_s"] for c in cyc], 0.95),
        "automation_runs_per_cycle": pct([c["automation_runs"] for c in cyc], 0.5),
        "cpu_s_per_refresh_interval": round(cpu / (elapsed / refresh_s), 1),
        "cpu_share_of_machine": round(cpu / (elapsed * (os.cpu_count() or 1)), 3),
        "memory_mb": {
            n: {"start": round(start_rss[n] / 2**20), "end": round(end_rss[n] / 2**20)}
            for n in COMPONENTS
        },
        "watch_lag_s_p50": pct(watch_lags, 0.5),
        "watch_lag_s_p95": pct(watch_lags, 0.95),
        "watch_trades_per_s_p50": pct(watch_rates, 0.5),
        "runs": dict(Counter(f"{r.job}:{r.status}" for r in runs)),
        "whales": len(whales),
        "whales_missed": len(whales - set(got)),
        "whales_doubled": sum(1 for k, n in got.items() if k in whales and n > 1),
        "serve_exit": code,
    }
    print(f"\nover {figures['minutes']} min, {len(cyc)} refresh cycles")
    print("freshness lag (s)            p50      p95")
    for k, v in figures["freshness_lag_s"].items():
        print(f"  {k:<30} {v['p50']:>7.0f} {v['p95']:>8.0f}")
    print(
        f"refresh cost per cycle: ingest {figures['ingest_s_p50']} s (p50); automation "
        f"{figures['automation_s_per_cycle_p50']} s p50 / {figures['automation_s_per_cycle_p95']}"
        f" s p95 in {figures['automation_runs_per_cycle']} run(s); service CPU "
        f"{figures['cpu_s_per_refresh_interval']} s per {refresh_s} s interval"
    )
    print(f"CPU share of the machine: {figures['cpu_share_of_machine']:.1%}")
    print("memory (MB)          start    end")
    for n, m in figures["memory_mb"].items():
        print(f"  {n:<16} {m['start']:>7} {m['end']:>6}")
    print(
        f"watch loop lag p50 {figures['watch_lag_s_p50']} s, p95 {figures['watch_lag_s_p95']} s, "
        f"{figures['watch_trades_per_s_p50']} trades/s"
    )
    print(
        f"runs {figures['runs']}; whales {figures['whales']}, missed {figures['whales_missed']}, "
        f"doubled {figures['whales_doubled']}; serve exit {code}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
