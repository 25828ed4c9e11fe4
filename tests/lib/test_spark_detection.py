"""Detection backfill on Spark equals the single-machine batch path, alert for alert.

The lake: three simulated days of BTC and ETH on three venues plus ``BTC/USDC`` on Binance,
whose USDC trades at $0.97 (its ``USDC/USD`` leg on Coinbase and Kraken says so, and BTC/USDC
is priced accordingly), with redelivered copies and late trades. At a static USDC = $1,
BTC/USDC would stand 3 % apart all day; at the live rate it does not, so a Spark task that
missed the legs would find other alerts. The first test checks the task function without Spark;
the second runs the backfill on local Spark (marked ``spark``: ``make spark``), the third a
rule backtest's detection (one pass over the whole span, one task per asset).
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sentinance_assets.defs.detection.batch import detect_stale_days, trade_days
from sentinance_assets.lib import lake
from sentinance_assets.lib import spark_detection as sd
from sentinance_assets.lib.detection.days import detect_day, in_trade_order, previous_day
from sentinance_assets.lib.detection.engine import detect_all
from sentinance_assets.lib.detection.rules import DetectorConfig, quote_legs
from sentinance_assets.lib.markets import market_for, markets_for
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES
from sentinance_assets.lib.simulator import MarketSimulator

DAYS = [date(2026, 11, 10) + timedelta(days=i) for i in range(3)]
USDC = 0.97
DETECTED_AT = datetime(2026, 12, 1, tzinfo=UTC)
CFG = DetectorConfig()


def _legs(day: date, rng: np.random.Generator) -> pl.DataFrame:
    t0 = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = []
    for exchange in ("coinbase", "kraken"):
        for i in range(0, 86_400, 20):
            price = USDC * (1 + rng.normal(0, 2e-4))
            amount = float(rng.uniform(100, 5_000))
            ts = t0 + timedelta(seconds=i + float(rng.uniform(0, 19)))
            rows.append(
                {
                    "exchange": exchange,
                    "symbol": "USDC/USD",
                    "base": "USDC",
                    "quote": "USD",
                    "trade_id": f"leg-{exchange}-{day}-{i}",
                    "ts": ts,
                    "price": price,
                    "amount": amount,
                    "cost": price * amount,
                    "side": "buy" if i % 40 else "sell",
                    "source": "test",
                    "ingested_at": ts,
                }
            )
    return RAW_TRADES.conform(pl.DataFrame(rows))


def _days() -> dict[str, pl.DataFrame]:
    markets = [*markets_for(("binance", "coinbase", "kraken"), ("BTC", "ETH"))]
    markets.append(market_for("binance", "BTC/USDC"))
    sim = MarketSimulator(markets, seed=11, trade_rate=4.0)
    rng = np.random.default_rng(5)
    out = {}
    for i, d in enumerate(DAYS):
        trades = RAW_TRADES.conform(sim.day(d).trades).with_columns(
            # BTC/USDC priced in a USDC worth $0.97
            pl.when(pl.col("quote") == "USDC").then(pl.col(c) / USDC).otherwise(pl.col(c)).alias(c)
            for c in ("price", "cost")
        )
        redelivered = trades.sample(50, seed=i)  # exact copies, as a re-fetch lands them
        late = trades.sample(30, seed=100 + i).with_columns(
            trade_id=pl.lit("late-") + pl.col("trade_id"),
            ingested_at=pl.col("ts") + timedelta(hours=2),
        )
        out[d.isoformat()] = pl.concat([trades, redelivered, late, _legs(d, rng)])
    return out


def _land(lake_dir: Path, days: dict[str, pl.DataFrame]) -> None:
    for day, frame in days.items():
        # shuffled: the engine must not depend on the order of the rows in a file
        lake.write_partition(
            lake_dir, RAW_TRADES, frame.sample(fraction=1.0, shuffle=True, seed=3), partition=day
        )


def _single_machine(lake_dir: Path) -> pl.DataFrame:
    run = detect_stale_days(lake_dir, lambda t: detect_all(t, CFG, DETECTED_AT))
    assert run.days == [d.isoformat() for d in DAYS]
    return lake.read_dataset(lake_dir, ALERTS).sort("alert_id")


def _task_input(rows: pl.DataFrame, base: str, day: str) -> pl.DataFrame:
    return rows.with_columns(pl.lit(base).alias(sd.TASK_BASE), pl.lit(day).alias(sd.TASK_DAY))


def test_tasks_per_asset_with_the_legs_find_the_single_machine_alerts():
    """Without Spark: the grouped-map function over each (asset, day)'s rows, the legs copied
    into every asset's task, gives the alerts of one detection over the whole day."""
    days = _days()
    day = DAYS[1].isoformat()
    lo = datetime(DAYS[1].year, DAYS[1].month, DAYS[1].day, tzinfo=UTC)
    frame = pl.concat(
        [days[previous_day(day)].filter(pl.col("ts") >= lo - timedelta(hours=3)), days[day]]
    )
    whole = detect_day(frame, day, lambda t: detect_all(t, CFG, DETECTED_AT))
    assert set(whole["type"]) >= {"whale", "volume_spike"}
    legs = quote_legs(CFG)
    is_leg = pl.col("symbol").is_in(legs)
    task = sd._detect_task(CFG, DETECTED_AT)

    def per_task(with_legs: bool) -> pl.DataFrame:
        parts = []
        for base in ("BTC", "ETH", "USDC"):
            mine = pl.col("base") == base
            rows = frame.filter((mine | is_leg) if with_legs else mine)
            # Spark hands a task its rows in any order
            rows = rows.sample(fraction=1.0, shuffle=True, seed=len(base))
            parts.append(pl.from_arrow(task(_task_input(rows, base, day).to_arrow())))
        return pl.concat(parts).sort("alert_id")

    assert per_task(with_legs=True).equals(whole.sort("alert_id"))
    # the legs matter: BTC/USDC at a static $1 diverges from the other venues
    without = per_task(with_legs=False)
    assert not without.equals(whole.sort("alert_id"))
    assert (
        without.filter((pl.col("type") == "divergence") & (pl.col("symbol") == "BTC/USDC")).height
        > whole.filter((pl.col("type") == "divergence") & (pl.col("symbol") == "BTC/USDC")).height
    )


