"""Refresh cost against the size of history: a live refresh must cost what arrived, not what
is stored.

    .venv/bin/python benchmarks/refresh.py [--days 3] [--scale 10] [--new-minutes 10]

For each of two homes, one with ``--days`` days of simulated history (1x) and one with
``--scale`` times as many (10x), both ending on the same day:

1. lands the history in the lake (simulated trades, candles, events and news per UTC day), the
   last day cut ``--new-minutes`` before midnight, and builds everything downstream once
   (untimed: what the home looked like before the refresh);
2. lands the same new data in both homes (the last ``--new-minutes`` of trades, candles and news
   of that day, as a live refresh merges them into today's partition);
3. times the refresh: the assets the automation conditions run after new data lands (every dbt
   model with its tests, news scoring, batch detection; ``defs/automation.py``), in one
   in-process run, as the automation sensor's run would execute them (without the run
   process's start-up, the same at any size).

Prints the refresh time per size, per step, and the ratio 10x / 1x (goal: within 1.5x).
Each size runs in its own process (``--size``), with its own settings and Dagster instance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO))

LAST_DAY = date(2026, 11, 20)
EXCHANGES = "binance,coinbase"
SYMBOLS = "BTC,ETH"
RATE = "6"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def land(days: int, new_minutes: int, part: str) -> None:
    """Land ``days`` of history ending on LAST_DAY (``part="history"``: the last day without its
    last ``new_minutes``; ``part="new"``: the whole last day, i.e. plus the new minutes)."""
    import polars as pl

    from sentinance_assets.lib import lake
    from sentinance_assets.lib.markets import markets_for
    from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_MARKET_EVENTS, RAW_NEWS, RAW_TRADES
    from sentinance_assets.lib.simulator import MarketSimulator
    from sentinance_assets.settings import Settings

    settings = Settings.from_env()
    sim = MarketSimulator(
        markets_for(settings.exchanges, settings.symbols),
        seed=settings.seed,
        trade_rate=settings.sim_trade_rate,
    )
    cut = datetime.combine(LAST_DAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    cut -= timedelta(minutes=new_minutes)
    wanted = [LAST_DAY] if part == "new" else [LAST_DAY - timedelta(days=i) for i in range(days)]
    for d in wanted:
        data = sim.day(d)
        frames = (
            (RAW_TRADES, data.trades, "ts"),
            (RAW_CANDLES, data.candles, "ts"),
            (RAW_MARKET_EVENTS, data.events, None),
            (RAW_NEWS, data.news, "published"),
        )
        for ds, frame, ts in frames:
            if part == "history" and d == LAST_DAY and ts is not None:
                frame = frame.filter(pl.col(ts) < cut)
            lake.write_partition(settings.lake_dir, ds, frame, partition=d.isoformat())


def refresh_selection(defs):
    """What the automation runs after new trades, candles and news land."""
    import dagster as dg

    from sentinance_assets.defs.automation import on_new_data, rule_for

    keys = []
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        rule = rule_for(key)
        if rule is not None and rule.condition is on_new_data:
            keys.append(key)
    return dg.AssetSelection.assets(*keys)


def one_size(days: int, new_minutes: int) -> dict:
    """In this process (settings from the environment): land, build, land new data, time."""
    import dagster as dg
    import polars as pl

    from sentinance_assets.definitions import defs as load_defs
    from sentinance_assets.lib import lake
    from sentinance_assets.lib.schemas import RAW_TRADES
    from sentinance_assets.settings import Settings

    settings = Settings.from_env()
    t0 = time.perf_counter()
    land(days, new_minutes, "history")
    landed_s = time.perf_counter() - t0
    defs = load_defs()
    instance = dg.DagsterInstance.ephemeral()
    keys = refresh_selection(defs).resolve(defs.resolve_asset_graph())
    job = defs.resolve_implicit_global_asset_job_def()
    t0 = time.perf_counter()
    first = job.execute_in_process(instance=instance, asset_selection=list(keys), run_config=QUIET)
    build_s = time.perf_counter() - t0
    assert first.success
    land(days, new_minutes, "new")
    t0 = time.perf_counter()
    result = job.execute_in_process(instance=instance, asset_selection=list(keys), run_config=QUIET)
    refresh_s = time.perf_counter() - t0
    assert result.success
    steps: dict[str, float] = {}
    starts: dict[str, float] = {}
    for record in instance.all_logs(result.run_id):
        event, step = record.dagster_event, record.step_key
        if event is None or step is None:
            continue
        if event.is_step_start:
            starts[step] = record.timestamp
        elif event.is_step_success and step in starts:
            steps[step] = round(record.timestamp - starts[step], 2)
    trades = sum(
        pl.scan_parquet(f).select(pl.len()).collect().item()
        for f in lake.data_files(settings.lake_dir, RAW_TRADES)
    )
    return {
        "days": days,
        "trades": trades,
        "land_s": round(landed_s, 1),
        "first_build_s": round(build_s, 1),
        "refresh_s": round(refresh_s, 2),
        "steps": steps,
    }


def run_size(days: int, new_minutes: int, home: Path) -> dict:
    env = {
        **os.environ,
        "SENTINANCE_HOME": str(home),
        "SENTINANCE_EXCHANGES": EXCHANGES,
        "SENTINANCE_SYMBOLS": SYMBOLS,
        "SENTINANCE_SIM_TRADE_RATE": RATE,
        "SENTINANCE_START": (LAST_DAY - timedelta(days=days - 1)).isoformat(),
        "SENTINANCE_END": (LAST_DAY + timedelta(days=1)).isoformat(),
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--size", str(days), "--new-minutes", str(new_minutes)],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{days} days failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=3, help="history of the 1x home, days")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--new-minutes", type=int, default=10)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)  # one size, in this process
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.size:
        print(json.dumps(one_size(args.size, args.new_minutes)))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="sentinance-bench-refresh-") as tmp:
        small = run_size(args.days, args.new_minutes, Path(tmp) / "1x")
        large = run_size(args.days * args.scale, args.new_minutes, Path(tmp) / f"{args.scale}x")
    for label, r in (("1x", small), (f"{args.scale}x", large)):
        print(
            f"{label:>4}: {r['days']:>3} days, {r['trades']:>10,} trades; first build "
            f"{r['first_build_s']:.1f} s; refresh after {args.new_minutes} new minutes "
            f"{r['refresh_s']:.1f} s"
        )
        print("      " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(r["steps"].items())))
    ratio = large["refresh_s"] / small["refresh_s"]
    verdict = "within" if ratio <= 1.5 else "OVER"
    print(f"ratio {args.scale}x / 1x refresh time: {ratio:.2f} ({verdict} the 1.5x goal)")
    if args.json:
        args.json.write_text(json.dumps({"1x": small, "scaled": large, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
