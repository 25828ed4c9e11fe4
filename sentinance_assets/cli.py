"""The ``sentinance`` command: run the graph, look at the data.

``sentinance demo``   materialize the whole asset graph on the configured window and print a summary
``sentinance query``  run a read-only SQL query on the published warehouse (CSV, or JSON)
``sentinance dev``    the Dagster UI on this home's instance; ``sentinance app`` the Streamlit app
``sentinance detect`` run the detectors over a trades file; ``sentinance watch`` continuously
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from sentinance_assets.lib.sources.base import TradeFeed
from sentinance_assets.lib.warehouse import WarehouseNotBuiltError, reading
from sentinance_assets.settings import (
    WATCH_TRANSPORTS,
    Settings,
    SettingsError,
    settings_help_epilog,
)

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DAGSTER_YAML = """\
# Written by `sentinance`: the local Dagster instance for this Sentinance home.
concurrency:
  pools:
    # Every warehouse writer runs in the `duckdb` pool: one at a time (DuckDB allows one
    # writing process per file). The `ingest` and `detection` pools get their own limits
    # (2 and 1) on the instance: `dagster instance concurrency get`.
    default_limit: 1
telemetry:
  enabled: false
"""


def _instance(settings: Settings):
    import dagster as dg

    from sentinance_assets.lib.operations.supervision import set_pool_limits

    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    instance = dg.DagsterInstance.from_config(str(home))
    set_pool_limits(instance)  # ingest and detection: lib/operations/supervision.py
    return instance


def analytics_run_config(full_refresh: bool = False) -> dict:
    """The demo's analytics run config; ``full_refresh`` rebuilds every incremental dbt model
    from the whole lake (for tables an older version built with other columns)."""
    run_config: dict = dict(QUIET_RUN_CONFIG)
    if full_refresh:
        run_config["ops"] = {"sentinance_dbt": {"config": {"full_refresh": True}}}
    return run_config


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from sentinance_assets.definitions import defs as load_defs
    from sentinance_assets.defs.ingest.landing import MAX_DAYS_PER_RUN
    from sentinance_assets.defs.skips import skips_in

    started = time.monotonic()
    print(f"Sentinance demo — source={settings.source}, home={settings.home}")
    print(
        f"window {settings.start:%Y-%m-%d %H:%M} .. {settings.end:%Y-%m-%d %H:%M} UTC, "
        f"exchanges={','.join(settings.exchanges)}, symbols={','.join(settings.symbols)}"
    )
    print("loading the asset graph ...", flush=True)
    defs = load_defs()
    instance = _instance(settings)
    ingest = defs.resolve_job_def("ingest_job")
    days = settings.days()
    # many days per run (each still its own partition): a run costs ~2 s of Dagster start-up,
    # which made years of replayed history take hours one day at a time
    chunks = [days[i : i + MAX_DAYS_PER_RUN] for i in range(0, len(days), MAX_DAYS_PER_RUN)]
    for i, chunk in enumerate(chunks, 1):
        t0 = time.monotonic()
        span = chunk[0] if len(chunk) == 1 else f"{chunk[0]}..{chunk[-1]}"
        result = ingest.execute_in_process(
            instance=instance,
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: chunk[0],
                ASSET_PARTITION_RANGE_END_TAG: chunk[-1],
            },
        )
        if not result.success:
            print(
                f"ingest of {span} failed: see `make dev` -> Runs, run {result.run_id}",
                file=sys.stderr,
            )
            return 1
        print(
            f"[{i}/{len(chunks)}] ingested {span} ({len(chunk)} days, "
            f"{time.monotonic() - t0:.1f} s)",
            flush=True,
        )
    print("building marts, sentiment, forecaster, drift and alerts ...", flush=True)
    t0 = time.monotonic()
    result = defs.resolve_job_def("analytics_job").execute_in_process(
        instance=instance,
        run_config=analytics_run_config(full_refresh=args.full_refresh),
        raise_on_error=False,
    )
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        print(
            f"analytics failed in {failed}: see run {result.run_id} in the Dagster UI",
            file=sys.stderr,
        )
        return 1
    print(f"analytics done ({time.monotonic() - t0:.1f} s)\n")
    print_summary(settings)
    print_sentiment_summary(settings)
    print_skips(skips_in(result.all_events))
    print(f"\nfinished in {time.monotonic() - started:.0f} s")
    print(
        "\nNext:\n  make dev   # Dagster UI at http://127.0.0.1:3000 (lineage, runs, checks)\n"
        "  make app   # Streamlit analyst app at http://127.0.0.1:8501\n"
        '  .venv/bin/sentinance query "select * from marts.asset_overview"'
    )
    return 0


SUMMARY_TABLES = (
    "raw.trades",
    "raw.candles",
    "raw.news",
    "raw.market_events",
    "quarantine.trades",
    "quarantine.candles",
    "quarantine.news",
    "marts.candles",
    "marts.indicators",
    "marts.spreads",
    "ml.news_sentiment",
    "ml.forecasts",
    "ml.forecast_evaluation",
    "ml.drift",
    "alerts.alerts",
)


def print_summary(settings: Settings) -> None:
    with reading(settings.read_path) as conn:
        print("rows per table")
        for table in SUMMARY_TABLES:
            try:
                row = conn.execute(f"select count(*) from {table}").fetchone()
            except duckdb.Error:
                continue
            n = row[0] if row else 0
            print(f"  {table:<26}{n:>12,}")
        print("alerts by type")
        for kind, n in conn.execute(
            "select type, count(*) from alerts.alert_feed group by 1 order by 1"
        ).fetchall():
            print(f"  {kind:<26}{n:>12,}")
        try:
            rows = conn.execute(SERVED_SQL).fetchall()
        except duckdb.Error:
            rows = []
        if rows:
            print(
                "forecasts served (the hold-out winner per target and horizon; interval "
                "coverage measured on the hold-out)"
            )
            for target, horizon, model, version, markets, c80, c95 in rows:
                cov = "  ".join(
                    f"{level} %: " + ("n/a" if c is None else f"{c:.0%}")
                    for level, c in ((80, c80), (95, c95))
                )
                print(
                    f"  {target:<13}{horizon:<5}{model:<12} v{version:<4} {markets} markets  {cov}"
                )


#: The newest forecast run's serving model per target and horizon (`sentinance demo`'s summary).
SERVED_SQL = """
select target, horizon, any_value(model), any_value(model_version), count(*),
       any_value(coverage_80), any_value(coverage_95)
