"""Alert volume and quality of a rule set: simulated market (with labels) and real data.

    .venv/bin/python -m benchmarks.alert_rates [--rules FILE] [--part sim|real|trades|all]
        [--sim-seeds 42] [--sim-days 6] [--sim-first 2026-11-02] [--period tune|report|all]

1. Simulated market (3 venues x 3 assets, 6 trades/min/market): per type, alerts per market
   and day, precision and recall against the injected events (``quality.score_alerts``) and
   the messages an analyst would get after grouping. The defaults were tuned on seeds
   101-104 (2026-10-05 .. 10-10); the figures reported are seed 42, 2026-11-02 .. 11-07.
2. Real 1-minute bars, ``../shared/data/crypto_prices_svb_2023_1m`` (BTC on Binance.US,
   Coinbase and Kraken in USD/USDT/USDC, plus the stablecoin legs; March 2023, the SVB /
   USDC de-peg): the window rules over the bars (``engine.detect_bars``: volume spike where
   the venue reports trade counts, divergence, pump-and-dump); alerts per market and day per
   type, messages per day after grouping, and the forward-move evidence (``backtest``).
   ``--period tune`` is 03-01 .. 03-07 (what the defaults were tuned on), ``report`` is
   03-08 .. 03-14 (the figures reported, never tuned on).
3. Real trades, ``../shared/data/exchange_trades_samples`` (freqtrade's test data): every
   rule on XRP/ETH (2.5 days; ETH valued at a static $180, its October 2019 price, through the
   rules' ``quotes``) and BCH/EUR on Kraken (one day; EUR at $1.07).

``--part delivery`` compares delivery settings (the spike route's grouping and timings) on the
tune data: messages a day on the real tune week, and *delivered recall*, the share of injected
events itemized in some message (detected is not enough: a repeat folded away into a count line
does not reach the analyst). How the delivery defaults were chosen.

Nothing is copied into the repository; a missing folder skips its part with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from sentinance_assets.lib.detection.backtest import _grid, decided_at, evaluate, replay_layout
from sentinance_assets.lib.detection.delivery import Policy, Route, backtest_policy, simulate
from sentinance_assets.lib.detection.engine import detect_all, detect_bars
from sentinance_assets.lib.detection.quality import score_alerts
from sentinance_assets.lib.detection.rules import QUOTE_USD
from sentinance_assets.lib.detection.rules_file import Rules, load_rules
from sentinance_assets.lib.detection.sinks import alert_records
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.schemas import RAW_TRADES, TS
from sentinance_assets.lib.simulator import MarketSimulator

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SVB = DATA / "crypto_prices_svb_2023_1m"
TRADES = DATA / "exchange_trades_samples"
EXCHANGES = ("binance", "coinbase", "kraken")
SYMBOLS = ("BTC", "ETH", "SOL")
PERIODS = {
    "tune": (datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 8, tzinfo=UTC)),
    "report": (datetime(2023, 3, 8, tzinfo=UTC), datetime(2023, 3, 15, tzinfo=UTC)),
    "all": (datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 15, tzinfo=UTC)),
}
TYPES = ("whale", "volume_spike", "divergence", "pump_and_dump", "wash_trading")


def delivered(
    found: pl.DataFrame, rules: Rules, policy: Policy | list[Policy] | None = None
) -> list[dict]:
    """The messages of ``rules``' delivery (or of ``policy``: one channel, or several whose
    messages add up), each alert arriving when the engine decides it."""
    if found.height == 0:
        return []
    when = [t.timestamp() for t in decided_at(found, rules.detector).to_list()]
    arrivals = list(zip(when, alert_records(found), strict=True))
    chosen = policy or backtest_policy(rules.delivery)
    return [
        m for p in (chosen if isinstance(chosen, list) else [chosen]) for m in simulate(p, arrivals)
    ]


def delivered_ids(
    found: pl.DataFrame, rules: Rules, policy: Policy | list[Policy] | None = None
) -> set[str]:
    """The alerts itemized in some message: what reaches the analyst (a repeat folded away
    into a count line does not)."""
    return {i for m in delivered(found, rules, policy) for i in m["alert_ids"]}


def _itemized(found: pl.DataFrame, ids: set[str]) -> pl.DataFrame:
    return found.filter(pl.col("alert_id").is_in(list(ids)))


# ------------------------------------------------------------------------------ simulator
def simulated(rules: Rules, seeds: list[int], first: date, days: int) -> dict:
    """Per type over every seed and day: alerts, per market and day, precision, recall; and
    the messages after grouping per day (the rules' delivery policy)."""
    scores = []
    delivered = []
    alerts_n = {t: 0 for t in TYPES}
    messages = 0
    markets = len(EXCHANGES) * len(SYMBOLS)
    for seed in seeds:
        sim = MarketSimulator(markets_for(EXCHANGES, SYMBOLS), seed=seed, trade_rate=6.0)
        for i in range(days):
            d = sim.day(first + timedelta(days=i))
            found = detect_all(d.trades, rules.detector)
            scores.append(score_alerts(found, d.events, d.trades))
            for t, n in found.group_by("type").len().iter_rows():
                alerts_n[t] += n
            when = [t.timestamp() for t in decided_at(found, rules.detector).to_list()]
            arrivals = list(zip(when, alert_records(found), strict=True))
            msgs = simulate(backtest_policy(rules.delivery), arrivals)
            messages += len(msgs)
            ids = {i for m in msgs for i in m["alert_ids"]}
            delivered.append(score_alerts(_itemized(found, ids), d.events, d.trades))
    cols = ["events", "unobservable", "alerts", "explained", "tp_alerts", "matched_events"]
    total = pl.concat(scores).group_by("type", maintain_order=True).agg(pl.col(cols).sum())
    got = dict(
        pl.concat(delivered).group_by("type").agg(pl.col("matched_events").sum()).iter_rows()
    )
    n_days = len(seeds) * days
    rows = {}
    for r in total.iter_rows(named=True):
        counted = r["alerts"] - r["explained"]
        observable = r["events"] - r["unobservable"]
        rows[r["type"]] = {
            "alerts": r["alerts"],
            "per_market_day": r["alerts"] / n_days / markets,
            "precision": r["tp_alerts"] / counted if counted else None,
            "recall": r["matched_events"] / observable if observable else None,
            "delivered_recall": got.get(r["type"], 0) / observable if observable else None,
            "events": r["events"],
            "explained": r["explained"],
        }
    return {
        "days": n_days,
        "markets": markets,
        "by_type": rows,
        "alerts_per_market_day": sum(alerts_n.values()) / n_days / markets,
        "messages_per_day": messages / n_days,
    }


# ------------------------------------------------------------------------------ real bars
def _bars(path: Path, exchange: str, symbol: str, counts: bool) -> pl.DataFrame:
    if path.suffix == ".csv":
        df = pl.read_csv(path).with_columns(
            pl.col("open_time").str.to_datetime(time_zone="UTC").alias("timestamp")
        )
    else:
        df = pl.read_parquet(path)
    quote = symbol.split("/")[1]
    typical = (
        pl.col("quote_volume").cast(pl.Float64) / pl.col("volume").cast(pl.Float64)
        if "quote_volume" in df.columns
        else (pl.col("high") + pl.col("low") + pl.col("close")).cast(pl.Float64) / 3
    )
    out = df.select(
        pl.lit(exchange).alias("exchange"),
        pl.lit(symbol).alias("symbol"),
        pl.col("timestamp").cast(TS).alias("bucket"),
        pl.col("volume").cast(pl.Float64).alias("amount"),
        typical.alias("vwap"),
        pl.col("close").cast(pl.Float64).alias("close"),
        (pl.col("trades").cast(pl.UInt32) if counts else pl.lit(None, pl.UInt32)).alias("n"),
    ).filter(pl.col("amount") > 0)
    return out.with_columns(
        (pl.col("amount") * pl.col("vwap") * QUOTE_USD.get(quote, float("nan"))).alias("usd")
    )


SVB_FILES = (
    ("binanceus_coinbase_kraken_parquet/binanceus_btcusdt.parquet", "binanceus", "BTC/USDT", 1),
    ("binanceus_coinbase_kraken_parquet/binanceus_btcusdc.parquet", "binanceus", "BTC/USDC", 1),
    ("binanceus_coinbase_kraken_parquet/binanceus_usdcusdt.parquet", "binanceus", "USDC/USDT", 1),
    ("binanceus_csv/BTCUSD_1m_20230301_20230321.csv", "binanceus", "BTC/USD", 0),
    ("binanceus_coinbase_kraken_parquet/coinbase_btcusd.parquet", "coinbase", "BTC/USD", 0),
    ("binanceus_coinbase_kraken_parquet/coinbase_btcusdt.parquet", "coinbase", "BTC/USDT", 0),
    ("binanceus_coinbase_kraken_parquet/coinbase_usdtusd.parquet", "coinbase", "USDT/USD", 0),
    ("binanceus_coinbase_kraken_parquet/kraken_btcusd.parquet", "kraken", "BTC/USD", 1),
    ("binanceus_coinbase_kraken_parquet/kraken_btcusdt.parquet", "kraken", "BTC/USDT", 1),
    ("binanceus_coinbase_kraken_parquet/kraken_btcusdc.parquet", "kraken", "BTC/USDC", 1),
    ("binanceus_coinbase_kraken_parquet/kraken_usdcusd.parquet", "kraken", "USDC/USD", 1),
    ("binanceus_coinbase_kraken_parquet/kraken_usdtusd.parquet", "kraken", "USDT/USD", 1),
)


def svb_bars(root: Path = SVB) -> pl.DataFrame:
    """Every market of the SVB folder as bars (exchange, symbol, bucket, usd, amount, n,
    close); ``n`` null where the venue does not report trade counts."""
    frames = [_bars(root / rel, ex, sym, bool(c)) for rel, ex, sym, c in SVB_FILES]
    return pl.concat(frames).sort("exchange", "symbol", "bucket")


def bar_prices(bars: pl.DataFrame) -> pl.DataFrame:
    return _grid(
        bars.select("exchange", "symbol", pl.col("bucket").alias("minute"), "close").rename(
            {"close": "price"}
        )
    )


def real_bars(rules: Rules, period: str) -> dict:
    lo, hi = PERIODS[period]
    bars = svb_bars()
    # an hour of history before the period so the baselines exist from its start
    window = bars.filter((pl.col("bucket") >= lo - timedelta(hours=2)) & (pl.col("bucket") < hi))
    found = detect_bars(window, rules.detector).filter(
        (pl.col("event_time") >= lo) & (pl.col("event_time") < hi)
    )
    in_period = window.filter(pl.col("bucket") >= lo)
    days = (hi - lo).total_seconds() / 86_400
    markets = in_period.select("exchange", "symbol").unique().height
    counted = in_period.filter(pl.col("n").is_not_null()).select("exchange", "symbol").unique()
    prices = bar_prices(window)
    ev = evaluate(found, rules, days=days, markets=markets, prices=prices)
    per_market = (
        found.group_by("type", "exchange", "symbol").len().sort("type", "exchange", "symbol")
    )
    return {
        "period": period,
        "days": days,
        "markets": markets,
        "markets_with_counts": counted.height,
        "report": ev,
        "per_market": per_market.to_dicts(),
        "daily": found.group_by(pl.col("event_time").dt.date().alias("day"))
        .len()
        .sort("day")
        .with_columns(pl.col("day").cast(pl.String))
        .to_dicts(),
    }


def _add_burst(
    bars: pl.DataFrame, ex: str, sym: str, start: datetime, minutes: int, factor: float
) -> pl.DataFrame:
    """The simulator's volume spike on a real market: the trade rate x ``factor`` for
    ``minutes``, i.e. ``factor - 1`` times the market's typical minute trade count (the median
    of the hour before, at least one trade) added to each minute, each added trade of the
    hour's mean trade size (USD volume / trades), at its price. (Sizing the added volume by the
    median minute's USD instead, as before, added almost nothing on sparse markets whose median
    minute has no trade: trades without volume, not a spike.)"""
    mine = (pl.col("exchange") == ex) & (pl.col("symbol") == sym)
    hour = bars.filter(
        mine & pl.col("bucket").is_between(start - timedelta(hours=1), start, "left")
    )
    if hour.height == 0:
        return bars
    # minutes without trades count as zero in the typical minute
    n_med = float(
        np.median(np.concatenate([hour["n"].fill_null(0).to_numpy(), np.zeros(60 - hour.height)]))
    )
    trade_usd = float(hour["usd"].sum()) / max(float(hour["n"].fill_null(0).sum()), 1.0)
    n_add = max(n_med, 1.0) * (factor - 1)
    usd_add = n_add * trade_usd
    last = hour.sort("bucket").row(-1, named=True)
    price = last["usd"] / last["amount"]
    rows = []
    for k in range(minutes):
        t = start + timedelta(minutes=k)
        cur = bars.filter(mine & (pl.col("bucket") == t))
        base = cur.row(0, named=True) if cur.height else {**last, "usd": 0.0, "amount": 0.0, "n": 0}
        rows.append(
            {
                **base,
                "bucket": t,
                "usd": base["usd"] + usd_add,
                "amount": base["amount"] + usd_add / price,
                "n": int(round((base["n"] or 0) + n_add)),
            }
        )
    added = pl.DataFrame(rows, schema=bars.schema)
    keep = bars.filter(~(mine & pl.col("bucket").is_in(added["bucket"].implode())))
    return pl.concat([keep, added]).sort("exchange", "symbol", "bucket")


def inject(bars: pl.DataFrame, seed: int, lo: datetime, hi: datetime) -> tuple:
    """Simulator-style events injected into real bars: per market with trade counts one
    volume spike a day (the trade rate x8-12 for 1-2 minutes: :func:`_add_burst`), and per
    BTC market one divergence every two days (price +-0.8-1.5 % for 2-5 minutes). Labels in
    the simulator's layout."""
    rng = np.random.default_rng(seed)
    events = []
    out = bars
    days = int((hi - lo).total_seconds() // 86_400)
    markets = bars.select("exchange", "symbol", pl.col("n").is_not_null().alias("c")).unique()
    markets = (
        markets.group_by("exchange", "symbol").agg(pl.col("c").any()).sort("exchange", "symbol")
    )
    for d in range(days):
        day0 = lo + timedelta(days=d)
        for idx, (ex, sym, counts) in enumerate(markets.iter_rows()):
            if counts:
                m = int(rng.integers(60, 1380))
                span = int(rng.integers(1, 3))
                f = float(rng.uniform(8, 12))
                s, e = day0 + timedelta(minutes=m), day0 + timedelta(minutes=m + span)
                out = _add_burst(out, ex, sym, s, span, f)
                events.append(("volume_spike", ex, sym, s, e - timedelta(milliseconds=1)))
            if sym.startswith("BTC/") and (d + idx) % 2 == 0:
                m = int(rng.integers(60, 1380))
                span = int(rng.integers(2, 6))
                size = float(rng.uniform(0.008, 0.015)) * (1 if rng.random() < 0.5 else -1)
                s, e = day0 + timedelta(minutes=m), day0 + timedelta(minutes=m + span)
                hit = (
                    (pl.col("exchange") == ex)
                    & (pl.col("symbol") == sym)
                    & pl.col("bucket").is_between(s, e, closed="left")
                )
                out = out.with_columns(
                    pl.when(hit)
                    .then(pl.col("usd") * (1 + size))
                    .otherwise(pl.col("usd"))
                    .alias("usd"),
                    pl.when(hit)
                    .then(pl.col("close") * (1 + size))
                    .otherwise(pl.col("close"))
                    .alias("close"),
                )
                events.append(("divergence", ex, sym, s, e - timedelta(milliseconds=1)))
    labels = pl.DataFrame(
        events, schema=["type", "exchange", "symbol", "start_ts", "end_ts"], orient="row"
    ).with_columns(
        pl.col("start_ts", "end_ts").cast(TS),
        pl.format("inj-{}", pl.int_range(pl.len())).alias("event_id"),
    )
    return out, labels


INJECT_SEEDS = tuple(range(7, 13))


def injected_recall(
    rules: Rules,
    period: str,
    seeds: tuple[int, ...] = INJECT_SEEDS,
    policies: dict[str, Policy | list[Policy]] | None = None,
) -> dict:
    """Recall on simulator-style events injected into the real bars of ``period``, pooled over
    ``seeds`` (one week holds ~56 spikes per draw: one draw alone moves the recall by several
    points, so six draws are pooled); and *delivered recall*, the events with a matching alert
    itemized in a message of the rules' delivery (:func:`delivered_ids`; the injected alerts
    arrive among the week's real ones). With ``policies`` (name -> delivery policy), the
    delivered recall of each under ``delivered_<name>`` instead."""
    lo, hi = PERIODS[period]
    bars = svb_bars().filter(
        (pl.col("bucket") >= lo - timedelta(hours=2)) & (pl.col("bucket") < hi)
    )
    total: dict[str, dict[str, int]] = {}
    for seed in seeds:
        injected, labels = inject(bars, seed, lo, hi)
        found = detect_bars(injected, rules.detector).filter(
            (pl.col("event_time") >= lo) & (pl.col("event_time") < hi)
        )
        # an event in a minute without a bar (no trade) changed nothing: unobservable
        seen = injected.select("exchange", "symbol", pl.col("bucket").alias("ts"))
        for r in score_alerts(found, labels, seen).iter_rows(named=True):
            if not r["events"]:
                continue
            t = total.setdefault(r["type"], {"events": 0, "unobservable": 0, "matched": 0})
            t["events"] += r["events"]
            t["unobservable"] += r["unobservable"]
            t["matched"] += r["matched_events"]
        for name, pol in (policies or {"": None}).items():  # type: ignore[dict-item]
            ids = delivered_ids(found, rules, pol)
            key = f"delivered_{name}" if name else "delivered"
            for r in score_alerts(_itemized(found, ids), labels, seen).iter_rows(named=True):
                if r["type"] in total:
                    t = total[r["type"]]
                    t[key] = t.get(key, 0) + r["matched_events"]
    for t in total.values():
        observable = t["events"] - t["unobservable"]
        for k in [k for k in t if k.startswith("delivered")]:
            t[k + "_recall"] = t[k] / observable if observable else None  # type: ignore[assignment]
        t["recall"] = t["matched"] / observable if observable else None  # type: ignore[assignment]
    return total


# ------------------------------------------------------------------------------ real trades
def freqtrade_trades(root: Path = TRADES) -> dict[str, pl.DataFrame]:
    out = {}
    xrp = json.loads((root / "freqtrade_XRP_ETH-trades.json").read_text())
    df = pl.DataFrame(
        [(r[0], r[1], r[3], r[4], r[5]) for r in xrp],
        schema=["ms", "trade_id", "side", "price", "amount"],
        orient="row",
    )
    out["XRP/ETH (2019-10-11..13)"] = _trades(df, "binance", "XRP/ETH")
    bch = pl.read_csv(
        root / "freqtrade_kraken_trades_csv_BCHEUR.csv",
        has_header=False,
        new_columns=["s", "price", "amount"],
    ).with_columns(
        (pl.col("s") * 1000).alias("ms"),
        pl.format("k{}", pl.int_range(pl.len())).alias("trade_id"),
        pl.lit("buy").alias("side"),
    )
    out["BCH/EUR kraken (2023-01-01)"] = _trades(bch, "kraken", "BCH/EUR")
    return out


def _trades(df: pl.DataFrame, exchange: str, symbol: str) -> pl.DataFrame:
    base, quote = symbol.split("/")
    ts = pl.col("ms").cast(pl.Int64).cast(pl.Datetime("ms", "UTC"))
    return RAW_TRADES.conform(
        df.with_columns(
            pl.lit(exchange).alias("exchange"),
            pl.lit(symbol).alias("symbol"),
            pl.lit(base).alias("base"),
            pl.lit(quote).alias("quote"),
            pl.col("trade_id").cast(pl.String),
            ts.alias("ts"),
            pl.col("price").cast(pl.Float64),
            pl.col("amount").cast(pl.Float64),
            (pl.col("price") * pl.col("amount")).cast(pl.Float64).alias("cost"),
            pl.lit("freqtrade").alias("source"),
            ts.alias("ingested_at"),
        )
    )


def real_trades(rules_text: str | None) -> dict:
    # the samples' quotes are ETH and EUR: static rates, added to the rules under test
    text = (rules_text or "") + "\n[quotes]\nETH = 180.0\nEUR = 1.07\n"
    rules = load_rules(text=text, name="rules + quotes")
    out = {}
    for name, trades in freqtrade_trades().items():
        found = detect_all(trades, rules.detector)
        days = max((trades["ts"].max() - trades["ts"].min()).total_seconds() / 86_400, 1 / 24)
        by = {t: n for t, n in found.group_by("type").len().iter_rows()}
        out[name] = {
            "trades": trades.height,
            "days": round(days, 2),
            "alerts": found.height,
            "per_day": {t: round(by.get(t, 0) / days, 2) for t in TYPES},
            "max_trade_usd": round(
                float((trades["price"] * trades["amount"]).max())
                * (180.0 if "ETH" in name else 1.07),
                0,
            ),
        }
    return out


# ------------------------------------------------------------------------------ tuning
TUNE_SEEDS = (101, 102, 103, 104)
TUNE_FIRST = date(2026, 10, 5)


SPIKE_GRID = {
    "cooldown": (1, 2, 5, 15, 60),
    "min_count_ratio": (5.0, 6.0, 7.0),
    "count_z": (2.0, 3.0),
    "z": (1.5, 2.5),
    "min_ratio": (3.0, 5.0),
}


def _spike_score(found: pl.DataFrame, events: pl.DataFrame, seen: pl.DataFrame) -> dict:
    return (
        score_alerts(found, events, seen)
        .filter(pl.col("type") == "volume_spike")
        .select(
            pl.col("events", "unobservable", "alerts", "explained", "tp_alerts", "matched_events")
        )
        .row(0, named=True)
    )


def tune_grid(grid: dict | None = None, seed: int = 7) -> list[dict]:
    """Every volume-spike setting of ``grid`` (the product of its values) on the tune data
    only: recall and precision on the simulator's tune seeds (6 days each), recall on events
    injected into the real tune week (:func:`inject`, ``seed``), and the spike rate on the real
    tune week without injection (markets with trade counts). How the defaults were chosen."""
    import itertools

    from sentinance_assets.lib.detection.engine import StreamingDetector, engine_bars
    from sentinance_assets.lib.detection.rules import MARKET, DetectorConfig, volume_spikes

    grid = grid or SPIKE_GRID
    now, epoch = datetime(2030, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)
    sims = []
    for s in TUNE_SEEDS:
        sim = MarketSimulator(markets_for(EXCHANGES, SYMBOLS), seed=s, trade_rate=6.0)
        for i in range(6):
            d = sim.day(TUNE_FIRST + timedelta(days=i))
            det = StreamingDetector(DetectorConfig())
            det.push(d.trades, now, advance=False)
            det.flush(now)  # keeps the bars: every window rule can be re-run on them
            sims.append((det.bars, det.starts, d.events, d.trades))
    lo, hi = PERIODS["tune"]
    real = svb_bars().filter(
        pl.col("n").is_not_null()
        & (pl.col("bucket") >= lo - timedelta(hours=2))
        & (pl.col("bucket") < hi)
    )
    bars, starts = engine_bars(real)
    injected, labels = inject(real, seed, lo, hi)
    ibars, istarts = engine_bars(injected)
    iseen = injected.select("exchange", "symbol", pl.col("bucket").alias("ts"))
    labels = labels.filter(pl.col("type") == "volume_spike")
    n_markets = bars.select(MARKET).unique().height
    days = (hi - lo).total_seconds() / 86_400
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        setting = dict(zip(keys, values, strict=True))
        cfg = DetectorConfig(**{f"spike_{k}": v for k, v in setting.items()})
        total: dict[str, int] = {}
        for b, st, events, trades in sims:
            end = b["bucket"].max() + timedelta(minutes=2)
            sc = _spike_score(volume_spikes(b, st, cfg, epoch, end, now), events, trades)
            total = {k: total.get(k, 0) + v for k, v in sc.items()}
        end = bars["bucket"].max() + timedelta(minutes=2)
        hits = volume_spikes(bars, starts, cfg, epoch, end, now).filter(pl.col("event_time") >= lo)
        ihits = volume_spikes(ibars, istarts, cfg, epoch, end, now).filter(
            pl.col("event_time") >= lo
        )
        inj = _spike_score(ihits, labels, iseen)
        out.append(
            {
                **setting,
                "recall": total["matched_events"] / (total["events"] - total["unobservable"]),
                "precision": total["tp_alerts"] / max(total["alerts"] - total["explained"], 1),
                "injected_recall": inj["matched_events"] / (inj["events"] - inj["unobservable"]),
                "real_per_market_day": hits.height / n_markets / days,
            }
        )
    return out


def delivery_variants(rules: Rules) -> dict[str, Policy | list[Policy]]:
    """Delivery settings compared on the tune data (``--part delivery``): the rules' detector
    with each policy. The volume spike's own route (``[delivery.by_type.volume_spike]``) is
    varied; the other types keep Alertmanager's timings per market."""
    base = backtest_policy(rules.delivery)
    former = dataclasses.replace(base, type_routes={})  # spikes grouped with the market's alerts
    gen = former.general
    out: dict[str, Policy | list[Policy]] = {
        "former: per market, repeat 4 h": former,
        "former, repeat 12 h": dataclasses.replace(former, repeat_interval=12 * 3600.0),
        "former, group_by asset": dataclasses.replace(former, group_by="asset"),
        "former, critical spikes only": [
            dataclasses.replace(former, types=former.types - {"volume_spike"}),
            dataclasses.replace(
                former, types=frozenset({"volume_spike"}), severities=frozenset({"critical"})
            ),
        ],
    }
    for by in ("market", "asset"):
        for repeat in (12, 24):
            r = Route(by, gen.group_wait, gen.group_interval, repeat * 3600.0)
            out[f"spikes by {by}, repeat {repeat} h"] = dataclasses.replace(
                former, type_routes={"volume_spike": r}
            )
    for by in ("market", "asset", "all"):
        for hours in (1, 2, 3, 4, 6, 24):
            if by != "all" and hours > 4:
                continue
            r = Route(by, gen.group_wait, hours * 3600.0, 0.0)
            out[f"spikes by {by}, every {hours} h, repeat 0"] = dataclasses.replace(
                former, type_routes={"volume_spike": r}
            )
    return out


def delivery_grid(rules: Rules, period: str = "tune") -> list[dict]:
    """Per variant of :func:`delivery_variants`: messages a day on the real bars of ``period``
    (12 markets, and scaled to ten), and delivered recall of the injected events (six draws)."""
    lo, hi = PERIODS[period]
    bars = svb_bars().filter(
        (pl.col("bucket") >= lo - timedelta(hours=2)) & (pl.col("bucket") < hi)
    )
    found = detect_bars(bars, rules.detector).filter(
        (pl.col("event_time") >= lo) & (pl.col("event_time") < hi)
    )
    markets = bars.filter(pl.col("bucket") >= lo).select("exchange", "symbol").unique().height
    days = (hi - lo).total_seconds() / 86_400
    variants = delivery_variants(rules)
    inj = injected_recall(rules, period, policies=variants)
    rows = []
    for name, pol in variants.items():
        per_day = len(delivered(found, rules, pol)) / days
        row = {"variant": name, "messages_per_day": per_day, "ten": per_day * 10 / markets}
        for t, v in inj.items():
            row[t] = v.get(f"delivered_{name}_recall")
            row[f"{t}_detected"] = v["recall"]
        rows.append(row)
    return rows


def export_sim(folder: Path, seed: int, first: date, days: int) -> None:
    sim = MarketSimulator(markets_for(EXCHANGES, SYMBOLS), seed=seed, trade_rate=6.0)
    out = [sim.day(first + timedelta(days=i)) for i in range(days)]
    folder.mkdir(parents=True, exist_ok=True)
    replay_layout(pl.concat([d.trades for d in out])).write_parquet(folder / "trades.parquet")
    pl.concat([d.events for d in out]).select(
        "event_id", "type", "exchange", "symbol", "start_ts", "end_ts"
    ).write_csv(folder / "events.csv")
    print(f"{folder}/trades.parquet and {folder}/events.csv: seed {seed}, {days} days from {first}")


# ------------------------------------------------------------------------------ main
def _fmt(x, f="{:.3f}") -> str:
    return "-" if x is None else f.format(x)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rules", help="a rules file (default: the built-in rules)")
    ap.add_argument(
        "--part",
        default="all",
        choices=("sim", "real", "inject", "trades", "tune", "delivery", "all"),
    )
    ap.add_argument("--sim-seeds", default="42")
    ap.add_argument("--sim-days", type=int, default=6)
    ap.add_argument("--sim-first", default="2026-11-02")
    ap.add_argument("--period", default="report", choices=tuple(PERIODS))
    ap.add_argument("--json", help="also write the figures as JSON here")
    ap.add_argument(
        "--export-sim",
        metavar="DIR",
        help="write the simulated days (--sim-seeds, --sim-days, --sim-first) as "
        "DIR/trades.parquet "
        "(replay layout) and DIR/events.csv (labels) for `sentinance backtest`, and stop",
    )
    args = ap.parse_args()
    if args.export_sim:
        export_sim(
            Path(args.export_sim),
            int(args.sim_seeds.split(",")[0]),
            date.fromisoformat(args.sim_first),
            args.sim_days,
        )
        return
    rules_text = Path(args.rules).read_text() if args.rules else None
    rules = load_rules(args.rules) if args.rules else load_rules()
    print(f"rules: {rules.source} (version {rules.version})")
    result: dict = {"rules": rules.source, "version": rules.version}
    t0 = time.time()
    if args.part == "tune":
        print(
            f"== tuning the volume-spike rule: simulator seeds {list(TUNE_SEEDS)} x 6 days "
            f"from {TUNE_FIRST}; real tune week (markets with trade counts), with and without "
            "injected events"
        )
        rows = tune_grid()
        keys = list(SPIKE_GRID)
        print(
            "".join(f"{k:>16}" for k in keys)
            + f"{'sim recall':>11}{'precision':>10}{'inj recall':>11}{'real/mkt/day':>13}"
        )
        for g in rows:
            print(
                "".join(f"{g[k]:>16g}" for k in keys)
                + f"{g['recall']:>11.3f}{g['precision']:>10.3f}{g['injected_recall']:>11.3f}"
                f"{g['real_per_market_day']:>13.2f}"
            )
        result["tune"] = rows
    if args.part == "delivery":
        print(
            f"== delivery settings on the {args.period} week: messages a day (12 real markets, "
            "and for ten), delivered recall of the injected events (6 draws)"
        )
        grid = delivery_grid(rules, args.period)
        print(f"{'variant':<42}{'msgs/day':>9}{'ten':>6}{'spike':>7}{'diverg':>7}")
        for g in grid:
            print(
                f"{g['variant']:<42}{g['messages_per_day']:>9.1f}{g['ten']:>6.1f}"
                f"{_fmt(g.get('volume_spike')):>7}{_fmt(g.get('divergence')):>7}"
            )
        print(
            "detected recall: "
            + ", ".join(
                f"{t} {_fmt(grid[0].get(t + '_detected'))}" for t in ("volume_spike", "divergence")
            )
        )
        result["delivery"] = grid
    if args.part in ("sim", "all"):
        seeds = [int(s) for s in args.sim_seeds.split(",")]
        first = date.fromisoformat(args.sim_first)
        s = simulated(rules, seeds, first, args.sim_days)
        result["simulated"] = s
        print(
            f"\n== simulated market: seeds {seeds}, {args.sim_days} days from {first}, "
            f"{s['markets']} markets"
        )
        print(
            f"{'type':<15}{'events':>7}{'alerts':>7}{'/mkt/day':>9}{'precision':>10}{'recall':>8}"
            f"{'delivered':>10}"
        )
        for t, r in s["by_type"].items():
            print(
                f"{t:<15}{r['events']:>7}{r['alerts']:>7}{r['per_market_day']:>9.2f}"
                f"{_fmt(r['precision']):>10}{_fmt(r['recall']):>8}"
                f"{_fmt(r['delivered_recall']):>10}"
            )
        print(
            f"all: {s['alerts_per_market_day']:.2f} alerts per market and day; "
            f"{s['messages_per_day']:.1f} messages/day for {s['markets']} markets after grouping"
        )
    if args.part in ("real", "all"):
        if not SVB.exists():
            print(f"\n(real bars skipped: {SVB} is absent)")
        else:
            r = real_bars(rules, args.period)
            result["real_bars"] = r
            ev = r["report"]
            lo, hi = PERIODS[args.period]
            print(
                f"\n== real 1-minute bars, {args.period} period {lo:%Y-%m-%d} .. "
                f"{hi - timedelta(days=1):%Y-%m-%d}: {r['markets']} markets "
                f"({r['markets_with_counts']} with trade counts), {r['days']:.0f} days"
            )
            print(
                f"{'type':<15}{'alerts':>7}{'/mkt/day':>9}{'msgs':>6}{'folded':>7}"
                + "".join(f"{'|ret| ' + h + 'm':>11}{'p':>8}" for h in ("5", "15", "60"))
            )
            for row in ev["by_type"]:
                if row["type"] in ("whale", "wash_trading"):
                    continue
                per = (
                    row["alerts"]
                    / r["days"]
                    / (r["markets_with_counts"] if row["type"] != "divergence" else r["markets"])
                )
                cells = ""
                for h in ("5", "15", "60"):
                    f = row["forward"].get(h, {})
                    lift = _fmt(f.get("lift_abs_ret"), "{:.2f}x")
                    cells += f"{lift:>11}{_fmt(f.get('p_value'), '{:.0e}'):>8}"
                print(
                    f"{row['type']:<15}{row['alerts']:>7}{per:>9.2f}{row['messages']:>6}"
                    f"{row['suppressed']:>7}" + cells
                )
            t = ev["totals"]
            print(
                f"all: {t['alerts_per_market_day']:.2f} alerts per market and day; "
                f"{t['messages_per_day']:.1f} messages/day for {r['markets']} markets "
                f"({t['messages_per_day'] / r['markets'] * 10:.1f} for ten)"
            )
            print("alerts per day: " + ", ".join(f"{d['day'][5:]} {d['len']}" for d in r["daily"]))
            print(
                "messages per day: "
                + ", ".join(f"{k[5:]} {v}" for k, v in t["messages_by_day"].items())
            )
    if args.part in ("inject", "all") and SVB.exists():
        inj = injected_recall(rules, args.period)
        result["injected"] = inj
        print(
            f"\n== simulator-style events injected into the real bars ({len(INJECT_SEEDS)} "
            "draws pooled): "
            + ", ".join(
                f"{t} recall {_fmt(v['recall'])} ({v['matched']} of {v['events']}, "
                f"{v['unobservable']} unobservable), delivered {_fmt(v['delivered_recall'])} "
                f"({v['delivered']} itemized in a message)"
                for t, v in inj.items()
            )
        )
    if args.part in ("trades", "all"):
        if not TRADES.exists():
            print(f"\n(real trades skipped: {TRADES} is absent)")
        else:
            tr = real_trades(rules_text)
            result["real_trades"] = tr
            print("\n== real trades (freqtrade samples)")
            for name, v in tr.items():
                per = ", ".join(f"{t} {n}" for t, n in v["per_day"].items() if n)
                print(
                    f"{name}: {v['trades']:,} trades over {v['days']} days, largest "
                    f"${v['max_trade_usd']:,.0f}; alerts per day: {per or 'none'}"
                )
    print(f"\n({time.time() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
