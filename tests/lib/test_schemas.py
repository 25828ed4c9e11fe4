"""The raw layouts' derived ``late`` column: one definition, computed for every producer."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from sentinance_assets.lib import contracts, lake
from sentinance_assets.lib.ingest import land_day
from sentinance_assets.lib.schemas import (
    QUARANTINE_TRADES,
    RAW_CANDLES,
    RAW_NEWS,
    RAW_TRADES,
    TS,
)
from sentinance_assets.lib.warehouse import register_lake_views

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


def _trades(delays_min: dict[str, float | None]) -> pl.DataFrame:
    """Trades at NOW - delay, all arriving at NOW (``None``: arrival unknown)."""
    return pl.DataFrame(
        [
            {
                "exchange": "binance",
                "symbol": "BTC/USDT",
                "base": "BTC",
                "quote": "USDT",
                "trade_id": tid,
                "ts": NOW - timedelta(minutes=d or 0),
                "price": 100.0,
                "amount": 1.0,
                "cost": 100.0,
                "side": "buy",
                "source": "t",
                "ingested_at": None if d is None else NOW,
            }
            for tid, d in delays_min.items()
        ]
    ).with_columns(pl.col("ts").cast(TS), pl.col("ingested_at").cast(TS))


def test_late_is_derived_not_received():
    for ds in (RAW_TRADES, RAW_CANDLES, RAW_NEWS):
        assert ds.columns["late"] == pl.Boolean
        assert "late" not in ds.received_columns  # a source cannot know when we received it
        assert list(ds.received_columns) == [c for c in ds.columns if c != "late"]


def test_conform_computes_late_for_producers_that_bypass_the_contracts():
    out = RAW_TRADES.conform(_trades({"old": 30, "fresh": 1, "unknown": None}))
    assert dict(out.select("trade_id", "late").iter_rows()) == {
        "old": True,
        "fresh": False,
        "unknown": None,  # no arrival time: not claimed on time
    }


def test_conform_keeps_a_late_column_already_there():
    frame = _trades({"a": 1}).with_columns(pl.lit(True).alias("late"))
    assert RAW_TRADES.conform(frame)["late"].to_list() == [True]


def test_conform_still_rejects_a_missing_received_column():
    with pytest.raises(ValueError, match="price"):
        RAW_TRADES.conform(_trades({"a": 1}).drop("price"))


def test_a_lake_file_written_before_the_column_existed_reads_with_late(tmp_path: Path):
    path = lake.partition_path(tmp_path, RAW_TRADES, "2026-11-10", "legacy")
    path.parent.mkdir(parents=True)
    _trades({"old": 30}).write_parquet(path)  # no late column
    assert lake.read_dataset(tmp_path, RAW_TRADES)["late"].to_list() == [True]


def test_land_day_persists_the_flag_and_analysts_can_query_late_trades(tmp_path: Path):
    rules = contracts.trade_rules(("binance",), ("BTC",), NOW)
    checked = land_day(
        _trades({"late": 45, "on_time": 2}),
        dataset=RAW_TRADES,
        quarantine=QUARANTINE_TRADES,
        rules=rules,
        key=["exchange", "symbol", "trade_id"],
        lake_dir=tmp_path,
        day="2026-11-10",
        source="t",
        run_id="r",
        now=NOW,
    )
    stored = lake.read_dataset(tmp_path, RAW_TRADES)
    assert stored.schema == pl.Schema(RAW_TRADES.columns)
    assert dict(stored.select("trade_id", "late").iter_rows()) == {"late": True, "on_time": False}
    assert checked.metadata()["late"] == stored["late"].sum() == 1
    conn = duckdb.connect()
    register_lake_views(conn, tmp_path)
    rows = conn.execute("select trade_id from raw.trades where late").fetchall()
    assert rows == [("late",)]


def test_candle_lateness_counts_from_the_bar_close():
    """A 1h bar fetched 4 minutes after it closed is on time; 6 minutes after, late. Counted
    from the open, both would be late (and every bar of 5 minutes or more always would)."""
    opened = NOW - timedelta(hours=2)
    rows = [
        ("1h", timedelta(hours=1, minutes=4), False),
        ("1h", timedelta(hours=1, minutes=6), True),
        ("1m", timedelta(minutes=7), True),
        ("1d", timedelta(days=1, minutes=1), False),
        ("15m", timedelta(minutes=19), False),
        ("1M", timedelta(days=40), None),  # a month has no fixed length: unknown, not on time
    ]
    frame = pl.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "base": "BTC",
            "quote": "USDT",
            "timeframe": [tf for tf, _, _ in rows],
            "ts": opened,
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
            "source": "t",
            "ingested_at": [opened + after for _, after, _ in rows],
        }
    )
    assert RAW_CANDLES.conform(frame)["late"].to_list() == [want for _, _, want in rows]
