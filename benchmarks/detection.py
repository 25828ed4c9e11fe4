"""Detection benchmark: quality, throughput against pandas, and watch-loop latency.

    .venv/bin/python -m benchmarks.detection [--days 6] [--trades 5000000] [--repeat 3]
        [--watch-seconds 20] [--speed 1800]

1. Precision / recall per alert type on several simulated days (9 markets, default trade rate)
   against the simulator's ground truth, with the matching rule of
   ``sentinance_assets.lib.detection.quality``.
2. Throughput of the polars detectors (``detect_all``: all five detectors) over at least 5 M
   simulated trades, and of a straightforward pandas implementation of the three core rules
   (whale, 60 s volume z-score, 30 s cross-venue VWAP divergence) on the same trades; the ratio.
   Both run ``--repeat`` times interleaved and the best is kept; wall and CPU seconds are
   printed (on a shared machine the CPU figure is the steadier one).
3. Watch-loop latency: the in-process loop over the simulated market at ``--speed``; per
   alert, from the arrival of the oldest trade of its batch to the alert file being visible
   (an upper bound of trade-to-readable), p50 and p95.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from sentinance_assets.lib.detection.engine import detect_all
from sentinance_assets.lib.detection.quality import score_alerts
from sentinance_assets.lib.detection.rules import DetectorConfig
from sentinance_assets.lib.detection.sinks import LakeSink
from sentinance_assets.lib.detection.watch import SimulatedFeed, run_watch
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.simulator import MarketSimulator

EXCHANGES = ("binance", "coinbase", "kraken")
SYMBOLS = ("BTC", "ETH", "SOL")
FIRST = date(2026, 11, 2)


def quality(days: int, seed: int) -> pl.DataFrame:
    sim = MarketSimulator(markets_for(EXCHANGES, SYMBOLS), seed=seed, trade_rate=6.0)
    scores = []
    for i in range(days):
        d = sim.day(FIRST + timedelta(days=i))
        scores.append(score_alerts(detect_all(d.trades), d.events, d.trades))
    cols = ["events", "unobservable", "alerts", "explained", "tp_alerts", "matched_events"]
    total = pl.concat(scores).group_by("type", maintain_order=True).agg(pl.col(cols).sum())
    return total.with_columns(
        (pl.col("tp_alerts") / (pl.col("alerts") - pl.col("explained"))).alias("precision"),
        (pl.col("matched_events") / (pl.col("events") - pl.col("unobservable"))).alias("recall"),
        (pl.col("matched_events") / pl.col("events")).alias("raw_recall"),
    )


def pandas_detect(df: pd.DataFrame, cfg: DetectorConfig) -> int:
    """The three core rules written the obvious way in pandas (the comparison baseline)."""
    usd = df["price"] * df["amount"]  # USD, USDT and USDC all at 1.0
    df = df.assign(usd=usd)
    n_alerts = int((df["usd"] >= cfg.whale_usd).sum())
    # volume spike: 60 s windows per market, z against the previous 60 windows
    df["b60"] = df["ts"].dt.floor("60s")
    vol = df.groupby(["exchange", "symbol", "b60"])["usd"].sum()
    for _, s in vol.groupby(level=[0, 1]):
        s = s.droplevel([0, 1]).asfreq("60s", fill_value=0.0)
        prev = s.shift(1)
        mean = prev.rolling(cfg.spike_history).mean()
        std = prev.rolling(cfg.spike_history).std()
        z = (s - mean) / std
        n_alerts += int(((z > cfg.spike_z) & (s >= cfg.spike_min_ratio * mean)).sum())
    # divergence: 30 s VWAP per venue vs the median of the venues of the same base
    df["b30"] = df["ts"].dt.floor("30s")
    g = df.groupby(["base", "b30", "exchange"])[["usd", "amount"]].sum()
    vwap = (g["usd"] / g["amount"]).rename("vwap").reset_index()
    vwap["ref"] = vwap.groupby(["base", "b30"])["vwap"].transform("median")
    spread = 100 * (vwap["vwap"] / vwap["ref"] - 1)
    n_alerts += int((spread.abs() > cfg.divergence_pct).sum())
    return n_alerts


def throughput(target: int, seed: int, repeat: int = 3) -> dict[str, float]:
    sim = MarketSimulator(markets_for(EXCHANGES, SYMBOLS), seed=seed, trade_rate=60.0)
    frames, n, i = [], 0, 0
    t0 = time.perf_counter()
    while n < target:
        frames.append(sim.day(FIRST + timedelta(days=i)).trades)
        n += frames[-1].height
        i += 1
    trades = pl.concat(frames)
    gen_s = time.perf_counter() - t0
    cfg = DetectorConfig()
    pdf = trades.select("exchange", "symbol", "base", "ts", "price", "amount").to_pandas()
    # Interleaved repeats, best of each: the machine may be shared, so wall times are noisy;
    # CPU seconds (all threads of this process) are reported too.
    pl_runs, pd_runs = [], []
    found = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        found = detect_all(trades, cfg)
        pl_runs.append((time.perf_counter() - t0, time.process_time() - c0))
        t0, c0 = time.perf_counter(), time.process_time()
        pandas_detect(pdf, cfg)
        pd_runs.append((time.perf_counter() - t0, time.process_time() - c0))
    pl_s, pl_cpu = min(r[0] for r in pl_runs), min(r[1] for r in pl_runs)
    pd_s, pd_cpu = min(r[0] for r in pd_runs), min(r[1] for r in pd_runs)
    return {
        "trades": trades.height,
        "days": i,
        "generate_s": gen_s,
        "repeat": repeat,
        "polars_s": pl_s,
        "polars_cpu_s": pl_cpu,
        "polars_tps": trades.height / pl_s,
        "pandas_s": pd_s,
        "pandas_cpu_s": pd_cpu,
        "pandas_tps": trades.height / pd_s,
        "ratio": pd_s / pl_s,
        "cpu_ratio": pd_cpu / pl_cpu,
        "alerts": found.height if found is not None else 0,
    }


def watch_latency(seconds: float, speed: float, seed: int) -> dict[str, float]:
    start = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
    feed = SimulatedFeed(EXCHANGES, SYMBOLS, seed, 6.0, start)
    with tempfile.TemporaryDirectory() as tmp:
        # warm up: one hour of history so the baselines exist, as a running loop would have
        run_watch(
            feed,
            [],
            Path(tmp) / "ck",
            speed=0,
            until=start + timedelta(hours=1),
        )
        feed.start = start + timedelta(hours=1)
        stats = run_watch(
            feed,
            [LakeSink(Path(tmp) / "lake")],
            Path(tmp) / "ck",
            speed=speed,
            duration=seconds,
            step=0.1,
        )
    lat = np.array(stats.latencies_ms)
    return {
        "alerts": len(lat),
        "trades": stats.trades,
        "batches": stats.batches,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "max_ms": float(lat.max()) if len(lat) else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=6)
    ap.add_argument("--trades", type=int, default=5_000_000)
    ap.add_argument("--watch-seconds", type=float, default=20.0)
    ap.add_argument("--speed", type=float, default=1800.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    print(f"== detection quality: {args.days} simulated days, 9 markets, seed {args.seed}")
    q = quality(args.days, args.seed)
    print(
        f"{'type':<15}{'events':>7}{'unobs':>6}{'alerts':>7}{'explained':>10}"
        f"{'precision':>10}{'recall':>8}{'raw recall':>11}"
    )

    def fmt(x) -> str:
        return "-" if x is None or x != x else f"{x:.3f}"

    for r in q.iter_rows(named=True):
        print(
            f"{r['type']:<15}{r['events']:>7}{r['unobservable']:>6}{r['alerts']:>7}"
            f"{r['explained']:>10}{fmt(r['precision']):>10}{fmt(r['recall']):>8}"
            f"{fmt(r['raw_recall']):>11}"
        )

    print(f"\n== throughput over >= {args.trades:,} trades (best of {args.repeat}, interleaved)")
    t = throughput(args.trades, args.seed, args.repeat)
    print(
        f"trades {t['trades']:,} ({t['days']} days at rate 60, "
        f"generated in {t['generate_s']:.1f} s)\n"
        f"polars detect_all (5 detectors): {t['polars_s']:.2f} s = {t['polars_tps']:,.0f} trades/s "
        f"(CPU {t['polars_cpu_s']:.2f} s; {t['alerts']} alerts)\n"
        f"pandas baseline (3 rules):       {t['pandas_s']:.2f} s = "
        f"{t['pandas_tps']:,.0f} trades/s (CPU {t['pandas_cpu_s']:.2f} s)\n"
        f"ratio polars/pandas: {t['ratio']:.1f}x wall, {t['cpu_ratio']:.1f}x CPU"
    )

    print(f"\n== watch loop latency: {args.watch_seconds:.0f} s at {args.speed:g}x real time")
    w = watch_latency(args.watch_seconds, args.speed, args.seed)
    print(
        f"{w['trades']:,} trades in {w['batches']} batches, {w['alerts']} alerts; latency "
        f"p50 {w['p50_ms']:.0f} ms, p95 {w['p95_ms']:.0f} ms, max {w['max_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
