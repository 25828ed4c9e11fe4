"""API benchmark: latency of ``GET /v1/alerts`` and ``GET /v1/metrics/{symbol}`` and requests
per second, on a warehouse with ``--alerts`` alerts and ``--trades`` trades.

    .venv/bin/python -m benchmarks.api [--trades 10000000] [--alerts 100000] [--home DIR]

1. Builds a home (``--home``; a temporary folder by default; an existing built home is
   reused): ``--trades`` seeded trades over 6 markets and 14 days (``benchmarks/marts.py``'s
   generator) in the lake, ``--alerts`` alerts over those markets and days in 40 alert files
   (one per batch run and watch-loop segment: the lake view reads them all), then the real dbt
   models (seeds and models, no tests) and the published read side.
2. Starts ``sentinance api`` (a real uvicorn process, rate limit off) on a free port.
3. Latency: ``--requests`` sequential requests per case over one keep-alive connection, after
   a warm-up; p50, p95 and p99 per case.
4. Throughput: ``--clients`` concurrent keep-alive clients for ``--seconds`` over the mix of
   those cases; requests per second (the clients share the machine's cores with the server,
   so this is a lower bound of what the server alone can do).

Prints figures only; the goal (p95 under 50 ms on 2 cores) is compared, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from sentinance_assets.lib import lake, warehouse  # noqa: E402
from sentinance_assets.lib.schemas import ALERTS  # noqa: E402

# the marts benchmark's seeded trade generator and dbt paths (imported by name: the
# benchmarks folder is not a package for mypy, which sees each script as its own module)
marts = importlib.import_module("benchmarks.marts")
DBT, DBT_PROJECT, MARKETS, START = marts.DBT, marts.DBT_PROJECT, marts.MARKETS, marts.START
generate, write_lake = marts.generate, marts.write_lake

DAYS = 14
N_MARKETS = 6  # BTC and ETH on binance, coinbase and kraken
ALERT_FILES = 40
TYPES = ("whale", "volume_spike", "divergence", "pump_and_dump", "wash_trading")
SEVERITIES = ("info", "warning", "critical")
GOAL_P95_MS = 50.0


# --------------------------------------------------------------------------- the home
def make_alerts(n: int, seed: int = 7) -> pl.DataFrame:
    """``n`` alerts over the benchmark's markets and days, realistic columns and details."""
    rng = np.random.default_rng(seed)
    markets = MARKETS[:N_MARKETS]
    pick = rng.integers(0, len(markets), n)
    start_ms = int(START.timestamp() * 1000)
    event_ms = start_ms + np.sort(rng.integers(0, DAYS * 86_400_000, n))
    kinds = rng.choice(len(TYPES), n, p=[0.35, 0.35, 0.15, 0.1, 0.05])
    value = rng.lognormal(11.0, 1.0, n)
    return pl.DataFrame(
        {
            "alert_id": [f"bench{i:08d}" for i in range(n)],
            "type": [TYPES[k] for k in kinds],
            "exchange": [markets[i][0] for i in pick],
            "symbol": [markets[i][1] for i in pick],
            "severity": [SEVERITIES[k] for k in rng.choice(3, n, p=[0.2, 0.6, 0.2])],
            "event_time": event_ms,
            "value": value,
            "threshold": np.full(n, 100_000.0),
            "message": [f"bench alert {i}" for i in range(n)],
            "details": [json.dumps({"usd": round(float(v), 2), "n": 3}) for v in value],
            "rules_version": ["bench"] * n,
        }
    ).with_columns(
        event_time=pl.col("event_time").cast(pl.Datetime("ms", "UTC")),
        detected_at=(pl.col("event_time") + 1500).cast(pl.Datetime("ms", "UTC")),
    )


