from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from sentinance_assets.lib.detection import rules
from sentinance_assets.lib.detection.engine import StreamingDetector, detect_all, sort_alerts
from sentinance_assets.lib.detection.quality import score_alerts
from sentinance_assets.lib.detection.rules import DetectorConfig, _maybe_busy, wash_runs
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.schemas import ALERTS, RAW_MARKET_EVENTS
from sentinance_assets.lib.simulator import MarketSimulator
from tests.lib.detection.trades import trades_of

NOW = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiny_day():
    sim = MarketSimulator(
        markets_for(("binance", "coinbase"), ("BTC", "ETH")), seed=7, trade_rate=1.5
    )
    return sim.day(date(2026, 11, 10))


@pytest.fixture(scope="module")
def busy_days():
    sim = MarketSimulator(
        markets_for(("binance", "coinbase", "kraken"), ("BTC", "ETH", "SOL")),
        seed=11,
        trade_rate=6.0,
    )
    days = [sim.day(date(2026, 11, d)) for d in (10, 11)]
    return days


def test_quality_targets_on_the_simulated_market(busy_days):
    alerts = pl.concat([detect_all(d.trades, detected_at=NOW) for d in busy_days])
    events = pl.concat([d.events for d in busy_days])
    score = {r["type"]: r for r in score_alerts(alerts, events).iter_rows(named=True)}
    assert score["whale"]["recall"] == 1.0 and score["whale"]["precision"] == 1.0
    for kind in ("volume_spike", "divergence"):
        assert score[kind]["recall"] >= 0.9, score[kind]
        assert score[kind]["precision"] >= 0.9, score[kind]
    assert score["pump_and_dump"]["recall"] >= 0.8, score["pump_and_dump"]
    assert score["wash_trading"]["alerts"] == 0  # the simulator injects no wash trading


def test_ids_are_deterministic_and_unique(tiny_day):
    a = detect_all(tiny_day.trades, DetectorConfig(), NOW)
    b = detect_all(
        tiny_day.trades.sample(fraction=1.0, shuffle=True, seed=1), DetectorConfig(), NOW
    )
    assert a["alert_id"].to_list() == b["alert_id"].to_list()
    assert a["alert_id"].n_unique() == a.height
    assert set(a["type"]) >= {"whale", "volume_spike", "divergence"}
    whales = a.filter(pl.col("type") == "whale")
    truth = tiny_day.events.filter(pl.col("type") == "whale")
    assert sorted(whales["event_time"].to_list()) == sorted(truth["start_ts"].to_list())


def _stream(trades: pl.DataFrame, cuts: list[int], via_checkpoint: bool = False) -> pl.DataFrame:
    det = StreamingDetector()
    out = []
    trades = trades.sort("ts", "exchange", "symbol", "trade_id")
    bounds = [0, *cuts, trades.height]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        out.append(det.push(trades.slice(lo, hi - lo), NOW))
        if via_checkpoint:
            det = StreamingDetector.loads(det.dumps())
    out.append(det.flush(NOW))
    return sort_alerts(pl.concat(out))


def test_one_batch_equals_many_micro_batches(tiny_day):
    batch = detect_all(tiny_day.trades, detected_at=NOW)
    n = tiny_day.trades.height
    every_15_min = (
        tiny_day.trades.sort("ts")
        .with_row_index()
        .group_by(pl.col("ts").dt.truncate("15m"))
        .agg(pl.col("index").min())["index"]
        .sort()
        .to_list()[1:]
    )
    streamed = _stream(tiny_day.trades, every_15_min)
    assert streamed.sort("alert_id").equals(batch.sort("alert_id"))
    # uneven cuts, including cuts inside a second, and a checkpoint round trip between batches
    import random

    rng = random.Random(3)
    cuts = sorted(rng.sample(range(1, n), 40))
    resumed = _stream(tiny_day.trades, cuts, via_checkpoint=True)
    assert resumed.sort("alert_id").equals(batch.sort("alert_id"))


_trades = trades_of


T0 = int(datetime(2026, 11, 10, 12, tzinfo=UTC).timestamp() * 1000)


