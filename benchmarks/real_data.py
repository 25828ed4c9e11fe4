"""Long real history through the whole product: `sentinance demo` in replay mode on the hourly
CryptoDataDownload files (Binance BTC/USDT and ETH/USDT, 2017-08-17 to 2020-12-31).

Prints the wall time of the full history and, as the baseline measured in the same run, of its
last tenth (the same files, a window a tenth as long), so the ratio says how the cost grows with
history on this machine; then the demo's own summary (row counts, skips) of the full run.

    python benchmarks/real_data.py [--share 0.1] [--keep DIR]

Reads ``../shared/data`` (never copies it: the replay folder holds symbolic links).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "crypto_prices_hourly_cdd"
FILES = ("Binance_BTCUSDT_1h.csv", "Binance_ETHUSDT_1h.csv")
START, END = date(2017, 8, 17), date(2021, 1, 1)
SENTINANCE = str(Path(sys.executable).parent / "sentinance")


def run_demo(home: Path, replay: Path, start: date, end: date) -> tuple[float, str]:
    env = {
        **os.environ,
        "SENTINANCE_HOME": str(home),
        "SENTINANCE_SOURCE": "replay",
        "SENTINANCE_REPLAY_DIR": str(replay),
        "SENTINANCE_EXCHANGES": "binance",
        "SENTINANCE_SYMBOLS": "BTC/USDT,ETH/USDT",
        "SENTINANCE_START": start.isoformat(),
        "SENTINANCE_END": end.isoformat(),
    }
    t0 = time.perf_counter()
    proc = subprocess.run([SENTINANCE, "demo"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"demo {start}..{end} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return seconds, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--share", type=float, default=0.1, help="baseline window share")
    parser.add_argument("--keep", type=Path, help="keep the homes in this folder")
    args = parser.parse_args()
    missing = [f for f in FILES if not (DATA / f).exists()]
    if missing:
        sys.exit(f"real data not available: {DATA} lacks {missing} (needs ../shared beside it)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="sentinance-real-"))
    replay = work / "replay" / "candles"
    replay.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if not (replay / name).exists():
            (replay / name).symlink_to(DATA / name)
    days = (END - START).days
    short_start = END - timedelta(days=max(1, round(days * args.share)))
    base_s, _ = run_demo(work / "home-short", replay.parent, short_start, END)
    full_s, summary = run_demo(work / "home-full", replay.parent, START, END)
    print(f"history: {days} days of hourly candles, 2 markets ({START}..{END})")
    print(f"baseline: last {(END - short_start).days} days  {base_s:8.1f} s")
    print(f"full history                 {full_s:8.1f} s")
    print(
        f"ratio full / baseline: {full_s / base_s:.2f}x for {days / (END - short_start).days:.1f}x"
    )
    print("\n--- summary of the full run ---")
    print(summary[summary.find("rows per table") :])


if __name__ == "__main__":
    main()
