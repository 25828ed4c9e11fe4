"""Backtest alert rules on recorded trades before trusting them (``sentinance backtest``).

For each rule set (a rules file, or the built-in defaults) the trades are replayed through the
detectors (:func:`~.engine.detect_all`: the same alerts the watch loop would raise), and per
alert type and market the report gives:

* **alerts** and **alerts per day** (per market and day too); days = the span of the trades;
* **delivered after grouping**: the alerts each arrive when the engine can decide them
  (:func:`decided_at`) and go through the rule set's delivery policy (group wait, group
  interval, repeat interval, quiet hours, rate cap; :func:`~.delivery.simulate`) as one
  catch-all channel: the messages an analyst would get, the alerts itemized in them and the
  repeats folded away;
* with labelled events (``--labels``: columns ``type, exchange, symbol, start_ts, end_ts``,
  the simulator's ground-truth layout): **precision/recall** by the matching rule of
  :mod:`.quality`, and the **detection delay** from an event's start to the decision of its
  first matching alert (median, p90);
* **what happened after each alert**: from the close of the minute in which it was decided,
  the forward log return and the volatility (standard deviation of 1-minute log returns) over
  5, 15 and 60 minutes, each divided by the same market's unconditional average over all
  minutes (*lift*: 1 = no more movement than usual); the p-value of a one-sided Mann-Whitney
  test of the normalized absolute returns after alerts against all minutes;
* with two or more rule sets, the **difference** of each against the first: alerts added,
  removed and changed (:func:`~.versions.compare_alerts`) and the per-type figures side by side.

The report is JSON (:func:`run_backtest`), rendered as a table by :func:`format_report`, and
saved under ``<home>/backtests/`` for the app's Backtests page.

The detection itself can run elsewhere (``detect``): on Spark, one task per base asset
(``lib.spark_detection.detect_trades_on_spark``, ``sentinance backtest --engine spark``). The
trades go into it in the engine's canonical order (``days.in_trade_order``): the engine's window
sums are floating point, so a fixed order makes the alerts a function of the set of trades,
which is what lets the Spark tasks reproduce them exactly.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sentinance_assets.lib.detection.days import in_trade_order
from sentinance_assets.lib.detection.delivery import backtest_policy, simulate
from sentinance_assets.lib.detection.engine import detect_all
from sentinance_assets.lib.detection.quality import TYPES, match_pairs, score_alerts
from sentinance_assets.lib.detection.rules import BAR, MARKET, DetectorConfig
from sentinance_assets.lib.detection.rules_file import Rules
from sentinance_assets.lib.detection.sinks import alert_records
from sentinance_assets.lib.detection.versions import compare_alerts
from sentinance_assets.lib.schemas import RAW_MARKET_EVENTS, TS
from sentinance_assets.lib.timestamps import parse_series

HORIZONS = (5, 15, 60)
REPORT_KIND = "sentinance-backtest"


@dataclass(frozen=True)
class RuleSet:
    name: str
    rules: Rules


# ------------------------------------------------------------------------------ timing
def decided_at(alerts: pl.DataFrame, cfg: DetectorConfig) -> pl.Series:
    """When the streaming engine can decide each alert: a whale as its trade arrives; a
    window rule once its data is complete (the frontier moves by whole minutes, so the next
    minute boundary at or after: a spike's window end, a divergence episode's settling
    time, a pump's reversal window, a wash run's last gap)."""
    details = pl.col("details")
    duration = details.str.json_path_match("$.duration_s").cast(pl.Float64).fill_null(0.0)
    last_ts = parse_series(
        alerts["details"].str.json_path_match("$.last_ts").fill_null("1970-01-01T00:00:00Z")
    ).alias("last_ts")
    settle = (cfg.divergence_carry + 2) * BAR.total_seconds() - BAR.total_seconds()
    raw = (
        alerts.with_columns(last_ts)
        .select(
            pl.when(pl.col("type") == "volume_spike")
            .then(pl.col("event_time") + pl.duration(seconds=60))
            .when(pl.col("type") == "divergence")
            .then(pl.col("event_time") + pl.duration(seconds=duration + settle))
            .when(pl.col("type") == "pump_and_dump")
            .then(pl.col("event_time") + pl.duration(minutes=cfg.pump_window_min + 1))
            .when(pl.col("type") == "wash_trading")
            .then(pl.col("last_ts") + pl.duration(milliseconds=int(cfg.wash_gap_s * 1000) + 1))
            .otherwise(pl.col("event_time"))
            .alias("t"),
            pl.col("type"),
        )
        .select(
            pl.when(pl.col("type") == "whale")
            .then(pl.col("t"))
            .otherwise(  # the next minute boundary at or after t
                (pl.col("t") - pl.duration(milliseconds=1)).dt.truncate("1m")
                + pl.duration(minutes=1)
            )
            .cast(TS)
            .alias("decided_at")
        )
    )
    return raw.to_series()


# ------------------------------------------------------------------------------ prices
def minute_prices(trades: pl.DataFrame) -> pl.DataFrame:
    """Last trade price per market and minute on a complete minute grid (carried forward)."""
    last = (
        trades.lazy()
        .sort("ts")
        .group_by(*MARKET, pl.col("ts").dt.truncate("1m").alias("minute"))
        .agg(pl.col("price").last())
    )
    return _grid(last.collect())


def _grid(last: pl.DataFrame) -> pl.DataFrame:
    if last.height == 0:
        return pl.DataFrame(
            schema={"exchange": pl.String, "symbol": pl.String, "minute": TS, "price": pl.Float64}
        )
    span = last.group_by(MARKET).agg(
        pl.col("minute").min().alias("lo"), pl.col("minute").max().alias("hi")
    )
    grid = (
        span.with_columns(
            pl.datetime_ranges("lo", "hi", "1m", time_unit="ms", time_zone="UTC").alias("minute")
        )
        .select(*MARKET, "minute")
        .explode("minute")
    )
    return (
        grid.join(last, on=[*MARKET, "minute"], how="left")
        .sort(*MARKET, "minute")
        .with_columns(pl.col("price").forward_fill().over(MARKET))
    )


def forward_table(prices: pl.DataFrame, horizons: Sequence[int] = HORIZONS) -> pl.DataFrame:
    """Per market and minute: forward log return ``ret_<h>`` and volatility ``vol_<h>`` (std
    of the next ``h`` 1-minute log returns), from the minute's close."""
    lp = pl.col("price").log()
    r = lp.diff()
    cols = []
    for h in horizons:
        cols.append((lp.shift(-h) - lp).over(MARKET).alias(f"ret_{h}"))
        cols.append(r.rolling_std(h, min_samples=h).shift(-h).over(MARKET).alias(f"vol_{h}"))
    return prices.sort(*MARKET, "minute").with_columns(cols)


