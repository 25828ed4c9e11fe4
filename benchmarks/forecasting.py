"""Forecaster benchmark on real hourly prices: training time, inference latency, evaluation.

Data: ``../shared/data/crypto_prices_hourly_cdd`` (Binance BTC/USDT and ETH/USDT hourly candles
from CryptoDataDownload; mixed ms/s epochs, descending order, duplicates: see its
PROVENANCE.md), read by ``sentinance_assets.lib.forecast_io.read_candles_files``. Nothing is
copied into the repository. The default window is the second half
of 2020 (about 4,400 bars per symbol) so a run takes a few minutes on 2 cores.

    .venv/bin/python benchmarks/forecasting.py [--start 2020-07-01] [--end 2021-01-01]
        [--folds 3] [--epochs 40] [--json out.json]

Prints: walk-forward folds, training seconds per epoch and per fold, inference latency for
one symbol batch (the live forecast: last look-back window) and for a whole symbol history,
the pooled evaluation per horizon (the LSTM and every baseline, HAR-RV included: loss, skill
and Diebold-Mariano p-value against a baseline, direction accuracy, net basis points per
trade after a 10 bp round trip, 80 % / 95 % conformal interval coverage), which model serves
each target and horizon and why, the LSTM-vs-HAR 24h volatility goal, and the verdict of the
promotion rule against the baselines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml import forecast_lifecycle, serving  # noqa: E402
from sentinance_assets.lib.forecast_io import read_candles_files  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "crypto_prices_hourly_cdd"
FILES = {"BTC/USDT": "Binance_BTCUSDT_1h.csv", "ETH/USDT": "Binance_ETHUSDT_1h.csv"}


#: (column title, metric) of the compact tables; skill and DM against the named baseline.
RETURN_COLS = (
    ("rmse", "rmse"),
    ("skill:zero", "skill:zero_return"),
    ("dm_p:zero", "dm_pvalue:zero_return"),
    ("dir_acc", "direction_accuracy"),
    ("dir_p", "direction_pvalue"),
    ("net_bp", "net_bp"),
    ("cov80", "coverage_80"),
    ("cov95", "coverage_95"),
)
VOL_COLS = (
    ("qlike", "vol_qlike"),
    ("skill:har", "vol_skill:har"),
    ("dm_p:har", "vol_dm_pvalue:har"),
    ("skill:ewma", "vol_skill:ewma_vol"),
    ("dm_p:ewma", "vol_dm_pvalue:ewma_vol"),
    ("cov80", "vol_coverage_80"),
    ("cov95", "vol_coverage_95"),
)


def print_table(pooled: pl.DataFrame, horizon: str, cols: tuple[tuple[str, str], ...]) -> None:
    """One row per model that has the first metric; ``-`` where a cell does not apply."""
    sel = pooled.filter(pl.col("horizon") == horizon)
    models = sel.filter(pl.col("metric") == cols[0][1])["model"].to_list()
    print("  " + f"{'model':<18}" + "".join(f"{title:>12}" for title, _ in cols))
    for m in models:
        cells = []
        for _, metric in cols:
            v = sel.filter((pl.col("model") == m) & (pl.col("metric") == metric))["value"]
            cells.append(f"{v[0]:>12.4g}" if v.len() and v[0] == v[0] else f"{'-':>12}")
        print("  " + f"{m:<18}" + "".join(cells))


def lstm_vs_har(pooled: pl.DataFrame, horizon: str) -> str:
    """The issue's ambitious goal: LSTM QLIKE at least 5 % below HAR's with DM p < 0.05
    (normalized QLIKE, whose ratio is meaningful: ``vol_skill:har`` >= 0.05)."""

    def value(metric: str) -> float | None:
        v = pooled.filter(
            (pl.col("horizon") == horizon)
            & (pl.col("model") == "lstm")
            & (pl.col("metric") == metric)
        )["value"]
        return float(v[0]) if v.len() and v[0] == v[0] else None

    skill, p = value("vol_skill:har"), value("vol_dm_pvalue:har")
    if skill is None:
        return "not measured (no 24h volatility scores)"
    met = skill >= 0.05 and p is not None and p < 0.05
    return (
        f"LSTM normalized QLIKE {skill:+.1%} vs HAR (positive = LSTM better), DM p={p:.3g}: "
        f"goal (>= 5 % better, p < 0.05) {'met' if met else 'not met'}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2020-07-01")
    ap.add_argument("--end", default="2021-01-01")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", default=None, help="write the full results here")
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: real data not available ({DATA} is absent)")
        return 0
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC)
    # read as downloaded (lib/forecast_io); duplicated and broken bars are the features' job
    candles = read_candles_files([DATA / f for f in FILES.values()]).filter(
        pl.col("ts").is_between(start, end, closed="left")
    )
    bars = candles.group_by("symbol").len().sort("symbol")
    print(f"data: {dict(bars.iter_rows())} hourly bars, {start:%Y-%m-%d} .. {end:%Y-%m-%d}")

    t0 = time.perf_counter()
    walk = forecast_lifecycle.walk_forward(
        candles, args.seed, n_folds=args.folds, epochs=args.epochs
    )
    total = time.perf_counter() - t0
    cfg = walk.config
    print(
        f"config: lookback {cfg.lookback}, hidden {cfg.hidden}, seeds {list(cfg.seeds)}, "
        f"max epochs {cfg.epochs} (patience {cfg.patience}), horizons {cfg.horizons}, "
        f"threads {cfg.num_threads}"
    )
    print(f"walk-forward: {len(walk.folds)} folds, total {total:.1f} s (incl. features, eval)")
    epoch_s: list[float] = []
    fold_rows = []
    for i, ((tr, te), m) in enumerate(zip(walk.folds, walk.models, strict=True)):
        per_seed = m.info["per_seed"]
        epochs = sum(s["epochs_run"] for s in per_seed)
        epoch_s += [s["mean_epoch_seconds"] for s in per_seed]
        fold_rows.append(
            {
                "fold": i,
                "train_end": tr.isoformat(),
                "test_end": te.isoformat(),
                "fit_windows": m.info["n_fit_windows"],
                "epochs_run": epochs,
                "train_seconds": m.info["train_seconds"],
            }
        )
        print(
            f"  fold {i}: train to {tr:%Y-%m-%d %H:%M}, test to {te:%Y-%m-%d %H:%M}; "
            f"{m.info['n_fit_windows']} fit windows, {epochs} epochs over "
            f"{len(per_seed)} seeds, {m.info['train_seconds']:.1f} s"
        )
    print(f"training: {statistics.mean(epoch_s):.3f} s per epoch (one seed, mean)")

    model = walk.model
    latency = {}
    for sym in sorted(FILES):
        sub = walk.frame.filter(pl.col("symbol") == sym)
        last = sub.tail(model.config.lookback)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            model.predict(last)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        full = model.predict(sub)
        full_s = time.perf_counter() - t
        latency[sym] = {
            "last_window_ms_median": 1000 * statistics.median(times),
            "full_history_s": full_s,
            "full_history_rows": full.height,
        }
        print(
            f"inference {sym}: latest forecast {1000 * statistics.median(times):.1f} ms "
            f"(median of 20), whole history {full.height} origins in {full_s:.2f} s"
        )

    pooled = walk.evaluation.filter(pl.col("symbol") == "ALL")
    print(f"\nrealized volatility from: {walk.realized_from}")
    print("evaluation (walk-forward hold-out, BTC+ETH pooled)")
    for h in cfg.horizons:
        print(f"-- {h}")
        print_table(pooled, h, RETURN_COLS)
        print_table(pooled, h, VOL_COLS)
    plan = serving.serving_plan(walk.evaluation, walk.quantiles, cfg.horizons)
    print("\nserving (hold-out winner per target and horizon)")
    for key, e in plan.items():
        cov = " / ".join(
            "n/a" if e[c] is None else f"{e[c]:.1%}" for c in ("coverage_80", "coverage_95")
        )
        print(f"  {key:<16} {e['model']:<12} coverage 80/95 %: {cov}; {e['reason']}")
    goal = lstm_vs_har(pooled, "24h")
    print(f"\nLSTM vs HAR, 24h volatility: {goal}")
    verdict = forecast_lifecycle.promotion_decision_summary(walk)
    print(f"promotion rule vs baselines: {verdict['reason']}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "folds": fold_rows,
                    "total_seconds": total,
                    "mean_epoch_seconds": statistics.mean(epoch_s),
                    "latency": latency,
                    "verdict": verdict,
                    "serving": plan,
                    "lstm_vs_har_24h": goal,
                    "evaluation": forecast_lifecycle.side_by_side(walk.evaluation),
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
