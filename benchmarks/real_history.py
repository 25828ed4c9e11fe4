"""Long real history through ``sentinance forecast evaluate``: wall time and hold-out metrics.

Data: ``../shared/data/crypto_prices_hourly_cdd`` — Binance BTC/USDT and ETH/USDT hourly
candles, 2017-08-17 to 2020-12-31 (32,228 rows per file as downloaded: newest first, mixed s/ms
epochs, 2,649 duplicated bars, missing hours, maintenance runs of flat zero-volume bars; see its
PROVENANCE.md). The files are read where they are, never copied.

    .venv/bin/python benchmarks/real_history.py [--files A.csv B.csv] [--json out.json]
        [--compare-unsampled]

1. runs the command as a user does, in a subprocess (start-up included):
   ``sentinance forecast evaluate --candles A --candles B --output <tmp>.json``, and times it;
2. in the same run, the baseline: reading the files, building the features and scoring the
   zero-return forecast (with persistence and EWMA volatility, which come with it) on the same
   walk-forward hold-out as the command, in process. The ratio command / baseline is what the
   LSTM costs over not forecasting at all;
3. prints what the candles held (the data-quality counts of the command's JSON), the folds and
   configuration ``config_for`` chose, and the pooled hold-out metrics per horizon;
4. with ``--compare-unsampled``, also times the walk-forward with every training window in
   every epoch (batch 64: the configuration before long histories were sampled), to show why
   the sampling is there. It takes several times longer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml import forecast_lifecycle  # noqa: E402
from ml.evaluation import MODEL_NAME, evaluate_windows  # noqa: E402
from ml.features import build_feature_set  # noqa: E402
from ml.forecaster import pred_col, pred_vol_col  # noqa: E402
from sentinance_assets.lib.forecast_io import read_candles_files  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "crypto_prices_hourly_cdd"
FILES = ("Binance_BTCUSDT_1h.csv", "Binance_ETHUSDT_1h.csv")
SENTINANCE = Path(sys.executable).parent / "sentinance"


def run_command(files: list[Path], out: Path, home: Path) -> float:
    """Wall seconds of ``sentinance forecast evaluate`` on ``files`` (JSON written to ``out``)."""
    argv = [str(SENTINANCE), "forecast", "evaluate", "--output", str(out)]
    for f in files:
        argv += ["--candles", str(f)]
    env = {**os.environ, "SENTINANCE_HOME": str(home)}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the command failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def zero_return_baseline(files: list[Path], result: dict) -> float:
    """Seconds to read, build the features and score the zero-return forecast (with the other
    baselines) on the command's folds."""
    t0 = time.perf_counter()
    frame = build_feature_set(read_candles_files(files)).frame
    horizons = result["horizons"]
    zeros = frame.select(
        "symbol",
        "ts",
        *[pl.lit(0.0).alias(pred_col(h)) for h in horizons],
        # any positive volatility: only the return metrics of the zero forecast are read
        *[pl.lit(1.0).alias(pred_vol_col(h)) for h in horizons],
    )
    windows = [
        (
            datetime.fromisoformat(f["train_end"]),
            datetime.fromisoformat(f["test_end"]),
            {MODEL_NAME: zeros},
        )
        for f in result["folds"]
    ]
    evaluate_windows(frame, windows, horizons, forecast_lifecycle.BAR)
    return time.perf_counter() - t0


def unsampled_walk_forward(files: list[Path], seed: int) -> float:
    """Seconds of the walk-forward with every training window in every epoch, batch 64."""
    candles = read_candles_files(files)
    t0 = time.perf_counter()
    forecast_lifecycle.walk_forward(candles, seed, epoch_windows=None, batch_size=64)
    return time.perf_counter() - t0