from ml.forecasts
where created_at = (select max(created_at) from ml.forecasts)
group by target, horizon
order by target, case horizon when '1h' then 1 when '4h' then 4 when '24h' then 24 end
"""


def print_sentiment_summary(settings: Settings) -> None:
    """Which model scores the news (VADER: its held-out accuracy and the command that trains
    the transformer; see ``sentinance_assets.lib.sentiment_status``)."""
    from sentinance_assets.lib.sentiment_status import summary_lines

    print("\n".join(summary_lines(settings)))


def print_skips(skips: list[tuple[str, str]]) -> None:
    """What the run skipped for thin input, and why (the run itself succeeded)."""
    if not skips:
        return
    print("skipped (input too thin; the rest of the graph ran)")
    for asset, reason in skips:
        print(f"  {asset:<26}{reason}")


def cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    try:
        with reading(settings.read_path) as conn:
            frame = conn.sql(args.sql)
            if frame is None:
                print("the statement returned no rows", file=sys.stderr)
                return 0
            df = frame.pl()
    except WarehouseNotBuiltError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(df.write_json())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(df.write_csv())
    return 0


REPO_DIR = Path(__file__).resolve().parents[1]


def _exec(argv: list[str], env: dict[str, str]) -> int:
    """Replace this process with ``argv`` so signals (Ctrl-C) reach the server directly."""
    os.chdir(REPO_DIR)
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    _instance(settings)  # make sure the instance config (pools) exists
    bin_dir = Path(sys.executable).parent
    # dagster-dbt's dev-time preparation calls `dbt` from PATH: put the venv's first.
    env = {
        **os.environ,
        "DAGSTER_HOME": str(settings.dagster_home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return _exec(
        [
            str(bin_dir / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            args.host,
            "-p",
            str(args.port),
        ],
        env,
    )


def streamlit_argv(host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The command that serves the analyst app (run from the repository root); the CLI, the
    browser tests and the render benchmark all start it this way."""
    return [
        str(Path(sys.executable).parent / "streamlit"),
        "run",
        "streamlit_app/app.py",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


def cmd_app(settings: Settings, args: argparse.Namespace) -> int:
    return _exec(streamlit_argv(args.host, args.port), dict(os.environ))


def _rules(settings: Settings, path: str | None):
    """The alert rules (``--rules``, else SENTINANCE_ALERT_RULES, else built in); None after
    printing why they are invalid."""
    from sentinance_assets.lib.detection.rules_file import RulesError, rules_for

    try:
        return rules_for(settings, path)
    except RulesError as exc:
        print(f"error: invalid alert rules:\n{exc}", file=sys.stderr)
        return None


def cmd_detect(settings: Settings, args: argparse.Namespace) -> int:
    from sentinance_assets.lib.detection.engine import detect_all
    from sentinance_assets.lib.detection.sinks import write_jsonl
    from sentinance_assets.lib.detection.watch import read_trades_file

    rules = _rules(settings, args.rules)
    if rules is None:
        return 2
    try:
        trades = read_trades_file(Path(args.trades))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.trades}: {exc}", file=sys.stderr)
        return 2
    alerts = detect_all(trades, rules.detector)
    if args.out:
        with open(args.out, "w") as fh:
            n = write_jsonl(alerts, fh)
        print(f"{n} alerts over {trades.height} trades -> {args.out}", file=sys.stderr)
    else:
        write_jsonl(alerts, sys.stdout)
    return 0