@pytest.mark.spark
def test_backfill_on_spark_equals_the_single_machine_run(tmp_path: Path, spark):
    days = _days()
    local, remote = tmp_path / "local", tmp_path / "spark"
    _land(local, days)
    shutil.copytree(local, remote)
    expected = _single_machine(local)

    calls = []

    def on_spark(files: dict[str, Path], stale: list[str]) -> tuple[pl.DataFrame, int]:
        result = sd.detect_days_on_spark(spark, files, stale, CFG, DETECTED_AT)
        calls.append(result)
        return result.alerts, result.trades_scanned

    run = detect_stale_days(remote, detect_all, many=on_spark)
    got = lake.read_dataset(remote, ALERTS).sort("alert_id")
    assert run.days == [d.isoformat() for d in DAYS] and len(calls) == 1
    assert expected.height > 50 and set(expected["type"]) >= {"whale", "volume_spike"}
    assert got.equals(expected)  # every column, ids included
    local_run = detect_stale_days(local, detect_all)  # nothing stale: reads nothing
    assert local_run.days == []
    # the rows read: each day's file and the previous day's warm-up, as on one machine
    files = trade_days(local)
    assert run.trades_scanned == sum(
        _warm(files, day).height for day in (d.isoformat() for d in DAYS)
    )
    # one task per asset and day: BTC, ETH, USDC on each of three days
    assert calls[0].tasks == 9


def _warm(files: dict[str, Path], day: str) -> pl.DataFrame:
    from sentinance_assets.defs.detection.batch import day_trades

    return day_trades(files, day)


@pytest.mark.spark
def test_backtest_detection_on_spark_equals_the_single_machine_run(spark):
    """``sentinance backtest --engine spark``: the report of a backtest whose detection ran on
    Spark equals the in-process one, figure for figure (alerts, grouping, forward moves)."""
    from sentinance_assets.lib.detection.backtest import RuleSet, run_backtest
    from sentinance_assets.lib.detection.rules_file import default_rules

    trades = pl.concat(_days().values()).sample(fraction=1.0, shuffle=True, seed=4)
    whole = detect_all(in_trade_order(trades), CFG, DETECTED_AT).sort("alert_id")
    on_spark = sd.detect_trades_on_spark(spark, trades, CFG, DETECTED_AT).sort("alert_id")
    assert whole.height > 50 and "divergence" in set(whole["type"])
    assert on_spark.equals(whole)

    rule_sets = [RuleSet("default", default_rules())]
    here = run_backtest(trades, rule_sets)
    there = run_backtest(
        trades,
        rule_sets,
        detect=lambda t, cfg: sd.detect_trades_on_spark(spark, t, cfg, DETECTED_AT),
    )
    here.pop("created"), there.pop("created")
    assert there == here