def build_home(home: Path, trades: int, alerts: int) -> None:
    lake_dir = home / "lake"
    t0 = time.perf_counter()
    frame = generate(trades, N_MARKETS, DAYS)
    write_lake(frame, lake_dir)
    del frame
    print(f"  {trades:,} trades written in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    al = make_alerts(alerts)
    per = -(-al.height // ALERT_FILES)
    for i in range(ALERT_FILES):
        part = al.slice(i * per, per)
        if part.height:
            path = lake.dataset_dir(lake_dir, ALERTS) / "bench" / f"part-{i:03d}.parquet"
            lake.atomic_write_parquet(ALERTS.conform(part), path)
    print(f"  {alerts:,} alerts in {ALERT_FILES} files in {time.perf_counter() - t0:.1f} s")
    wh = home / "warehouse.duckdb"
    with warehouse.write_connection(wh) as conn:
        warehouse.register_lake_views(conn, lake_dir)
    env = {
        **os.environ,
        "SENTINANCE_WAREHOUSE_PATH": str(wh),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            str(DBT),
            "build",
            "--exclude-resource-type",
            "test",
            "unit_test",
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(home / "dbt-target"),
            "--log-path",
            str(home / "dbt-logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"dbt failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    print(f"  dbt build (models, no tests) in {time.perf_counter() - t0:.1f} s")
    warehouse.publish(wh, home / "warehouse.read.duckdb")


# --------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINANCE_")}
    env.update(
        {
            "SENTINANCE_HOME": str(home),
            "SENTINANCE_API_PORT": str(port),
            "SENTINANCE_API_RATE_LIMIT": "0",
        }
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "sentinance"), "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the API did not start")


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def cases(port: int) -> dict[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    _, body = get(conn, "/v1/alerts?limit=50")
    cursor = json.loads(body)["next_cursor"]
    return {
        "/v1/alerts": "/v1/alerts",
        "/v1/alerts filtered": "/v1/alerts?type=whale&symbol=BTC&severity=critical&limit=50",
        "/v1/alerts page 2": f"/v1/alerts?limit=50&cursor={cursor}",
        "/v1/alerts since 1 day": "/v1/alerts?since="
        + (START + timedelta(days=DAYS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "/v1/metrics/BTC": "/v1/metrics/BTC",
        "/v1/metrics/ETH-USD": "/v1/metrics/ETH-USD",
    }


def latency(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(5):
        status, _ = get(conn, path)
        if status != 200:
            raise SystemExit(f"{path} answered {status}")
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        get(conn, path)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def cold_metrics(home: Path, n: int) -> str:
    """``/v1/metrics`` answers are memoised per data version (published file + alert files);
    in live mode every new alert file starts a new version. This is the cost of computing one
    from scratch (the queries, in this process, on the same read side)."""
    from sentinance_assets.api import queries
    from sentinance_assets.api.readside import ReadSide

    rs = ReadSide(home / "warehouse.read.duckdb", lake.dataset_dir(home / "lake", ALERTS))
    ref = queries.SymbolRef.parse("BTC")
    queries.market_metrics(rs, ref)
    ms = []
    for _ in range(max(n, 10)):
        t0 = time.perf_counter()
        queries.market_metrics(rs, ref)
        ms.append((time.perf_counter() - t0) * 1000)
    return (
        f"/v1/metrics/BTC computed uncached (a new data version): p50 {pct(ms, 50):.1f} ms, "
        f"p95 {pct(ms, 95):.1f} ms"
    )


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def throughput(port: int, paths: list[str], clients: int, seconds: float) -> tuple[int, int]:
    done = [0] * clients
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        k = i
        while time.monotonic() < stop:
            status, _ = get(conn, paths[k % len(paths)])
            k += 1
            if status == 200:
                done[i] += 1
            else:
                errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=10_000_000)
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--home", type=Path, help="keep (or reuse) the built home here")
    ap.add_argument("--requests", type=int, default=300, help="sequential requests per case")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    tmp = None
    home = args.home
    if home is None:
        tmp = tempfile.mkdtemp(prefix="sentinance-bench-api-")
        home = Path(tmp) / "home"
    try:
        if (home / "warehouse.read.duckdb").exists():
            print(f"reusing the built home {home}")
        else:
            print(f"building {home} ...", flush=True)
            build_home(home, args.trades, args.alerts)
        port = free_port()
        t0 = time.perf_counter()
        proc = start_api(home, port)
        print(f"sentinance api answered /health after {time.perf_counter() - t0:.1f} s\n")
        try:
            paths = cases(port)
            print(f"{'case':<26}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
            worst = 0.0
            for name, path in paths.items():
                ms = latency(port, path, args.requests)
                p95 = pct(ms, 95)
                worst = max(worst, p95)
                print(
                    f"{name:<26}{pct(ms, 50):>9.1f}{p95:>9.1f}{pct(ms, 99):>9.1f}"
                    f"{statistics.fmean(ms):>9.1f}",
                    flush=True,
                )
            print(
                f"\nworst p95 {worst:.1f} ms; goal p95 < {GOAL_P95_MS:.0f} ms: "
                f"{'met' if worst < GOAL_P95_MS else 'NOT met'} "
                f"(ratio worst p95 / goal = {worst / GOAL_P95_MS:.2f})"
            )
            print(cold_metrics(home, args.requests // 5), flush=True)
            n, errors = throughput(port, list(paths.values()), args.clients, args.seconds)
            print(
                f"throughput: {n / args.seconds:,.0f} requests/s over the mix "
                f"({args.clients} keep-alive clients on the same {os.cpu_count()} cores, "
                f"{args.seconds:.0f} s, {errors} non-200)"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end ({datetime.now(UTC):%H:%M} UTC)")


if __name__ == "__main__":
    main()