def _watch_feed(
    settings: Settings, args: argparse.Namespace, when: Callable[[str | None], datetime | None]
) -> tuple[TradeFeed, str]:
    """The feed `sentinance watch` reads and its checkpoint name; ValueError when a live
    websocket feed cannot open."""
    from sentinance_assets.lib.detection.watch import LiveFeed, ReplayFeed, SimulatedFeed

    if args.trades:
        return ReplayFeed.from_files([Path(p) for p in args.trades]), args.name or "replay"
    if settings.source == "live":
        transport = args.transport or settings.watch_transport
        if transport == "poll":
            return LiveFeed.from_settings(settings), args.name or "live"
        from sentinance_assets.lib.sources.streams import StreamFeed

        stream = StreamFeed.from_settings(settings, transport=transport)
        stream.open()
        return stream, args.name or "live"
    exchanges = tuple(args.exchanges.split(",")) if args.exchanges else settings.exchanges
    symbols = tuple(args.symbols.upper().split(",")) if args.symbols else settings.symbols
    start = when(args.start) or settings.start
    simulated = SimulatedFeed(
        exchanges, symbols, settings.seed, settings.sim_trade_rate, start, when(args.until)
    )
    return simulated, args.name or "simulated"


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    from sentinance_assets.lib.detection.watch import (
        StopFlag,
        alert_sinks,
        run_watch,
        stderr_progress,
    )
    from sentinance_assets.lib.timestamps import TimestampError, parse_time

    def when(text: str | None) -> datetime | None:
        return parse_time(text, what="time option") if text else None

    try:
        for option, text in (("--start", args.start), ("--until", args.until)):
            if text:
                parse_time(text, what=option)
    except TimestampError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rules = _rules(settings, args.rules)
    if rules is None:
        return 2
    try:
        feed, name = _watch_feed(settings, args, when)
    except ValueError as exc:
        print(f"error: {exc} (use --transport auto or poll)", file=sys.stderr)
        return 2
    sinks = alert_sinks(
        settings,
        name,
        jsonl=args.jsonl,
        webhook=args.webhook,
        webhook_timeout=args.webhook_timeout,
        dead_letter=args.dead_letter,
        rules=rules,
    )
    stop = StopFlag()
    stop.install()
    try:
        stats = run_watch(
            feed,
            sinks,
            settings.checkpoints_dir / f"watch-{name}.ckpt",
            speed=args.speed,
            duration=args.duration,
            until=when(args.until),
            max_batch=timedelta(seconds=args.max_batch),
            cfg=rules.detector,
            stop=stop,
            progress=None if args.quiet else stderr_progress,
        )
    finally:
        final = feed.status()  # before closing ends the sessions
        feed.close()  # the websocket feed's thread and sockets
    if final is not None:
        print(f"\ntransport: {final}", file=sys.stderr)
    lat = sorted(stats.latencies_ms)
    p95 = f", p95 latency {lat[int(0.95 * (len(lat) - 1))]:.0f} ms" if lat else ""
    print(
        f"\nwatch stopped: {stats.batches} batches, {stats.trades:,} trades, "
        f"{stats.alerts} alerts{p95}",
        file=sys.stderr,
    )
    return 0


