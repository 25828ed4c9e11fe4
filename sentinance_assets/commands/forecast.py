"""``sentinance forecast evaluate``: walk-forward evaluation of the forecaster on candle files.

Reads one or more files (or folders) of hourly candles (``--candles`` repeated; the project's
layout or CryptoDataDownload's as downloaded), trains on the data before ``--test-start``
(default: the last 20 % of the span is the test period), evaluates walk-forward from there
(expanding window, gap = the longest horizon) and prints JSON: what the candles held (missing,
duplicated, maintenance and implausible bars, and the rows they cost), which model would serve
each target and horizon (the hold-out winner: LSTM or a baseline, with the Diebold-Mariano
p-value against the runner-up and its interval coverage), then per symbol (and ``ALL`` pooled)
and horizon, the model and every baseline (zero return, persistence, EWMA and HAR-RV
volatility) side by side: losses, skill and DM p-value against each other candidate,
80 % / 95 % conformal interval coverage and width, and net basis points per trade of trading
the sign with a 10 bp round-trip cost. Nothing is written to
the warehouse or MLflow. Too little history exits 2 with what is needed and what there is.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``forecast evaluate`` to the CLI's sub-parsers."""
    forecast = subparsers.add_parser("forecast", help="forecaster tools")
    sub = forecast.add_subparsers(dest="forecast_command", required=True)
    ev = sub.add_parser(
        "evaluate",
        help="walk-forward evaluation on a file of 1h candles; prints JSON",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument(
        "--candles",
        required=True,
        action="append",
        metavar="FILE_OR_FOLDER",
        help="CSV or Parquet of 1h candles: timestamp (epoch ms/s or ISO; or unix), symbol, "
        "open, high, low, close, volume (CryptoDataDownload files as downloaded); repeat it "
        "for several files, or name a folder of them",
    )
    ev.add_argument(
        "--test-start",
        type=_date,
        default=None,
        help="first test origin (ISO date/time, UTC); default: last 20%% of the span",
    )
    ev.add_argument("--folds", type=int, default=None, help="walk-forward folds (default: auto)")
    ev.add_argument("--epochs", type=int, default=None, help="max epochs per seed (default 40)")
    ev.add_argument("--seed", type=int, default=None, help="first ensemble seed (default: setting)")
    ev.add_argument("--output", default=None, help="also write the JSON to this file")
    ev.set_defaults(func=cmd_forecast_evaluate)


def _date(text: str) -> datetime:
    t = text.strip().replace("Z", "+00:00")
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date/time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_forecast_evaluate(settings: Any, args: argparse.Namespace) -> int:
    from ml import forecast_lifecycle, serving
    from sentinance_assets.lib.forecast_io import candle_files, read_candles_files

    try:
        files = [str(f) for f in candle_files(args.candles)]
        candles = read_candles_files(files)
    except (OSError, ValueError) as exc:
        print(f"cannot read candles: {exc}", file=sys.stderr)
        return 2
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    seed = args.seed if args.seed is not None else settings.seed
    try:
        walk = forecast_lifecycle.walk_forward(
            candles, seed, test_start=args.test_start, n_folds=args.folds, **overrides
        )
    except ValueError as exc:
        print(f"cannot evaluate: {exc}", file=sys.stderr)
        return 2
    out = {
        "candles": files,
        "symbols": sorted(candles["symbol"].unique().to_list()),
        "left_out_symbols": walk.short_symbols,
        "data_quality": walk.quality.to_dict() if walk.quality else None,
        "test_start": walk.test_start_ts.isoformat(),
        "folds": [
            {
                "train_end": a.isoformat(),
                "test_end": b.isoformat(),
                "fit_windows": m.info["n_fit_windows"],
                "epochs_run": sum(s["epochs_run"] for s in m.info["per_seed"]),
                "train_seconds": m.info["train_seconds"],
            }
            for (a, b), m in zip(walk.folds, walk.models, strict=True)
        ],
        "horizons": walk.config.horizons,
        "config": walk.config.to_dict(),
        "seconds": round(walk.seconds, 2),
        "realized_volatility_from": walk.realized_from,
        "promotion_vs_baselines": forecast_lifecycle.promotion_decision_summary(walk),
        "serving": serving.serving_plan(walk.evaluation, walk.quantiles, walk.config.horizons),
        "evaluation": forecast_lifecycle.side_by_side(walk.evaluation),
    }
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0
