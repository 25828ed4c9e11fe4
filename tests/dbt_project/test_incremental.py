"""Incremental runs equal a full refresh.

Warehouse A is built over a first lake batch, then the lake receives a second batch and A is
updated with incremental `dbt build` runs. Warehouse B is built from scratch over the final lake.
Every model table of A must equal B's exactly (EXCEPT ALL both ways). The second batch holds:

* new trades (the last hour of every market);
* late trades: trades with event times hours back that arrive only now;
* a skewed arrival: a trade stamped ingested 30 min *before* A's watermark (inside the
  60-minute lookback) that lands only now;
* a market that was known through exchange candles only (kraken SOL/USD) gaining trades for
  its first two hours, so those minutes must switch to the trades while the later minutes keep
  the exchange's candles;
* an exchange 1m candle arriving late for a minute without trades (binance BTC/USDT's gap), so
  that minute is filled from the exchange, and one for a minute with trades (the trades keep
  it);
* a maintenance run growing across batches (kraken MNT/USD, candles only): 40 flat zero-volume
  minutes in batch 1 (too short to be maintenance), 30 more in batch 2, so the first 40 become
  maintenance too and the coarser bars that held only them must disappear;
* re-ingested copies of already-kept trades with different prices (the first copy must win);
* a replaced lake partition: batch 1's file re-written with one market's rows stamped anew
  (a re-run ingest), so the kept copies' ingested_at must follow the lake.

* a trade stamped before watermark - lookback, alone in its minute: a plain incremental run
  misses it (the limit of the lookback, and proof the run was incremental); a second run of A
  with a start_ts/end_ts window covering its event time (as a Dagster partitioned run passes)
  picks it up.

Four dbt runs (A first, A incremental and B full in parallel, A windowed); dbt tests excluded
(test_dbt_build runs them).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_TRADES, TS
from tests.dbt_project.dbt_synthetic import (
    INGESTED,
    START,
    DbtRun,
    make_exchange_candles,
    make_trades,
    run_dbt_build,
)

MODELS = [
    "staging.stg_trades",
    "intermediate.int_candles_1m",
    "intermediate.int_venue_vwap_usd",
    "marts.candles",
    "marts.candle_completeness",
    "marts.candles_consolidated",
    "marts.indicators",
    "marts.spreads",
    "marts.spread_divergences",
    "marts.daily_market",
    "marts.daily_top_movers",
    "marts.daily_correlations",
    "marts.asset_overview",
]
NO_TESTS = ("--exclude-resource-type", "test")
LATER = INGESTED + timedelta(hours=1)
# before the first trade: a minute no other row of any batch touches (a minute that gets
# recomputed for another arrival reads all of its trades, this one included)
TOO_EARLY_TS = START - timedelta(minutes=30) + timedelta(seconds=1)
TOO_EARLY_MINUTE = (
    "select low from marts.candles where exchange = 'binance' and symbol = 'BTC/USDT' "
    "and timeframe = '1m' and ts = timestamptz '2026-11-14 20:30:00+00'"
)
SPLIT = START + timedelta(hours=3)  # trades from here on arrive in the second batch


def _ingested(df: pl.DataFrame, at) -> pl.DataFrame:
    return df.with_columns(ingested_at=pl.lit(at).cast(TS))


def _sol_trades(n: int = 120) -> pl.DataFrame:
    """kraken SOL/USD trades over 21:00-23:00 (the market had exchange candles only)."""
    return pl.DataFrame(
        {
            "exchange": "kraken",
            "symbol": "SOL/USD",
            "base": "SOL",
            "quote": "USD",
            "trade_id": [f"s{i:05d}" for i in range(n)],
            "ts": [START + timedelta(seconds=60 * i + 7) for i in range(n)],
            "price": [150.0 + 0.01 * i for i in range(n)],
            "amount": [0.5 + (i % 7) * 0.1 for i in range(n)],
            "side": "buy",
        }
    ).with_columns(
        pl.col("ts").cast(TS),
        cost=pl.col("price") * pl.col("amount"),
        source=pl.lit("test"),
    )


MNT_SPLIT = START + timedelta(minutes=70)  # MNT/USD candles from here arrive in batch 2


def _maintenance_market() -> pl.DataFrame:
    """kraken MNT/USD 1m candles 21:00-22:59: minutes 30-99 flat at 10.0 with no volume."""
    rows = []
    for m in range(120):
        if 30 <= m < 100:
            rows.append((10.0, 10.0, 10.0, 10.0, 0.0))
        else:
            rows.append((10.0, 10.2, 9.9, 10.1, 3.0))
    return pl.DataFrame(
        rows, schema=["open", "high", "low", "close", "volume"], orient="row"
    ).with_columns(
        exchange=pl.lit("kraken"),
        symbol=pl.lit("MNT/USD"),
        base=pl.lit("MNT"),
        quote=pl.lit("USD"),
        timeframe=pl.lit("1m"),
        ts=pl.Series([START + timedelta(minutes=m) for m in range(120)]).cast(TS),
        source=pl.lit("test"),
        ingested_at=pl.lit(INGESTED).cast(TS),
    )


def _late_candles() -> pl.DataFrame:
    """binance BTC/USDT 1m candles for 22:30 (in its 3-minute gap without trades) and 22:40 (a
    minute with trades), delivered with batch 2."""
    return pl.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "base": "BTC",
            "quote": "USDT",
            "timeframe": "1m",
            "ts": [START + timedelta(minutes=90), START + timedelta(minutes=100)],
            "open": [60_100.0, 60_400.0],
            "high": [60_150.0, 60_500.0],
            "low": [60_050.0, 60_350.0],
            "close": [60_123.0, 60_456.0],
            "volume": [1.5, 2.5],
            "source": "test",
        }
    ).with_columns(pl.col("ts").cast(TS), ingested_at=pl.lit(LATER).cast(TS))


def _write(lake_dir: Path, df: pl.DataFrame, part: str) -> None:
    dated = df.with_columns(d=pl.col("ts").dt.date().cast(pl.String))
    for (day,), chunk in dated.partition_by("d", as_dict=True).items():
        lake.write_partition(lake_dir, RAW_TRADES, chunk.drop("d"), partition=day, part=part)


def _compare(a: Path, b: Path, tables: list[str]) -> dict[str, tuple[int, int, int]]:
    """{table: (rows, rows only in a, rows only in b)}."""
    out = {}
    with duckdb.connect(str(a), read_only=True) as conn:
        conn.execute(f"ATTACH '{b}' AS full_refresh (READ_ONLY)")
        for t in tables:
            b_t = f"full_refresh.{t}"
            only_a = conn.sql(
                f"select count(*) from (select * from {t} except all select * from {b_t})"
            ).fetchone()[0]
            only_b = conn.sql(
                f"select count(*) from (select * from {b_t} except all select * from {t})"
            ).fetchone()[0]
            rows = conn.sql(f"select count(*) from {t}").fetchone()[0]
            out[t] = (rows, only_a, only_b)
    return out


def _ok(run: DbtRun) -> DbtRun:
    assert run.returncode == 0, run.output[-6000:]
    return run


def _too_early() -> pl.DataFrame:
    """A trade stamped 2 h before A's watermark (outside the 60-minute lookback), alone in its
    minute, a new low."""
    return pl.DataFrame(
        {
            "exchange": ["binance"],
            "symbol": ["BTC/USDT"],
            "base": ["BTC"],
            "quote": ["USDT"],
            "trade_id": ["too-early"],
            "ts": [TOO_EARLY_TS],
            "price": [1.0],
            "amount": [1.0],
            "side": ["sell"],
        }
    ).with_columns(
        pl.col("ts").cast(TS),
        cost=pl.col("price") * pl.col("amount"),
        source=pl.lit("test"),
        ingested_at=pl.lit(INGESTED - timedelta(hours=2)).cast(TS),
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("incremental")
    lake_dir = work / "lake"
    trades = make_trades()
    old = trades.filter(pl.col("ts") < SPLIT)
    late = old.filter(pl.col("exchange") != "kraken").sample(150, seed=4)  # arrive late
    first = old.join(late, on=["exchange", "symbol", "trade_id"], how="anti")
    new = trades.filter(pl.col("ts") >= SPLIT)

    # batch 1: everything before SPLIT except the late trades, plus exchange candles
    _write(lake_dir, _ingested(first, INGESTED), "batch1")
    lake.write_partition(lake_dir, RAW_CANDLES, make_exchange_candles(), partition="2026-11-14")
    mnt = _maintenance_market()
    lake.write_partition(
        lake_dir, RAW_CANDLES, mnt.filter(pl.col("ts") < MNT_SPLIT), partition="mnt", part="b1"
    )
    a_dir, b_dir = work / "a", work / "b"
    _ok(run_dbt_build(lake_dir, a_dir, {}, *NO_TESTS))

    # batch 2 arrives after A's first run
    skewed = late.head(1)
    late = late.slice(1)
    conflicting = first.sample(40, seed=9).with_columns(price=pl.col("price") * 3)
    _write(lake_dir, _ingested(new, LATER), "new")
    _write(lake_dir, _ingested(late, LATER), "late")
    _write(lake_dir, _ingested(skewed, INGESTED - timedelta(minutes=30)), "skewed")
    _write(lake_dir, _ingested(_sol_trades(), LATER), "sol")
    _write(lake_dir, _ingested(conflicting, LATER), "conflicting")
    lake.write_partition(
        lake_dir, RAW_CANDLES, _late_candles(), partition="2026-11-14", part="late"
    )
    lake.write_partition(
        lake_dir,
        RAW_CANDLES,
        _ingested(mnt.filter(pl.col("ts") >= MNT_SPLIT), LATER),
        partition="mnt",
        part="b2",
    )
    lake.write_partition(lake_dir, RAW_TRADES, _too_early(), partition="2026-11-14", part="early")
    # a re-ingested day: batch 1's 2026-11-14 file replaced, binance ETH/USDT stamped anew
    reingested = first.with_columns(
        ingested_at=pl.when((pl.col("exchange") == "binance") & (pl.col("symbol") == "ETH/USDT"))
        .then(pl.lit(LATER))
        .otherwise(pl.lit(INGESTED))
        .cast(TS)
    )
    _write(lake_dir, reingested, "batch1")

    # A: incremental run; B: a full build of the final lake (in parallel)
    with ThreadPoolExecutor(2) as pool:
        incremental = pool.submit(run_dbt_build, lake_dir, a_dir, {}, *NO_TESTS)
        full = pool.submit(run_dbt_build, lake_dir, b_dir, {}, *NO_TESTS)
        a, b = _ok(incremental.result()), _ok(full.result())
    after_incremental = {
        "too_early_low": a.query(TOO_EARLY_MINUTE)["low"].to_list(),
        "stg": a.query("select exchange, symbol, trade_id, price from staging.stg_trades"),
        "sol": a.query(
            "select ts >= timestamptz '2026-11-14 23:00:00+00' as later, source, count(*) as n "
            "from marts.candles where exchange = 'kraken' and symbol = 'SOL/USD' "
            "and timeframe = '1m' group by all order by all"
        ),
        "gap": a.query(
            "select ts, source, quality, close from marts.candles where exchange = 'binance' "
            "and symbol = 'BTC/USDT' and timeframe = '1m' "
            "and ts in (timestamptz '2026-11-14 22:30:00+00', "
            "timestamptz '2026-11-14 22:40:00+00') "
            "order by ts"
        ),
        "mnt": a.query(
            "select timeframe, count(*) as bars, "
            "count(*) filter (where quality like '%maintenance%') as maintenance "
            "from marts.candles where symbol = 'MNT/USD' group by timeframe order by timeframe"
        ),
        "compiled": (
            a.target / "compiled" / "sentinance" / "models" / "intermediate" / "int_candles_1m.sql"
        ).read_text(),
    }
    # A again with the window a Dagster partitioned run would pass
    window = json.dumps({"start_ts": "2026-11-14 20:00:00+00", "end_ts": "2026-11-14 21:00:00+00"})
    a = _ok(run_dbt_build(lake_dir, a_dir, {}, *NO_TESTS, "--vars", window))
    return {
        "a": a,
        "b": b,
        "late": late,
        "skewed": skewed,
        "conflicting": conflicting,
        "after_incremental": after_incremental,
    }


def test_incremental_run_picks_up_late_skewed_and_conflicting_rows(scenario):
    got = scenario["after_incremental"]
    # really incremental: the compiled 1-minute bars filter on the watermark
    assert "ingested_at >=" in got["compiled"]
    key = ["exchange", "symbol", "trade_id"]
    for case in ("late", "skewed"):
        df = scenario[case]
        assert df.join(got["stg"], on=key).height == df.height, case
    kept = scenario["conflicting"].join(got["stg"], on=key, suffix="_kept")
    assert kept.height == scenario["conflicting"].height
    assert (kept["price_kept"] * 3 == kept["price"]).all()  # the first ingested copy won
    # minutes with trades switched to them; the later minutes keep the exchange's candles
    assert got["sol"].rows() == [(False, "trades", 120), (True, "exchange_1m", 120)]
    # a late exchange candle fills the minute without trades, not the one with trades
    gap = got["gap"].rows(named=True)
    assert [(r["source"], r["quality"]) for r in gap] == [
        ("exchange_1m", "filled"),
        ("trades", "ok"),
    ]
    assert gap[0]["close"] == 60_123.0 and gap[1]["close"] != 60_456.0
    # the grown run: all 70 flat minutes are maintenance; the 5m, 15m buckets holding only
    # them are gone, the hours keep their usable minutes
    mnt = {r["timeframe"]: (r["bars"], r["maintenance"]) for r in got["mnt"].iter_rows(named=True)}
    assert mnt["1m"] == (120, 70)
    assert mnt["5m"] == (10, 0) and mnt["15m"] == (4, 0) and mnt["1h"] == (2, 0)
    # an arrival stamped before watermark - lookback is missed by a plain incremental run ...
    assert got["too_early_low"] == []


def test_window_run_then_equals_full_refresh_exactly(scenario):
    a, b = scenario["a"], scenario["b"]
    # ... and picked up by a run whose start_ts/end_ts window covers its event time
    assert a.query(TOO_EARLY_MINUTE)["low"][0] == 1.0
    result = _compare(a.warehouse, b.warehouse, MODELS)
    print(json.dumps(result, indent=1))
    for table, (rows, only_a, only_b) in result.items():
        assert rows > 0, table
        assert (only_a, only_b) == (0, 0), (table, only_a, only_b)


def test_table_from_an_older_version_says_to_full_refresh(tmp_path):
    """An incremental table built before its watermark column existed fails with what to do,
    not with the engine's binder error; the full refresh it names repairs it."""
    lake_dir, work = tmp_path / "lake", tmp_path / "wh"
    _write(lake_dir, _ingested(make_trades().head(500), INGESTED), "batch1")
    select = ("--select", "stg_trades", "stg_candles", "int_candles_1m")
    _ok(run_dbt_build(lake_dir, work, {}, *select, command="run"))
    with duckdb.connect(str(work / "warehouse.duckdb")) as conn:
        conn.execute("alter table intermediate.int_candles_1m drop column ingested_at")

    stale = run_dbt_build(lake_dir, work, {}, *select, command="run")
    assert stale.returncode != 0
    assert "has no column 'ingested_at'" in stale.output
    assert "--full-refresh" in stale.output
    assert "Binder Error" not in stale.output

    repaired = _ok(run_dbt_build(lake_dir, work, {}, *select, "--full-refresh", command="run"))
    assert (
        repaired.query("select count(ingested_at) as n from intermediate.int_candles_1m")["n"][0]
        > 0
    )