REPLAY_LAYOUT = "exchange,symbol,trade_id,timestamp,price,amount,side"
RULES_HELP = "alert rules file, TOML or YAML (default: SENTINANCE_ALERT_RULES, else built in)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentinance",
        description="Crypto market intelligence on a Dagster asset graph over DuckDB.\n"
        "Configure with SENTINANCE_* environment variables (listed below).",
        # the variables come from the settings' field table, laid out there (kept raw here)
        epilog=settings_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize the whole graph and print a summary")
    demo.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental dbt models from the whole lake (dbt build --full-refresh)",
    )
    demo.set_defaults(func=cmd_demo)
    query = sub.add_parser("query", help="run a read-only SQL query on the warehouse")
    query.add_argument("sql", help='e.g. "select * from marts.candles limit 5"')
    query.add_argument("--json", action="store_true", help="print JSON rows instead of CSV")
    query.set_defaults(func=cmd_query)
    dev = sub.add_parser("dev", help="start the Dagster UI on this home's instance")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=cmd_dev)
    app = sub.add_parser("app", help="start the Streamlit analyst app")
    app.add_argument("--host", default="127.0.0.1")
    app.add_argument("--port", type=int, default=8501)
    app.set_defaults(func=cmd_app)
    detect = sub.add_parser("detect", help="run the detectors over a trades file (JSON lines)")
    detect.add_argument("--trades", required=True, help="CSV or Parquet: " + REPLAY_LAYOUT)
    detect.add_argument("--out", help="write JSON lines here instead of stdout")
    detect.add_argument("--rules", help=RULES_HELP)
    detect.set_defaults(func=cmd_detect)
    watch = sub.add_parser("watch", help="run the detectors continuously over new trades")
    watch.add_argument("--speed", type=float, default=1.0, help="x real time; 0 = flat out")
    watch.add_argument("--duration", type=float, help="stop after this many seconds")
    watch.add_argument("--exchanges", help="comma-separated ccxt ids (simulated feed)")
    watch.add_argument("--symbols", help="comma-separated assets or symbols (simulated feed)")
    watch.add_argument("--start", help="feed start time, ISO-8601 (simulated; default window)")
    watch.add_argument("--until", help="stop when the feed reaches this time, ISO-8601")
    watch.add_argument("--trades", nargs="+", help="replay these trade files instead")
    watch.add_argument("--name", help="stream name: checkpoint and lake folder (default: feed)")
    watch.add_argument("--jsonl", help="also append alerts to this JSON-lines file")
    watch.add_argument("--webhook", help="also POST each alert to this URL")
    watch.add_argument(
        "--webhook-timeout",
        type=float,
        default=None,
        help="seconds (default: SENTINANCE_ALERT_WEBHOOK_TIMEOUT, 2)",
    )
    watch.add_argument("--dead-letter", help="undeliverable webhook alerts (JSON lines)")
    watch.add_argument("--max-batch", type=float, default=300.0, help="feed seconds per step")
    watch.add_argument(
        "--transport",
        choices=WATCH_TRANSPORTS,
        help="live exchanges: auto = ccxt.pro websockets where available, else REST polling; "
        "ws = websockets required; poll = REST only (default: SENTINANCE_WATCH_TRANSPORT, auto)",
    )
    watch.add_argument("--rules", help=RULES_HELP)
    watch.add_argument("--quiet", action="store_true", help="no progress line")
    watch.set_defaults(func=cmd_watch)
    for command in _command_modules():
        command.register(sub)
    return parser


def _command_modules() -> list:
    """Command groups that live in ``sentinance_assets.commands`` (one module each)."""
    from sentinance_assets.commands import api, backtest, forecast, lake, sentiment, serve, status

    return [api, backtest, forecast, lake, sentiment, serve, status]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return args.func(settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