def test_wash_trading_rule():
    run = [
        ("binance", "BTC/USDT", f"w{i}", T0 + i * 3000, 60_000.0, 0.25, "buy" if i % 2 else "sell")
        for i in range(8)
    ]
    same_side = [
        ("binance", "ETH/USDT", f"s{i}", T0 + i * 3000, 3_000.0, 1.5, "buy") for i in range(8)
    ]
    too_slow = [
        ("kraken", "BTC/USD", f"k{i}", T0 + i * 30_000, 60_000.0, 0.25, "buy" if i % 2 else "sell")
        for i in range(8)
    ]
    trades = _trades(run + same_side + too_slow)
    alerts = detect_all(trades, detected_at=NOW).filter(pl.col("type") == "wash_trading")
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert (row["exchange"], row["symbol"], row["value"]) == ("binance", "BTC/USDT", 8.0)
    assert row["event_time"] == datetime.fromtimestamp(T0 / 1000, UTC)
    # the same run split across micro-batches (and minutes) is found once, identically
    det = StreamingDetector()
    parts = [det.push(trades.filter(pl.col("trade_id") == f"w{i}"), NOW) for i in range(8)]
    later = _trades([("binance", "BTC/USDT", "z", T0 + 600_000, 60_000.0, 0.1, "buy")])
    parts += [det.push(later, NOW), det.flush(NOW)]
    streamed = pl.concat(parts).filter(pl.col("type") == "wash_trading")
    assert streamed.equals(alerts)


def test_whale_threshold_per_symbol_and_usd_conversion():
    trades = _trades(
        [
            ("binance", "BTC/USDT", "a", T0, 60_000.0, 2.0, "buy"),  # $120k
            ("binance", "ETH/USDT", "b", T0 + 1, 3_000.0, 30.0, "sell"),  # $90k
            ("binance", "ETH/EUR", "c", T0 + 2, 3_000.0, 100.0, "sell"),  # no USD rate: skipped
        ]
    )
    base = detect_all(trades, DetectorConfig(), NOW).filter(pl.col("type") == "whale")
    assert base["symbol"].to_list() == ["BTC/USDT"]
    cfg = DetectorConfig(whale_usd_by_symbol={"BTC/USDT": 500_000.0, "ETH/USDT": 50_000.0})
    per = detect_all(trades, cfg, NOW).filter(pl.col("type") == "whale")
    assert per["symbol"].to_list() == ["ETH/USDT"]


def _events(rows: list[tuple]) -> pl.DataFrame:
    df = pl.DataFrame(
        rows, schema=["event_id", "type", "exchange", "symbol", "start_ts", "end_ts"], orient="row"
    ).with_columns(
        pl.col("start_ts", "end_ts").cast(pl.Int64).cast(pl.Datetime("ms", "UTC")),
        pl.lit(1.0).alias("magnitude"),
        pl.lit("").alias("description"),
    )
    return RAW_MARKET_EVENTS.conform(df)


def _alerts(rows: list[tuple]) -> pl.DataFrame:
    df = pl.DataFrame(
        rows, schema=["alert_id", "type", "exchange", "symbol", "event_time"], orient="row"
    ).with_columns(pl.col("event_time").cast(pl.Int64).cast(pl.Datetime("ms", "UTC")))
    for c, t in ALERTS.columns.items():
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=t).alias(c))
    return ALERTS.conform(df)


def test_score_matching_rule():
    m = 60_000
    events = _events(
        [
            ("s1", "volume_spike", "binance", "BTC/USDT", T0, T0 + 2 * m),
            ("p1", "pump_and_dump", "binance", "BTC/USDT", T0 + 60 * m, T0 + 80 * m),
            ("w1", "whale", "binance", "BTC/USDT", T0 + 5 * m, T0 + 5 * m),
            ("w2", "whale", "coinbase", "BTC/USD", T0 + 5 * m, T0 + 5 * m),
        ]
    )
    alerts = _alerts(
        [
            ("a", "volume_spike", "binance", "BTC/USDT", T0 - m),  # window just before: matches
            ("b", "volume_spike", "binance", "BTC/USDT", T0 + 65 * m),  # inside the pump
            ("c", "volume_spike", "binance", "BTC/USDT", T0 + 200 * m),  # false positive
            ("d", "whale", "binance", "BTC/USDT", T0 + 5 * m),
            ("e", "whale", "coinbase", "BTC/USD", T0 + 9 * m),  # wrong time
        ]
    )
    s = {r["type"]: r for r in score_alerts(alerts, events).iter_rows(named=True)}
    assert s["volume_spike"]["explained"] == 1
    assert s["volume_spike"]["precision"] == 0.5 and s["volume_spike"]["recall"] == 1.0
    assert s["whale"]["precision"] == 0.5 and s["whale"]["recall"] == 0.5
    assert s["pump_and_dump"]["recall"] == 0.0 and s["pump_and_dump"]["precision"] is None
    # with trades: an event whose market never traded inside its window is unobservable
    trades = _trades([("binance", "BTC/USDT", "t", T0 + 5 * m, 60_000.0, 0.1, "buy")])
    s = {r["type"]: r for r in score_alerts(alerts, events, trades).iter_rows(named=True)}
    assert s["whale"]["unobservable"] == 1 and s["whale"]["recall"] == 1.0
    assert s["volume_spike"]["unobservable"] == 1 and s["volume_spike"]["recall"] is None