def print_report(result: dict, command_s: float, baseline_s: float) -> None:
    quality = result["data_quality"]["total"]
    cfg = result["config"]
    print(f"data: {', '.join(Path(f).name for f in result['candles'])}")
    print(
        "  rows {rows:,}, duplicate rows {duplicate_rows:,} ({conflicting_duplicates} "
        "conflicting), missing bars {missing_bars} in {gaps} gaps, maintenance {maintenance_bars} "
        "bars in {maintenance_runs} runs, implausible {implausible_bars}".format(**quality)
    )
    print(
        "  usable bars {usable_bars:,} in {segments} segments; feature rows {feature_rows:,} "
        "(warm-up {warmup_rows}, masked after a gap or flag {masked_feature_rows}, look-backs "
        "masked {masked_lookback_rows}, non-finite {non_finite_rows})".format(**quality)
    )
    print(
        f"config: look-back {cfg['lookback']}, hidden {cfg['hidden']}, seeds {cfg['seeds']}, "
        f"max epochs {cfg['epochs']} (patience {cfg['patience']}), batch {cfg['batch_size']}, "
        f"windows per epoch {cfg['epoch_windows'] or 'all'}"
    )
    for i, f in enumerate(result["folds"]):
        print(
            f"  fold {i}: train to {f['train_end'][:16]}, test to {f['test_end'][:16]}; "
            f"{f['fit_windows']:,} fit windows, {f['epochs_run']} epochs over the seeds, "
            f"{f['train_seconds']:.0f} s"
        )
    print(
        f"\nsentinance forecast evaluate: {command_s:.1f} s wall "
        f"(walk-forward {result['seconds']:.1f} s)"
    )
    print(f"baseline (read + features + zero-return scoring): {baseline_s:.1f} s")
    print(f"ratio command / baseline: {command_s / baseline_s:.1f}x")
    print("\nhold-out, BTC+ETH pooled (p-values on non-overlapping origins)")
    print(
        "  h     RMSE lstm  RMSE zero  RMSE pers.  dir. acc (p)      QLIKE lstm  QLIKE ewma"
        "  QLIKE har  LSTM vs HAR (DM p)  n"
    )
    pooled = result["evaluation"]["ALL"]
    for h, cell in pooled.items():
        lstm, zero, pers, ewma = (
            cell[m] for m in ("lstm", "zero_return", "persistence", "ewma_vol")
        )
        har = cell.get("har", {})
        vs = lstm.get("vol_skill:har")
        vs_text = "-" if vs is None else f"{vs:+.1%} ({lstm.get('vol_dm_pvalue:har') or 0:.2g})"
        print(
            f"  {h:<4} {lstm['rmse']:>10.6f} {zero['rmse']:>10.6f} {pers['rmse']:>11.6f}  "
            f"{lstm['direction_accuracy']:.3f} ({lstm['direction_pvalue']:.2g})"
            f"{lstm['vol_qlike']:>16.3f} {ewma['vol_qlike']:>11.3f} "
            f"{har.get('vol_qlike', float('nan')):>10.3f}  {vs_text:>18}  {lstm['rmse_n']}"
        )
    print("\nserving (hold-out winner; measured 80 / 95 % interval coverage)")
    for key, e in result.get("serving", {}).items():
        cov = " / ".join(
            "n/a" if e[c] is None else f"{e[c]:.1%}" for c in ("coverage_80", "coverage_95")
        )
        print(f"  {key:<16} {e['model']:<12} {cov}; {e['reason']}")
    print(f"\npromotion rule vs baselines: {result['promotion_vs_baselines']['reason']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", nargs="+", type=Path, default=None)
    ap.add_argument("--json", default=None, help="write the figures and the command's JSON here")
    ap.add_argument("--compare-unsampled", action="store_true")
    ap.add_argument("--seed", type=int, default=42, help="the command's default seed")
    args = ap.parse_args(argv)
    files = args.files or [DATA / f for f in FILES]
    absent = [f for f in files if not f.exists()]
    if absent:
        print(f"skipped: real data not available ({', '.join(map(str, absent))} absent)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "evaluation.json"
        command_s = run_command(files, out, Path(tmp) / "home")
        result = json.loads(out.read_text())
    baseline_s = zero_return_baseline(files, result)
    print_report(result, command_s, baseline_s)
    figures = {"command_seconds": command_s, "baseline_seconds": baseline_s}
    if args.compare_unsampled:
        unsampled = unsampled_walk_forward(files, args.seed)
        figures["unsampled_walk_forward_seconds"] = unsampled
        print(
            f"\nunsampled walk-forward (every window each epoch, batch 64): {unsampled:.1f} s, "
            f"{unsampled / result['seconds']:.1f}x the sampled one"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "evaluate": result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
