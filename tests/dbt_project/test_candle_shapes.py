"""Candles of any timeframe, and broken ones, through the real dbt models.

One small synthetic lake holds the shapes real data comes in (hand-made so every count is
known), built once with `dbt build` of the candle models and their dbt tests:

* ``replay HRL/USD``: hourly exchange candles only, over three days, with a maintenance run
  (three flat zero-volume hours), a missing hour, an implausible bar (high 5 x close) and a
  duplicated bar (two raw copies with different volumes);
* ``replay FIV/USD``: 5-minute exchange candles only, over two days;
* ``testex BTC/USD``: trades and the exchange's 1m candles over 30 minutes; minute 10's trades
  all failed their contract (none reached raw.trades) and minute 20 had none, so those minutes
  come from the exchange's candles, flagged ``filled``;
* ``testex ETH/USD``: 1m exchange candles for 12 minutes, so daily_correlations has too few
  matched returns for a row (and must not fail).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib.indicators import INDICATOR_COLUMNS
from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_TRADES, TS
from tests.dbt_project.dbt_synthetic import DbtRun, run_dbt_build

T0 = datetime(2026, 11, 10, tzinfo=UTC)
INGESTED = datetime(2026, 11, 13, tzinfo=UTC)
HOURS = 72
MAINTENANCE_HOURS = (30, 31, 32)
MISSING_HOUR = 50
IMPLAUSIBLE_HOUR = 60
DUPLICATE_HOUR = 10
FIVE_MIN_BARS = 2 * 24 * 12
MIX_MINUTES = 30
QUARANTINED_MINUTE = 10  # every trade of it failed the contract
NO_TRADE_MINUTE = 20
MIX_START = T0 + timedelta(days=1, hours=12)


def _candles(exchange: str, symbol: str, timeframe: str, rows: list[tuple]) -> pl.DataFrame:
    base, quote = symbol.split("/")
    return pl.DataFrame(
        rows, schema=["ts", "open", "high", "low", "close", "volume"], orient="row"
    ).with_columns(
        pl.col("ts").cast(TS),
        exchange=pl.lit(exchange),
        symbol=pl.lit(symbol),
        base=pl.lit(base),
        quote=pl.lit(quote),
        timeframe=pl.lit(timeframe),
        source=pl.lit("replay"),
        ingested_at=pl.lit(INGESTED).cast(TS),
    )


def _walk(n: int, p0: float, seed: int, step: timedelta, start: datetime) -> list[tuple]:
    rng = np.random.default_rng(seed)
    close = p0 * np.exp(np.cumsum(rng.normal(0, 2e-3, n)))
    open_ = np.concatenate([[p0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 1e-3, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 1e-3, n)))
    volume = rng.lognormal(2, 0.5, n)
    return [(start + i * step, open_[i], high[i], low[i], close[i], volume[i]) for i in range(n)]


def hourly_rows() -> list[tuple]:
    rows = _walk(HOURS, 100.0, 1, timedelta(hours=1), T0)
    carried = rows[MAINTENANCE_HOURS[0] - 1][4]
    for h in MAINTENANCE_HOURS:  # the exchange serves its last price, no volume
        rows[h] = (rows[h][0], carried, carried, carried, carried, 0.0)
    ts, o, _, lo, c, v = rows[IMPLAUSIBLE_HOUR]
    rows[IMPLAUSIBLE_HOUR] = (ts, o, 5 * c, lo, c, v)  # a wick 5 x the close
    return [r for i, r in enumerate(rows) if i != MISSING_HOUR]


def mixed_trades() -> pl.DataFrame:
    rows = []
    for m in range(MIX_MINUTES):
        if m in (QUARANTINED_MINUTE, NO_TRADE_MINUTE):
            continue
        for k in range(3):
            ts = MIX_START + timedelta(minutes=m, seconds=10 + 15 * k)
            rows.append(("testex", "BTC/USD", f"t{m:02d}{k}", ts, 60_000.0 + m + k, 0.1 * (k + 1)))
    return pl.DataFrame(
        rows, schema=["exchange", "symbol", "trade_id", "ts", "price", "amount"], orient="row"
    ).with_columns(
        pl.col("ts").cast(TS),
        base=pl.lit("BTC"),
        quote=pl.lit("USD"),
        side=pl.lit("buy"),
        cost=pl.col("price") * pl.col("amount"),
        source=pl.lit("test"),
        ingested_at=pl.lit(INGESTED).cast(TS),
    )


def write_shapes_lake(lake_dir) -> None:
    hourly = _candles("replay", "HRL/USD", "1h", hourly_rows())
    lake.write_partition(lake_dir, RAW_CANDLES, hourly, partition="hourly")
    dup = hourly.filter(pl.col("ts") == T0 + timedelta(hours=DUPLICATE_HOUR)).with_columns(
        volume=pl.col("volume") + 1.0  # same key, another value, same delivery
    )
    lake.write_partition(lake_dir, RAW_CANDLES, dup, partition="hourly", part="dup")

    five = _candles(
        "replay", "FIV/USD", "5m", _walk(FIVE_MIN_BARS, 20.0, 2, timedelta(minutes=5), T0)
    )
    lake.write_partition(lake_dir, RAW_CANDLES, five, partition="five")

    # the exchange's 1m candles of the mixed market: every minute, values unlike the trades'
    mix = _candles(
        "testex",
        "BTC/USD",
        "1m",
        [
            (MIX_START + timedelta(minutes=m), 50_000.0, 50_010.0, 49_990.0, 50_005.0, 2.0)
            for m in range(MIX_MINUTES)
        ],
    )
    eth = _candles(
        "testex", "ETH/USD", "1m", _walk(12, 3_000.0, 3, timedelta(minutes=1), MIX_START)
    )
    lake.write_partition(lake_dir, RAW_CANDLES, pl.concat([mix, eth]), partition="mixed")
    lake.write_partition(lake_dir, RAW_TRADES, mixed_trades(), partition="mixed")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> DbtRun:
    work = tmp_path_factory.mktemp("candle_shapes")
    write_shapes_lake(work / "lake")
    run = run_dbt_build(
        work / "lake",
        work,
        {},
        "--select",
        "+candle_completeness",
        "+daily_correlations",
        "+daily_market",
    )
    assert run.returncode == 0, run.output[-6000:]
    return run


def _candles_of(run: DbtRun, exchange: str, symbol: str) -> pl.DataFrame:
    return run.query(
        f"select * from marts.candles where exchange = '{exchange}' and symbol = '{symbol}' "
        "order by timeframe, ts"
    )


def _completeness(run: DbtRun, exchange: str, symbol: str) -> dict[str, dict]:
    df = run.query(
        f"select * from marts.candle_completeness where exchange = '{exchange}' "
        f"and symbol = '{symbol}'"
    )
    return {r["timeframe"]: r for r in df.iter_rows(named=True)}


def test_dbt_tests_pass_on_broken_shapes(shapes: DbtRun):
    statuses = {r["unique_id"]: r["status"] for r in shapes.results()}
    bad = {u: s for u, s in statuses.items() if s not in ("success", "pass")}
    assert not bad, bad
    assert sum(u.startswith("test.") for u in statuses) > 40


def test_hourly_only_market_gets_1h_4h_1d_candles_and_indicators(shapes: DbtRun):
    c = _candles_of(shapes, "replay", "HRL/USD")
    assert set(c["timeframe"]) == {"1h", "4h", "1d"}
    h1 = c.filter(pl.col("timeframe") == "1h")
    assert h1.height == HOURS - 1
    assert set(h1["source"]) == {"exchange_1h"}
    assert h1["trade_count"].null_count() == h1.height
    # 4h and 1d roll up the usable hours; a bucket missing some says so
    h4 = c.filter(pl.col("timeframe") == "4h")
    assert h4.height == HOURS // 4 and set(h4["source"]) == {"exchange_1h"}
    bucket = h4.filter(pl.col("ts") == T0 + timedelta(hours=48)).row(0, named=True)
    assert bucket["covered_minutes"] == 3 * 60 and bucket["source_bars"] == 3  # hour 50 missing
    assert "incomplete" in bucket["quality"]
    full = h4.filter(pl.col("ts") == T0).row(0, named=True)
    assert (full["covered_minutes"], full["quality"]) == (240, "ok")
    hours = h1.filter((pl.col("ts") >= T0) & (pl.col("ts") < T0 + timedelta(hours=4)))
    assert full["open"] == hours["open"][0] and full["close"] == hours["close"][-1]
    assert full["high"] == hours["high"].max() and full["low"] == hours["low"].min()
    d1 = c.filter(pl.col("timeframe") == "1d")
    assert d1.height == 3
    # the implausible hour's 5x wick does not reach its 4h/1d bars
    bad = h1.filter(pl.col("ts") == T0 + timedelta(hours=IMPLAUSIBLE_HOUR))["high"][0]
    assert (h4["high"] < bad).all() and (d1["high"] < bad).all()

    ind = shapes.query(
        "select * from marts.indicators where symbol = 'HRL/USD' order by timeframe, ts"
    )
    assert ind.height == c.height
    i1 = ind.filter(pl.col("timeframe") == "1h")
    assert i1["rsi_14"].drop_nulls().len() == 16 + 3  # segments of 30 and 17 bars
    assert i1["sma_20"].drop_nulls().len() > 0
    # short series: the 1d warm-up is longer than the data, so NULLs and no error
    d = ind.filter(pl.col("timeframe") == "1d")
    assert d["sma_20"].null_count() == d.height
    assert set(d["null_reason"]) == {"warm_up"}


def test_broken_bars_are_flagged_and_counted(shapes: DbtRun):
    h1 = _candles_of(shapes, "replay", "HRL/USD").filter(pl.col("timeframe") == "1h")
    quality = dict(zip(h1["ts"], h1["quality"], strict=True))
    for h in MAINTENANCE_HOURS:
        assert quality[T0 + timedelta(hours=h)] == "maintenance"
    assert quality[T0 + timedelta(hours=IMPLAUSIBLE_HOUR)] == "implausible"
    assert quality[T0 + timedelta(hours=DUPLICATE_HOUR)] == "duplicate"
    assert T0 + timedelta(hours=MISSING_HOUR) not in quality  # never filled with a made-up bar
    # the last ingested copy wins; same delivery: the larger volume
    dup = h1.filter(pl.col("ts") == T0 + timedelta(hours=DUPLICATE_HOUR))
    raw = {r[0]: r for r in hourly_rows()}[T0 + timedelta(hours=DUPLICATE_HOUR)]
    assert dup["volume"][0] == pytest.approx(raw[5] + 1.0)

    done = _completeness(shapes, "replay", "HRL/USD")["1h"]
    assert done["first_bar_ts"] == T0 and done["last_bar_ts"] == T0 + timedelta(hours=HOURS - 1)
    assert (done["expected_bars"], done["present_bars"], done["missing_bars"]) == (72, 71, 1)
    assert (done["gap_count"], done["longest_gap_bars"]) == (1, 1)
    assert done["maintenance_bars"] == len(MAINTENANCE_HOURS)
    assert done["implausible_bars"] == 1
    assert done["duplicate_bars"] == 1
    assert done["usable_bars"] == 71 - 3 - 1
    assert done["filled_bars"] == 0 and done["trade_bars"] == 0
    assert done["completeness_pct"] == pytest.approx(100 * 67 / 72)
    assert done["indicator_gap_rows"] > 0


def test_indicators_restart_after_gaps_and_skip_excluded_bars(shapes: DbtRun):
    i1 = shapes.query(
        "select * from marts.indicators where symbol = 'HRL/USD' and timeframe = '1h' order by ts"
    )
    by_ts = {r["ts"]: r for r in i1.iter_rows(named=True)}
    for h, reason in [(31, "maintenance"), (IMPLAUSIBLE_HOUR, "implausible")]:
        r = by_ts[T0 + timedelta(hours=h)]
        assert r["null_reason"] == reason and r["bars_in_segment"] is None
        assert all(r[c] is None for c in INDICATOR_COLUMNS if c != "close")
    # segments: hours 0-29 (series start), 33-49, 51-59, 61-71 (after gaps)
    starts = {0: "warm_up", 33: "gap", 51: "gap", 61: "gap"}
    for h, reason in starts.items():
        r = by_ts[T0 + timedelta(hours=h)]
        assert (r["bars_in_segment"], r["null_reason"]) == (1, reason), h
        assert r["log_return"] is None  # no return across a gap or an excluded bar
    # RSI(14) is defined from a segment's 15th bar, in each segment again
    assert by_ts[T0 + timedelta(hours=14)]["rsi_14"] is not None
    assert by_ts[T0 + timedelta(hours=33 + 13)]["rsi_14"] is None
    assert by_ts[T0 + timedelta(hours=33 + 14)]["rsi_14"] is not None
    assert by_ts[T0 + timedelta(hours=61 + 10)]["rsi_14"] is None  # 11-bar segment


def test_5m_only_market_gets_every_coarser_timeframe(shapes: DbtRun):
    c = _candles_of(shapes, "replay", "FIV/USD")
    counts = dict(c.group_by("timeframe").len().iter_rows())
    assert counts == {"5m": FIVE_MIN_BARS, "15m": FIVE_MIN_BARS // 3, "1h": 48, "4h": 12, "1d": 2}
    assert set(c["source"]) == {"exchange_5m"}
    assert set(c["quality"]) == {"ok"}
    h1 = c.filter(pl.col("timeframe") == "1h")
    assert (h1["source_bars"] == 12).all() and (h1["covered_minutes"] == 60).all()
    ind = shapes.query("select * from marts.indicators where symbol = 'FIV/USD'")
    assert set(ind["timeframe"]) == {"5m", "15m", "1h", "4h", "1d"}
    assert ind.filter(pl.col("timeframe") == "5m")["ema_200"].drop_nulls().len() > 300


def test_minutes_without_clean_trades_take_the_exchange_candle(shapes: DbtRun):
    c = _candles_of(shapes, "testex", "BTC/USD")
    m1 = c.filter(pl.col("timeframe") == "1m")
    assert m1.height == MIX_MINUTES  # the 1m grid matches the exchange's
    filled = m1.filter(pl.col("source") == "exchange_1m")
    minutes = [MIX_START + timedelta(minutes=m) for m in (QUARANTINED_MINUTE, NO_TRADE_MINUTE)]
    assert filled["ts"].to_list() == minutes
    assert set(filled["quality"]) == {"filled"}
    assert filled["close"].to_list() == [50_005.0, 50_005.0]
    assert filled["trade_count"].null_count() == 2
    traded = m1.filter(pl.col("source") == "trades")
    assert traded.height == MIX_MINUTES - 2
    assert set(traded["quality"]) == {"ok"} and (traded["trade_count"] == 3).all()
    assert (traded["close"] > 59_000).all()  # trades win over the exchange's candle
    # a coarser bar mixing both says so, and counts the clean trades behind it
    m5 = c.filter((pl.col("timeframe") == "5m") & (pl.col("ts") == minutes[0])).row(0, named=True)
    assert (m5["source"], m5["quality"], m5["trade_count"]) == ("mixed", "filled", 12)
    done = _completeness(shapes, "testex", "BTC/USD")["1m"]
    assert (done["present_bars"], done["filled_bars"], done["trade_bars"]) == (30, 2, 28)


def test_no_nan_or_inf_anywhere_and_thin_correlations_yield_no_row(shapes: DbtRun):
    ind = shapes.query("select * from marts.indicators")
    assert ind.height > FIVE_MIN_BARS
    for col in INDICATOR_COLUMNS:
        values = ind[col].drop_nulls()
        assert values.is_finite().all(), col
    assert set(ind["null_reason"].drop_nulls()) <= {"warm_up", "gap", "implausible", "maintenance"}
    assert shapes.query("select count(*) as n from marts.daily_correlations")["n"][0] == 0
    # broken days are left out of daily_market rather than giving absurd returns
    daily = shapes.query("select * from marts.daily_market")
    assert daily.height > 0 and daily["return_pct"].is_finite().all()


def test_gap_tolerance_var_reaches_the_indicators_model(shapes: DbtRun):
    """The var indicator_max_gap_bars reaches the Python model as its config (dbt passes only
    the keys a model reads with a plain dbt.config.get call; the semantics of the tolerance are
    tested in tests/lib/test_indicators.py, without another dbt run)."""
    code = (shapes.target / "run" / "sentinance" / "models" / "marts" / "indicators.py").read_text()
    assert re.search(r"config_dict = \{'max_gap_bars': '?0'?\}", code), code[-3000:]