def test_late_trades_are_counted_not_lost():
    det = StreamingDetector()
    det.push(_trades([("binance", "BTC/USDT", "a", T0 + 5 * 60_000, 60_000.0, 0.1, "buy")]), NOW)
    late = _trades([("binance", "BTC/USDT", "b", T0, 60_000.0, 5.0, "buy")])  # $300k, late
    out = det.push(late, NOW)
    assert det.late_trades == 1
    assert out.filter(pl.col("type") == "whale").height == 1  # whales never wait for windows
    assert timedelta(0) == timedelta(0)


def test_counting_prefilter_keeps_every_busy_amount_and_bucket():
    rng = np.random.default_rng(5)
    n = 200_000
    amount = rng.choice(rng.random(2_000).round(4), n)  # many repeats
    bucket = rng.integers(0, 100, n)
    amount[:7] = -0.0  # -0.0 and 0.0 are the same amount
    amount[7:9] = 0.0
    bucket[:9] = 3
    got = set(_maybe_busy(amount, bucket, 3).tolist())
    exact = (
        pl.DataFrame({"a": amount + 0.0, "b": bucket})
        .with_row_index()
        .filter(pl.len().over("a", "b") >= 3)["index"]
        .to_list()
    )
    assert len(exact) > 1_000 and set(exact) <= got
    assert len(got) < 3 * len(exact)  # and it does filter


def test_wash_prefilter_finds_exactly_what_a_full_scan_finds(tiny_day, monkeypatch):
    # runs that put only 3 trades in each 60 s bucket (the pigeonhole edge), runs on two
    # markets at once with the same size, same-size trades on one side, and a busy day
    def run(ex, sym, start, n, gap, amount, price=100.0, side0=0):
        sides = ("buy", "sell")
        return [
            (
                ex,
                sym,
                f"{ex}{sym}{start}{i}",
                start + i * gap,
                price,
                amount,
                sides[(i + side0) % 2],
            )
            for i in range(n)
        ]

    t_edge = T0 + 60_000 - 3 * 9_000  # 3 trades before the minute boundary, 3 after
    rows = (
        run("binance", "BTC/USDT", t_edge, 6, 9_000, 0.75)  # alone at its size
        + run("coinbase", "BTC/USD", T0 + 600_000, 6, 2_000, 0.5)
        + run("kraken", "BTC/USD", T0 + 600_000, 6, 2_000, 0.5)
        + run("kraken", "BTC/USD", T0, 5, 2_000, 0.25)  # too short
        + run("binance", "ETH/USDT", T0, 9, 4_000, 2.0, side0=1)
        + [("binance", "ETH/USDT", f"x{i}", T0 + 500 * i, 100.0, 2.0, "buy") for i in range(6)]
    )
    busy_day = tiny_day.trades.select(_trades(rows).columns)
    trades = pl.concat([busy_day, _trades(rows)])
    cfg = DetectorConfig()
    fast = wash_runs(trades, cfg)
    monkeypatch.setattr(rules, "_maybe_busy", lambda a, b, need: np.arange(len(a)))
    full = wash_runs(trades, cfg)
    key = ["exchange", "symbol", "amount", "first_ts"]
    assert fast.sort(key).select(key, "trades").equals(full.sort(key).select(key, "trades"))
    assert fast.height >= 4
