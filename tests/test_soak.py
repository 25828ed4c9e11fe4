"""Soak: `sentinance serve` in live mode keeps itself fresh, recovers from SIGKILL, and loses or
repeats no alert.

A local market (Binance over REST and websocket, Coinbase over REST, trades printed in real
time, a whale every 15 s) and a local RSS feed publishing every 20 s; the refresh runs every
two minutes (``SENTINANCE_REFRESH_MINUTES=2``: a refresh cycle, ingest then marts, takes
about a minute and a half on two cores) and the automation sensor every 10 s. Over about eight
minutes the test asserts: several automatic refreshes (ingest, then the marts and detection);
the newest 1-minute candle in the marts is never more than two refresh intervals behind the
newest stored trade; every whale reaches the webhook exactly once; no run fails; after SIGKILL
of the watch loop and then of the daemon during a run, both are restarted and the run finishes;
each component's memory stays bounded. Not in the default run (``-m "not soak"`` in the
pytest options): ``make soak``, a step of its own in ``.ci/run``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from datetime import datetime

import pytest

from tests.fakes.live_market import live_market
from tests.soak_harness import Service, wait_until

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]

REFRESH_S = 120
COMPONENTS = ("code-server", "daemon", "webserver", "watch", "app", "api")
MEMORY_GROWTH_LIMIT = 300 * 2**20  # per component over the soak (runs in progress left out)
MEMORY_LIMIT = 1500 * 2**20  # any component, with its own children


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _refreshes(service: Service) -> tuple[int, int]:
    """(successful live refreshes, successful automation runs that rebuilt the candles after
    one of them)."""
    runs = service.runs()
    ingest = [r for r in runs if r.job == "ingest_job" and r.status == "SUCCESS"]
    first = min((r.ended or 0 for r in ingest), default=float("inf"))
    marts = [
        r
        for r in runs
        if r.job == "__ASSET_JOB"
        and r.status == "SUCCESS"
        and "marts/candles" in r.assets
        and r.created >= first
    ]
    return len(ingest), len(marts)


def test_serve_live_keeps_fresh_recovers_and_delivers_each_alert_once(tmp_path):
    with live_market(per_second=2.0, whale_every_s=15.0, news_every_s=20.0) as market:
        service = Service(
            tmp_path / "home", market, refresh_minutes=REFRESH_S // 60, drain_seconds=30
        ).start()
        lags: list[float] = []
        loads: list[float] = []

        def sample() -> tuple[int, int]:
            loads.append(os.getloadavg()[0])
            done = _refreshes(service)
            data = service.report().get("data") or {}
            if done[1] and data.get("candle_lag_s") is not None:  # once the marts follow
                lags.append(data["candle_lag_s"])
            return done

        try:
            wait_until(lambda: service.running(*COMPONENTS), 300, "every component running")
            wait_until(
                lambda: (service.report().get("watch") or {}).get("lag_s") is not None, 120,
                "the watch loop's first checkpoint",
            )  # fmt: skip
            market.printer.whaling.set()

            # SIGKILL the watch loop after a whale or two: restarted, resumes from its checkpoint
            wait_until(lambda: len(market.printer.whales) >= 2, 120, "two whales")
            watch_pid = service.kill("watch")
            wait_until(
                lambda: service.running("watch") and service.pid("watch") != watch_pid, 120,
                "the watch loop's restart",
            )  # fmt: skip

            # SIGKILL the daemon while a run is in progress: restarted; the run finishes
            in_flight = wait_until(
                lambda: [r for r in service.runs() if r.status == "STARTED"], 300, "a run",
                step=0.5,
            )  # fmt: skip
            daemon_pid = service.kill("daemon")
            wait_until(
                lambda: service.running("daemon") and service.pid("daemon") != daemon_pid, 120,
                "the daemon's restart",
            )  # fmt: skip

            # several automatic refreshes, the marts rebuilt after them; memory measured from the
            # first rebuild on (the code server loads the asset graph at its first request)
            wait_until(lambda: sample()[1] >= 1, 600, "the marts after a refresh", step=5)
            baseline = {name: service.rss(name) for name in COMPONENTS}
            wait_until(lambda: sample() >= (3, 2), 900, "three refreshes", step=5)
            market.printer.whaling.clear()
            whales = list(market.printer.whales)

            def delivered() -> Counter:
                return Counter(
                    (b.get("exchange"), b.get("symbol"), _ms(b["event_time"]))
                    for b in market.webhook.bodies()
                    if b.get("type") == "whale"
                )

            wanted = {(w.venue, w.symbol, w.ts_ms) for w in whales}
            wait_until(lambda: wanted <= set(delivered()), 60, "every whale alert", step=1)
            time.sleep(3)  # anything late and doubled would show now
            memory = {name: service.rss(name) for name in COMPONENTS}
            runs = service.runs()
            report = service.report()
        finally:
            code = service.stop()

    assert code == 0, service.output()[-3000:]
    # several automatic refreshes, and no run failed (the one the daemon left behind included)
    failed = [r for r in runs if r.status == "FAILURE"]
    assert not failed, failed
    assert next(r for r in runs if r.run_id == in_flight[0].run_id).status == "SUCCESS"
    # every whale reached the webhook exactly once (through both restarts)
    got = delivered()
    assert len(whales) >= 8
    assert {k: n for k, n in got.items() if k in wanted} == dict.fromkeys(wanted, 1)
    ids = Counter(b["alert_id"] for b in market.webhook.bodies())
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]
    # the restarts are counted; nothing else restarted
    by_name = {c["name"]: c for c in report["components"]}
    assert by_name["watch"]["restarts"] == 1 and by_name["daemon"]["restarts"] == 1
    assert all(by_name[n]["restarts"] == 0 for n in ("code-server", "webserver", "app", "api"))
    # memory bounded: no component grew by more than the limit, none is above the cap
    growth = {n: memory[n] - baseline[n] for n in COMPONENTS}
    print(f"soak: candle lag samples {lags}; memory {memory}; growth {growth}; load {loads}")
    assert max(growth.values()) < MEMORY_GROWTH_LIMIT, growth
    assert max(memory.values()) < MEMORY_LIMIT, memory
    # the marts follow the trades: never two refresh intervals of trading behind. A refresh
    # cycle is two run processes (ingest, then the marts), each loading the code location: on a
    # machine saturated by other work (load average above three per core, as when other test
    # suites share it) a cycle outlasts the interval, which says nothing about this code.
    assert lags
    if max(lags) >= 2 * REFRESH_S and statistics.mean(loads) > 3 * (os.cpu_count() or 1):
        pytest.xfail(f"machine saturated (load {statistics.mean(loads):.1f}): lags {lags}")
    assert max(lags) < 2 * REFRESH_S, lags
