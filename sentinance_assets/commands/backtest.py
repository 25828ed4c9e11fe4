"""``sentinance backtest``: replay recorded trades through alert rule sets and compare them.

    sentinance backtest --trades day1.parquet day2.csv [--rules a.toml] [--rules b.yaml]
        [--labels events.csv] [--json] [--out report.json]

Each ``--rules`` file is one rule set (none: the built-in defaults; give ``--rules default``
to put the built-in rules beside a file). Per alert type and market the report gives alerts
per day, the messages an analyst would get after grouping (the rule set's delivery section),
precision, recall and detection delay against ``--labels`` (columns ``type, exchange,
symbol, start_ts, end_ts``), and the forward return and volatility over 5, 15 and 60 minutes
after each alert against the market's usual movement; with two rule sets or more, the
difference of each against the first. A readable table is printed (``--json``: the JSON
report instead); the report is also saved under ``<home>/backtests/`` for the app's
Backtests page (``--no-save``: not). Invalid rules or unreadable files exit 2.

``--engine spark`` (the default when ``SENTINANCE_ENGINE=spark``) runs the detection on Spark,
one task per base asset (the session of the Spark settings: local, or a Spark Connect server);
the alerts are the same as in this process (``polars``), and the figures are computed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sentinance_assets.cli import REPLAY_LAYOUT


def register(subparsers: Any) -> None:
    """Add ``backtest`` to the CLI's sub-parsers."""
    bt = subparsers.add_parser(
        "backtest",
        help="replay trades through alert rule sets: rates, grouping, precision, forward moves",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bt.add_argument(
        "--trades", required=True, nargs="+", help="CSV or Parquet files: " + REPLAY_LAYOUT
    )
    bt.add_argument(
        "--rules",
        action="append",
        default=[],
        help="a rules file (TOML or YAML), repeat to compare; 'default' = the built-in rules",
    )
    bt.add_argument("--labels", help="labelled events: type,exchange,symbol,start_ts,end_ts")
    bt.add_argument(
        "--horizons", default="5,15,60", help="forward horizons in minutes (default 5,15,60)"
    )
    bt.add_argument(
        "--engine",
        choices=("polars", "spark"),
        help="where the detection runs: this process (polars) or Spark, one task per asset "
        "(default: spark when SENTINANCE_ENGINE=spark, else polars)",
    )
    bt.add_argument("--json", action="store_true", help="print the JSON report, not the table")
    bt.add_argument("--out", help="also write the JSON report to this file")
    bt.add_argument("--no-save", action="store_true", help="do not keep it for the app")
    bt.set_defaults(func=cmd_backtest)


def _rule_sets(paths: list[str]):
    from sentinance_assets.lib.detection.backtest import RuleSet
    from sentinance_assets.lib.detection.rules_file import default_rules, load_rules

    if not paths:
        return [RuleSet("default", default_rules())]
    stems = [Path(p).stem for p in paths]
    out = []
    for p, stem in zip(paths, stems, strict=True):
        if p == "default":
            out.append(RuleSet("default", default_rules()))
            continue
        name = stem if stems.count(stem) == 1 else p
        out.append(RuleSet(name, load_rules(p)))
    return out


def cmd_backtest(settings: Any, args: argparse.Namespace) -> int:
    import polars as pl

    from sentinance_assets.lib.detection.backtest import (
        format_report,
        read_labels,
        run_backtest,
        save_report,
    )
    from sentinance_assets.lib.detection.rules_file import RulesError
    from sentinance_assets.lib.detection.watch import read_trades_file

    try:
        rule_sets = _rule_sets(args.rules)
    except RulesError as exc:
        print(f"error: invalid alert rules:\n{exc}", file=sys.stderr)
        return 2
    try:
        horizons = [int(h) for h in args.horizons.split(",") if h.strip()]
        if not horizons or min(horizons) < 1:
            raise ValueError("horizons must be positive minutes")
    except ValueError as exc:
        print(f"error: --horizons {args.horizons!r}: {exc}", file=sys.stderr)
        return 2
    try:
        trades = pl.concat([read_trades_file(Path(p)) for p in args.trades])
        labels = read_labels(Path(args.labels)) if args.labels else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if trades.height == 0:
        print("error: the trade files hold no trades", file=sys.stderr)
        return 2
    engine = args.engine or ("spark" if settings.engine == "spark" else "polars")
    try:
        detect = _spark_detect(settings) if engine == "spark" else None
    except RuntimeError as exc:  # SparkUnavailableError: no Java, no PySpark
        print(f"error: --engine spark: {exc}", file=sys.stderr)
        return 2
    report = run_backtest(
        trades,
        rule_sets,
        labels=labels,
        horizons=horizons,
        inputs={"trades": [str(p) for p in args.trades], "labels": args.labels, "engine": engine},
        detect=detect,
    )
    text = json.dumps(report, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(text)
    if not args.no_save:
        path = save_report(report, settings.home)
        print(f"saved for the app: {path}", file=sys.stderr)
    sys.stdout.write(text + "\n" if args.json else format_report(report))
    return 0


def _spark_detect(settings: Any):
    """``detect(trades, cfg)`` on the Spark session of the settings."""
    from datetime import UTC, datetime

    from sentinance_assets.lib.spark import session_for
    from sentinance_assets.lib.spark_detection import detect_trades_on_spark

    spark = session_for(settings)
    detected_at = datetime.now(UTC)
    return lambda trades, cfg: detect_trades_on_spark(spark, trades, cfg, detected_at)