def forward_evidence(
    alerts: pl.DataFrame, decided: pl.Series, table: pl.DataFrame, horizons: Sequence[int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """{type: {horizon: stats}} of the moves after each alert against the unconditional
    baseline of its market (see the module docstring)."""
    from scipy.stats import mannwhitneyu

    base = table.group_by(MARKET).agg(
        *[pl.col(f"ret_{h}").abs().mean().alias(f"b_abs_{h}") for h in horizons],
        *[pl.col(f"vol_{h}").mean().alias(f"b_vol_{h}") for h in horizons],
    )
    norm = table.join(base, on=MARKET)
    anchored = (
        alerts.select("type", *MARKET)
        .with_columns(decided.dt.truncate("1m").alias("minute"))
        .join(norm, on=[*MARKET, "minute"], how="left")
    )
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in TYPES:
        sub = anchored.filter(pl.col("type") == kind)
        if sub.height == 0:
            continue
        out[kind] = {}
        for h in horizons:
            ok = sub.filter(pl.col(f"ret_{h}").is_not_null() & (pl.col(f"b_abs_{h}") > 0))
            if ok.height == 0:
                out[kind][str(h)] = {"n": 0}
                continue
            a_abs = (ok[f"ret_{h}"].abs() / ok[f"b_abs_{h}"]).to_numpy()
            a_vol = (ok[f"vol_{h}"] / ok[f"b_vol_{h}"]).drop_nulls().to_numpy()
            pool = norm.filter(pl.col(f"ret_{h}").is_not_null() & (pl.col(f"b_abs_{h}") > 0))
            b_abs = (pool[f"ret_{h}"].abs() / pool[f"b_abs_{h}"]).to_numpy()
            if len(b_abs) > 50_000:
                b_abs = rng.choice(b_abs, 50_000, replace=False)
            p = (
                float(mannwhitneyu(a_abs, b_abs, alternative="greater").pvalue)
                if len(a_abs) >= 3 and len(b_abs) >= 3
                else None
            )
            out[kind][str(h)] = {
                "n": int(ok.height),
                "abs_ret_bp": _bp(ok[f"ret_{h}"].abs().mean()),
                "base_abs_ret_bp": _bp(ok[f"b_abs_{h}"].mean()),
                "lift_abs_ret": _num(float(np.mean(a_abs))),
                "vol_bp": _bp(ok[f"vol_{h}"].mean()),
                "base_vol_bp": _bp(ok[f"b_vol_{h}"].mean()),
                "lift_vol": _num(float(np.mean(a_vol))) if len(a_vol) else None,
                "mean_ret_bp": _bp(ok[f"ret_{h}"].mean()),
                "p_value": _num(p),
            }
    return out


def _by_day(times: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in times:
        day = datetime.fromtimestamp(t, UTC).date().isoformat()
        out[day] = out.get(day, 0) + 1
    return dict(sorted(out.items()))


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)


def _bp(x: Any) -> float | None:
    v = _num(x)
    return None if v is None else round(v * 1e4, 3)


# ------------------------------------------------------------------------------ inputs
def replay_layout(trades: pl.DataFrame) -> pl.DataFrame:
    """``raw.trades`` rows in the replay-file layout ``sentinance backtest --trades`` (and
    ``detect``, ``watch``) read: exchange, symbol, trade_id, timestamp (epoch ms), price,
    amount, side."""
    return trades.select(
        "exchange",
        "symbol",
        "trade_id",
        pl.col("ts").dt.epoch("ms").alias("timestamp"),
        "price",
        "amount",
        "side",
    )


# ------------------------------------------------------------------------------ labels
def read_labels(path: Path) -> pl.DataFrame:
    """Labelled events (CSV, Parquet or JSON lines): type, exchange, symbol, start_ts,
    end_ts (any timestamp form; end_ts defaults to start_ts), event_id optional."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df = pl.read_parquet(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        df = pl.read_ndjson(path)
    else:
        df = pl.read_csv(path, infer_schema=False)
    need = ("type", "exchange", "symbol", "start_ts")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: labels lack columns {missing} (need {', '.join(need)})")
    if "end_ts" not in df.columns:
        df = df.with_columns(pl.col("start_ts").alias("end_ts"))
    if "event_id" not in df.columns:
        df = df.with_row_index("event_id").with_columns(pl.col("event_id").cast(pl.String))
    out = df.with_columns(
        parse_series(df["start_ts"].cast(pl.String), strict=True).alias("start_ts")
        if df["start_ts"].dtype != TS
        else pl.col("start_ts"),
        parse_series(df["end_ts"].cast(pl.String), strict=True).alias("end_ts")
        if df["end_ts"].dtype != TS
        else pl.col("end_ts"),
        pl.col("exchange").str.to_lowercase(),
        pl.col("symbol").str.to_uppercase(),
        pl.col("event_id").cast(pl.String),
    )
    for c, t in RAW_MARKET_EVENTS.columns.items():
        if c not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=t).alias(c))
    return RAW_MARKET_EVENTS.conform(out)


# ------------------------------------------------------------------------------ the run
def _span_days(trades: pl.DataFrame) -> float:
    lo, hi = trades["ts"].min(), trades["ts"].max()
    if lo is None or hi is None:
        return 0.0
    return max((hi - lo).total_seconds() / 86_400, 1 / 1440)


def _delays(alerts: pl.DataFrame, decided: pl.Series, labels: pl.DataFrame) -> dict[str, dict]:
    pairs = match_pairs(alerts, labels)
    if pairs.height == 0:
        return {}
    timed = alerts.select("alert_id").with_columns(decided.alias("decided_at"))
    first = (
        pairs.join(timed, on="alert_id")
        .group_by("type", "event_id")
        .agg((pl.col("decided_at") - pl.col("start_ts")).min().dt.total_milliseconds() / 1000)
        .rename({"decided_at": "delay_s"})
    )
    out = {}
    for kind, delays in first.group_by("type").agg(pl.col("delay_s")).iter_rows():
        arr = np.array(delays, dtype=float)
        out[kind] = {
            "delay_median_s": round(float(np.median(arr)), 1),
            "delay_p90_s": round(float(np.percentile(arr, 90)), 1),
        }
    return out


def evaluate(
    alerts: pl.DataFrame,
    rules: Rules,
    *,
    days: float,
    markets: int,
    prices: pl.DataFrame,
    labels: pl.DataFrame | None = None,
    trades: pl.DataFrame | None = None,
    horizons: Sequence[int] = HORIZONS,
    decided: pl.Series | None = None,
) -> dict[str, Any]:
    """The figures of one rule set's alerts (see the module docstring)."""
    cfg = rules.detector
    decided = decided_at(alerts, cfg) if decided is None else decided
    records = alert_records(alerts)
    when = [d.timestamp() for d in decided.to_list()]
    msgs = simulate(backtest_policy(rules.delivery), list(zip(when, records, strict=True)))
    itemized = {i for m in msgs for i in m["alert_ids"]}
    of = {i: (k, e, s) for i, k, e, s in alerts.select("alert_id", "type", *MARKET).iter_rows()}
    msg_types: Counter[str] = Counter()
    # per (type, exchange, symbol): the messages that itemize one of its alerts, whatever
    # their grouping (a market's own message, an asset's, or a digest of every market)
    msg_markets: Counter[tuple[str, str, str]] = Counter()
    for m in msgs:
        keys = {of[i] for i in m["alert_ids"]}
        msg_types.update({k for k, _, _ in keys})
        msg_markets.update(keys)
    flagged = alerts.with_columns(
        pl.col("alert_id").is_in(list(itemized)).alias("itemized"), decided.alias("decided_at")
    )
    score: dict[str, dict] = {}
    if labels is not None:
        for row in score_alerts(alerts, labels, trades).iter_rows(named=True):
            score[row["type"]] = row
    delays = _delays(alerts, decided, labels) if labels is not None else {}
    forward = forward_evidence(alerts, decided, forward_table(prices, horizons), horizons)
    per_day = 1 / days if days else 0.0
    by_type = []
    for kind in TYPES:
        sub = flagged.filter(pl.col("type") == kind)
        s = score.get(kind, {})
        by_type.append(
            {
                "type": kind,
                "alerts": sub.height,
                "per_day": round(sub.height * per_day, 3),
                "per_market_day": round(sub.height * per_day / markets, 3) if markets else None,
                "delivered": int(sub["itemized"].sum()),
                "suppressed": int(sub.height - sub["itemized"].sum()),
                "messages": msg_types.get(kind, 0),
                "events": s.get("events"),
                "unobservable": s.get("unobservable"),
                "explained": s.get("explained"),
                "precision": _num(s.get("precision")),
                "recall": _num(s.get("recall")),
                **delays.get(kind, {}),
                "forward": forward.get(kind, {}),
            }
        )
    by_market = [
        {
            "type": kind,
            "exchange": ex,
            "symbol": sym,
            "alerts": n,
            "per_day": round(n * per_day, 3),
            "delivered": int(d),
            "messages": msg_markets[(kind, ex, sym)],
        }
        for kind, ex, sym, n, d in flagged.group_by("type", *MARKET)
        .agg(pl.len(), pl.col("itemized").sum())
        .sort("type", *MARKET)
        .iter_rows()
    ]
    return {
        "name": None,
        "source": rules.source,
        "version": rules.version,
        "totals": {
            "alerts": alerts.height,
            "alerts_per_day": round(alerts.height * per_day, 3),
            "alerts_per_market_day": round(alerts.height * per_day / markets, 3)
            if markets
            else None,
            "messages": len(msgs),
            "messages_per_day": round(len(msgs) * per_day, 3),
            "messages_by_day": _by_day(m["created"] for m in msgs),
            "alerts_by_day": _by_day(d.timestamp() for d in decided.to_list()),
        },
        "by_type": by_type,
        "by_market": by_market,
    }


def run_backtest(
    trades: pl.DataFrame,
    rule_sets: Sequence[RuleSet],
    *,
    labels: pl.DataFrame | None = None,
    horizons: Sequence[int] = HORIZONS,
    inputs: Mapping[str, Any] | None = None,
    detect: Callable[[pl.DataFrame, DetectorConfig], pl.DataFrame] | None = None,
) -> dict[str, Any]:
    """Replay ``trades`` through each rule set; the JSON-ready report. ``detect(trades, cfg)``
    finds the alerts (default: ``engine.detect_all`` in this process)."""
    detect = detect or (lambda t, cfg: detect_all(t, cfg))
    trades = in_trade_order(trades)
    days = _span_days(trades)
    markets = trades.select(MARKET).unique().height
    prices = minute_prices(trades)
    report: dict[str, Any] = {
        "kind": REPORT_KIND,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "input": {
            **(inputs or {}),
            "trades_rows": trades.height,
            "markets": markets,
            "start": str(trades["ts"].min()),
            "end": str(trades["ts"].max()),
            "days": round(days, 4),
            "labelled_events": None if labels is None else labels.height,
        },
        "horizons_min": list(horizons),
        "rule_sets": [],
    }
    found: list[pl.DataFrame] = []
    for rs in rule_sets:
        alerts = detect(trades, rs.rules.detector)
        found.append(alerts)
        result = evaluate(
            alerts,
            rs.rules,
            days=days,
            markets=markets,
            prices=prices,
            labels=labels,
            trades=trades,
            horizons=horizons,
        )
        result["name"] = rs.name
        report["rule_sets"].append(result)
    report["diff"] = [
        rule_set_diff(report["rule_sets"][0], report["rule_sets"][i], found[0], found[i])
        for i in range(1, len(rule_sets))
    ]
    return report


def rule_set_diff(a: dict, b: dict, alerts_a: pl.DataFrame, alerts_b: pl.DataFrame) -> dict:
    """Rule set ``b`` against ``a``: alerts added/removed/changed, figures side by side."""
    diff = compare_alerts(alerts_a, alerts_b)
    counts: dict[str, dict[str, int]] = {}
    for kind, change, n in diff.group_by("type", "change").len().iter_rows():
        counts.setdefault(kind, {})[change] = int(n)
    rows = []
    for ta, tb in zip(a["by_type"], b["by_type"], strict=True):
        c = counts.get(ta["type"], {})
        rows.append(
            {
                "type": ta["type"],
                "alerts_a": ta["alerts"],
                "alerts_b": tb["alerts"],
                "per_day_a": ta["per_day"],
                "per_day_b": tb["per_day"],
                "messages_a": ta["messages"],
                "messages_b": tb["messages"],
                "precision_a": ta["precision"],
                "precision_b": tb["precision"],
                "recall_a": ta["recall"],
                "recall_b": tb["recall"],
                "added": c.get("added", 0),
                "removed": c.get("removed", 0),
                "changed": c.get("changed", 0),
            }
        )
    return {
        "a": a["name"],
        "b": b["name"],
        "version_a": a["version"],
        "version_b": b["version"],
        "messages_per_day_a": a["totals"]["messages_per_day"],
        "messages_per_day_b": b["totals"]["messages_per_day"],
        "by_type": rows,
    }


# ------------------------------------------------------------------------------ output
def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def format_report(report: Mapping[str, Any]) -> str:
    """The report as readable text tables."""
    inp = report["input"]
    lines = [
        f"backtest: {inp['trades_rows']:,} trades, {inp['markets']} markets, "
        f"{inp['days']:.2f} days ({inp['start'][:16]} .. {inp['end'][:16]})"
        + (f"; {inp['labelled_events']} labelled events" if inp.get("labelled_events") else "")
    ]
    horizons = report["horizons_min"]
    for rs in report["rule_sets"]:
        t = rs["totals"]
        lines += [
            "",
            f"rules {rs['name']} (version {rs['version']}, {rs['source']})",
            f"  {t['alerts']} alerts = {t['alerts_per_day']:.1f}/day "
            f"({_f(t['alerts_per_market_day'], '{:.2f}')} per market and day); "
            f"{t['messages']} messages after grouping = {t['messages_per_day']:.1f}/day",
            f"  {'type':<14}{'alerts':>7}{'/day':>8}{'/mkt/day':>9}{'msgs':>6}{'folded':>7}"
            f"{'prec':>7}{'recall':>7}{'delay p50':>10}  "
            + "  ".join(f"|ret| {h}m" for h in horizons)
            + "  "
            + "  ".join(f"vol {h}m" for h in horizons),
        ]
        for r in rs["by_type"]:
            fwd = r["forward"]
            lifts = [fwd.get(str(h), {}).get("lift_abs_ret") for h in horizons]
            vols = [fwd.get(str(h), {}).get("lift_vol") for h in horizons]
            delay = r.get("delay_median_s")
            lines.append(
                f"  {r['type']:<14}{r['alerts']:>7}{r['per_day']:>8.2f}"
                f"{_f(r['per_market_day'], '{:.2f}'):>9}{r['messages']:>6}{r['suppressed']:>7}"
                f"{_f(r['precision']):>7}{_f(r['recall']):>7}"
                f"{_f(delay, '{:.0f} s'):>10}  "
                + "  ".join(f"{_f(x, '{:.2f}x'):>8}" for x in lifts)
                + "  "
                + "  ".join(f"{_f(x, '{:.2f}x'):>6}" for x in vols)
            )
        lines.append(
            "  lift: mean move after the alert / the market's usual move over the horizon "
            "(1.00x = uninformative)"
        )
    for d in report.get("diff", []):
        lines += [
            "",
            f"difference: {d['b']} ({d['version_b']}) against {d['a']} ({d['version_a']}); "
            f"messages/day {d['messages_per_day_a']:.1f} -> {d['messages_per_day_b']:.1f}",
            f"  {'type':<14}{'alerts':>15}{'added':>7}{'removed':>8}{'changed':>8}"
            f"{'precision':>16}{'recall':>16}",
        ]
        for r in d["by_type"]:
            lines.append(
                f"  {r['type']:<14}{r['alerts_a']:>7} -> {r['alerts_b']:<5}{r['added']:>7}"
                f"{r['removed']:>8}{r['changed']:>8}"
                f"{_f(r['precision_a']):>8} -> {_f(r['precision_b']):<5}"
                f"{_f(r['recall_a']):>8} -> {_f(r['recall_b']):<5}"
            )
    return "\n".join(lines) + "\n"


def backtests_dir(home: Path) -> Path:
    return Path(home) / "backtests"


def save_report(report: Mapping[str, Any], home: Path) -> Path:
    """Write the report under ``<home>/backtests/`` (atomically); its path."""
    folder = backtests_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    versions = "-".join(rs["version"] for rs in report["rule_sets"])
    path = folder / f"{stamp}-{versions}-{uuid.uuid4().hex[:6]}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(path)
    return path


def load_reports(home: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The newest saved reports first (each with its ``file`` name)."""
    folder = backtests_dir(home)
    if not folder.exists():
        return []
    out = []
    for f in sorted(folder.glob("*.json"), reverse=True)[:limit]:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if data.get("kind") == REPORT_KIND:
            out.append({"file": f.name, **data})
    return out
