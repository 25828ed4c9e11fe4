"""The growth curve of the batch path on DuckDB and on Spark, side by side in one run (issue #20).

    .venv/bin/python -m benchmarks.scale [--trades-per-day 1000000] [--days 1,10,30]
        [--engines duckdb,spark] [--parts marts,detection] [--out FILE.json]

For each size (``--days`` days of simulated trades at about ``--trades-per-day`` a day, over
24 markets: 8 assets on Binance, Coinbase and Kraken; the same seeded market every run, each
size a prefix of the next) it lands the trades in a fresh lake, then times, each step in its
own process:

* **marts** - the whole dbt project, no dbt tests: ``dbt build`` on DuckDB (the default engine,
  as ``sentinance demo`` builds it), and ``lib.spark.build_marts_on_spark`` (dbt-spark on
  local[2], the indicators in a grouped map, the copy into the DuckDB warehouse) on Spark;
* **detection** - re-detecting every day of the lake: ``batch.detect_stale_days`` in process
  (polars, one day after another) and with ``lib.spark_detection`` (one task per asset and
  day); the two alert sets must be identical, and the script says whether they are.

Reported per step: wall seconds, peak memory (the resident set of the step's process and all
its children, the JVM and Python workers included, sampled every 0.2 s), seconds per million
trades, and for Spark the session start inside that time. dbt parses the project once before
the first size, untimed, for both engines (as Dagster does when the code location loads).
Linear cost means the per-million cost stays flat: the issue's goal is 30x within 1.3x of 10x.
Spark's start-up (JVM, session) is paid by every Spark step and is part of what a user waits
for, so it stays in the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402
import psutil  # noqa: E402

from sentinance_assets.lib import lake  # noqa: E402
from sentinance_assets.lib.markets import markets_for  # noqa: E402
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES  # noqa: E402
from sentinance_assets.lib.simulator import MarketSimulator  # noqa: E402

EXCHANGES = ("binance", "coinbase", "kraken")
ASSETS = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "AVAX", "LINK")
FIRST = date(2026, 1, 5)
DETECTED_AT = datetime(2026, 12, 1, tzinfo=UTC)
# simulated trades a day over the 24 markets at trade_rate 1.0 (measured; linear in the rate)
TRADES_PER_RATE = 26_400
NO_TESTS = ("--exclude-resource-type", "test")  # models and seeds, as both engines build them
STEPS = {
    ("duckdb", "marts"): "duckdb-marts",
    ("spark", "marts"): "spark-marts",
    ("duckdb", "detection"): "polars-detection",
    ("spark", "detection"): "spark-detection",
}


# ------------------------------------------------------------------------------- the data
def land(lake_dir: Path, days: int, trades_per_day: int, have: int = 0) -> int:
    """Days ``have`` .. ``days`` - 1 of the seeded market into the lake; returns trades added.
    Every day is simulated from its own seed, so a size is a prefix of the next."""
    rate = trades_per_day / TRADES_PER_RATE
    added = 0
    for i in range(have, days):
        day = FIRST + timedelta(days=i)
        sim = MarketSimulator(markets_for(EXCHANGES, ASSETS), seed=1000 + i, trade_rate=rate)
        trades = sim.day(day).trades
        lake.write_partition(lake_dir, RAW_TRADES, trades, partition=day.isoformat())
        added += trades.height
    return added


# ------------------------------------------------------------------------ one step per process
def _settings(home: Path):
    from sentinance_assets.settings import Settings

    return Settings(home=home, engine="spark", spark_dir=home / "spark")


def step_duckdb_marts(home: Path) -> dict:
    from sentinance_assets.lib import spark as spark_engine
    from sentinance_assets.lib import warehouse

    settings = _settings(home)
    settings.warehouse_path.unlink(missing_ok=True)
    with warehouse.write_connection(settings.warehouse_path) as conn:
        warehouse.register_lake_views(conn, settings.lake_dir)
    profiles = warehouse.write_dbt_profile(home / "duck-profiles", settings.warehouse_path)
    step = spark_engine.run_dbt_process(["build", *NO_TESTS], profiles.parent, home / "duck-dbt")
    if not step.success:
        raise SystemExit(f"dbt build on DuckDB failed:\n{step.error}")
    return {"models": len(step.results)}


def step_spark_marts(home: Path) -> dict:
    from sentinance_assets.lib import spark as spark_engine

    settings = _settings(home)
    t0 = time.perf_counter()
    spark_engine.session_for(settings)
    session = time.perf_counter() - t0
    build = spark_engine.build_marts_on_spark(settings, extra_args=NO_TESTS, full_refresh=True)
    return {"session_seconds": session, "models": len(build.results())}


def step_parse(home: Path) -> dict:
    """dbt's parse of the project for each engine's target folder, untimed: Dagster parses the
    project once when the code location loads, and every run reuses it (partial parse)."""
    from sentinance_assets.lib import spark as spark_engine
    from sentinance_assets.lib import warehouse

    settings = _settings(home)
    duck = warehouse.write_dbt_profile(home / "duck-profiles", settings.warehouse_path)
    spark = spark_engine.write_spark_profile(settings.spark_dir / "dbt" / "profiles")
    for profiles, work in ((duck, home / "duck-dbt"), (spark, settings.spark_dir / "dbt")):
        step = spark_engine.run_dbt_process(["parse"], profiles.parent, work)
        if not step.success:
            raise SystemExit(f"dbt parse failed:\n{step.error}")
    return {}


def _fresh_alerts(home: Path) -> None:
    shutil.rmtree(lake.dataset_dir(home / "lake", ALERTS), ignore_errors=True)


def _alert_digest(home: Path, name: str) -> dict:
    alerts = lake.read_dataset(home / "lake", ALERTS).sort("alert_id")
    alerts.write_parquet(home / f"alerts-{name}.parquet")
    return {"alerts": alerts.height}


def step_polars_detection(home: Path) -> dict:
    from sentinance_assets.defs.detection.batch import detect_stale_days
    from sentinance_assets.lib.detection.engine import detect_all

    _fresh_alerts(home)
    run = detect_stale_days(home / "lake", lambda t: detect_all(t, None, DETECTED_AT))
    return {"days": len(run.days), "trades_scanned": run.trades_scanned} | _alert_digest(
        home, "polars"
    )


def step_spark_detection(home: Path) -> dict:
    from sentinance_assets.defs.detection.batch import detect_stale_days
    from sentinance_assets.lib import spark as spark_engine
    from sentinance_assets.lib.detection.engine import detect_all
    from sentinance_assets.lib.detection.rules import DetectorConfig
    from sentinance_assets.lib.spark_detection import detect_days_on_spark

    settings = _settings(home)
    t0 = time.perf_counter()
    spark = spark_engine.session_for(settings)
    session = time.perf_counter() - t0
    _fresh_alerts(home)
    tasks = []

    def many(files: dict[str, Path], days: list[str]) -> tuple[pl.DataFrame, int]:
        result = detect_days_on_spark(spark, files, days, DetectorConfig(), DETECTED_AT)
        tasks.append(result.tasks)
        return result.alerts, result.trades_scanned

    run = detect_stale_days(home / "lake", detect_all, many=many)
    return {
        "session_seconds": session,
        "days": len(run.days),
        "tasks": sum(tasks),
        "trades_scanned": run.trades_scanned,
    } | _alert_digest(home, "spark")


STEP_FUNCTIONS = {
    "parse": step_parse,
    "duckdb-marts": step_duckdb_marts,
    "spark-marts": step_spark_marts,
    "polars-detection": step_polars_detection,
    "spark-detection": step_spark_detection,
}


def measured(step: str, home: Path) -> dict:
    """Run one step in a child process: wall seconds, peak resident memory of its process tree."""
    result_file = home / f"result-{step}.json"
    result_file.unlink(missing_ok=True)
    log = (home / f"{step}.log").open("w")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--home", str(home)]
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    peak = 0
    while proc.poll() is None:
        rss = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        peak = max(peak, rss)
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    log.close()
    if proc.returncode != 0:
        tail = (home / f"{step}.log").read_text()[-3000:]
        raise SystemExit(f"step {step} failed (exit {proc.returncode}):\n{tail}")
    return {"seconds": wall, "peak_mb": peak / 2**20, **json.loads(result_file.read_text())}


# ------------------------------------------------------------------------------------ main
def _table(rows: list[dict]) -> str:
    head = "| trades | engine | step | seconds | s per M trades | peak MB | Spark session s |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        lines.append(
            f"| {r['trades'] / 1e6:.2f} M | {r['engine']} | {r['part']} | {r['seconds']:.1f} | "
            f"{r['seconds'] / (r['trades'] / 1e6):.2f} | {r['peak_mb']:.0f} | "
            f"{r.get('session_seconds', 0):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trades-per-day", type=int, default=1_000_000)
    ap.add_argument("--days", default="1,10,30", help="sizes, in days of trades")
    ap.add_argument("--engines", default="duckdb,spark")
    ap.add_argument("--parts", default="marts,detection")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--work", help="work folder (default: a temporary one, removed)")
    ap.add_argument("--step", choices=sorted(STEP_FUNCTIONS), help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:  # a child: one step, its result as JSON beside the lake
        home = Path(args.home)
        out = STEP_FUNCTIONS[args.step](home)
        (home / f"result-{args.step}.json").write_text(json.dumps(out))
        return

    sizes = sorted(int(d) for d in args.days.split(","))
    engines = args.engines.split(",")
    parts = args.parts.split(",")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sentinance-scale-"))
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    have, trades = 0, 0
    try:
        measured("parse", home)
        for days in sizes:
            t0 = time.perf_counter()
            trades += land(home / "lake", days, args.trades_per_day, have)
            have = days
            print(
                f"\n== {days} day(s): {trades:,} trades in the lake "
                f"(landed in {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
            for part in parts:
                for engine in engines:
                    step = STEPS[(engine, part)]
                    r = measured(step, home)
                    r |= {"days": days, "trades": trades, "engine": engine, "part": part}
                    rows.append(r)
                    print(
                        f"{step:>17}: {r['seconds']:7.1f} s, "
                        f"{r['seconds'] / (trades / 1e6):6.2f} s per M trades, "
                        f"peak {r['peak_mb']:6.0f} MB "
                        + (
                            f"(session {r['session_seconds']:.1f} s)"
                            if "session_seconds" in r
                            else ""
                        ),
                        flush=True,
                    )
                if part == "detection" and set(engines) == {"duckdb", "spark"}:
                    a = pl.read_parquet(home / "alerts-polars.parquet")
                    b = pl.read_parquet(home / "alerts-spark.parquet")
                    same = a.equals(b)
                    rows[-1]["same_alerts_as_polars"] = same
                    print(
                        f"{'':>17}  alerts: {a.height:,} in process, {b.height:,} on Spark, "
                        f"identical: {same}",
                        flush=True,
                    )
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + _table(rows))
    # linearity: per-million cost at the largest size against the one before it
    if len(sizes) >= 2:
        print("\nper-million cost, largest size / the size before (goal <= 1.3):")
        for engine in engines:
            for part in parts:
                mine = [r for r in rows if r["engine"] == engine and r["part"] == part]
                big, prev = mine[-1], mine[-2]
                ratio = (big["seconds"] / big["trades"]) / (prev["seconds"] / prev["trades"])
                print(f"  {engine:>6} {part:<9} {ratio:.2f}")
        print("\nSpark time / DuckDB time, per size:")
        for part in parts:
            for days in sizes:
                d = [r for r in rows if r["days"] == days and r["part"] == part]
                by = {r["engine"]: r["seconds"] for r in d}
                if {"duckdb", "spark"} <= set(by):
                    print(f"  {part:<9} {days:>3} day(s): {by['spark'] / by['duckdb']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
