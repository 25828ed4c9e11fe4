from datetime import UTC, datetime, timedelta

import polars as pl

from sentinance_assets.lib import contracts
from sentinance_assets.lib.schemas import TS

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


def trades(rows):
    base = {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "trade_id": "1",
        "ts": NOW,
        "price": 100.0,
        "amount": 1.0,
        "ingested_at": NOW,
    }
    return pl.DataFrame([{**base, **r} for r in rows]).with_columns(
        pl.col("ts").cast(TS), pl.col("ingested_at").cast(TS)
    )


def run(df):
    rules = contracts.trade_rules(("binance",), ("BTC",), NOW)
    return contracts.check(
        df, rules, ["exchange", "symbol", "trade_id"], source="t", run_id="r", now=NOW
    )


def test_bad_rows_are_quarantined_with_reasons_and_counts_reconcile():
    df = trades(
        [
            {"trade_id": "ok"},
            {"trade_id": "nan", "price": float("nan")},
            {"trade_id": "neg", "price": -1.0},
            {"trade_id": "zero", "amount": 0.0},
            {"trade_id": "inf", "amount": float("inf")},
            {"trade_id": "venue", "exchange": "ftx"},
            {"trade_id": "sym", "symbol": "DOGE/USDT"},
            {"trade_id": "future", "ts": NOW + timedelta(hours=1)},
            {"trade_id": None},
            {"trade_id": "dup"},
            {"trade_id": "dup"},
            {"trade_id": "conflict", "price": 1.0},
            {"trade_id": "conflict", "price": 2.0},
        ]
    )
    checked = run(df)
    assert checked.clean["trade_id"].to_list() == ["ok", "dup"]
    assert checked.exact_duplicates == 1
    assert checked.reconciles
    got = dict(
        zip(
            checked.quarantined["payload"].str.json_decode().struct.field("trade_id"),
            checked.quarantined["check"],
            strict=True,
        )
    )
    assert got == {
        "nan": "price_positive",
        "neg": "price_positive",
        "zero": "amount_positive",
        "inf": "amount_positive",
        "venue": "exchange_known",
        "sym": "symbol_known",
        "future": "not_in_future",
        None: "trade_id_required",
        "conflict": "unique_key",
    }
    assert checked.quarantined["reason"].null_count() == 0
    assert checked.quality == 2 / 13


def test_empty_input():
    checked = run(trades([{}]).clear())
    assert checked.received == 0 and checked.reconciles and checked.quality == 1.0
