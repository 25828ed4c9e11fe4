from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from sentinance_assets.lib import contracts
from sentinance_assets.lib.schemas import RAW_TRADES, TS

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


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


# ---------------------------------------------------------------- pandera, coercion, payloads

KEY = ["exchange", "symbol", "trade_id"]


def test_contracts_are_pandera_polars_schemas_with_named_checks():
    import pandera.polars as pa

    c = contracts.trade_rules(("binance",), ("BTC",), NOW)
    assert isinstance(c.schema, pa.DataFrameSchema)
    names = {ch.name for col in c.schema.columns.values() for ch in col.checks}
    names |= {ch.name for ch in c.schema.checks}
    assert {"price_positive", "cost_consistent", "not_in_future", "price_type"} <= names
    for make in (contracts.candle_rules(("binance",), ("BTC",), NOW), contracts.news_rules(NOW)):
        assert isinstance(make.schema, pa.DataFrameSchema) and len(make.rules) >= 10


def test_every_failure_of_a_row_is_in_its_reason_first_one_is_the_check():
    df = trades([{"trade_id": "x", "exchange": "ftx", "price": -1.0, "side": "hold"}])
    checked = run(df)
    (row,) = checked.quarantined.to_dicts()
    assert row["check"] == "exchange_known"
    assert "got 'ftx'" in row["reason"] and "got -1.0" in row["reason"]
    assert "side must be 'buy' or 'sell' (got 'hold')" in row["reason"]


def test_strings_where_numbers_belong_are_parsed_or_quarantined():
    df = trades([{"trade_id": "a"}, {"trade_id": "b"}, {"trade_id": "c"}]).with_columns(
        pl.Series("price", ["100.5", " 7 ", "1e400x"]),
        pl.Series("amount", ["1", "2", "3"]),
        pl.Series("ts", ["2026-11-10T11:00:00Z", "2026-11-10 13:00:00+02:00", "2026-11-10"]),
    )
    checked = run(df)
    assert checked.clean["price"].to_list() == [100.5, 7.0]
    assert checked.clean["ts"].to_list() == [
        datetime(2026, 11, 10, 11, tzinfo=UTC),
        datetime(2026, 11, 10, 11, tzinfo=UTC),
    ]
    assert checked.quarantined["check"].to_list() == ["price_type"]
    assert "(got '1e400x')" in checked.quarantined["reason"][0]
    assert checked.quarantined["payload"].str.json_decode()[0]["price"] == "1e400x"


def test_epoch_ms_and_naive_datetimes_are_utc():
    ms = int(NOW.timestamp() * 1000)
    df = trades([{"trade_id": "a"}]).with_columns(pl.Series("ts", [ms]))
    assert run(df).clean["ts"].to_list() == [NOW]
    naive = trades([{"trade_id": "a"}]).with_columns(
        pl.col("ts").dt.replace_time_zone(None).alias("ts")
    )
    assert run(naive).clean["ts"].to_list() == [NOW]


def test_a_nested_value_where_a_number_belongs_does_not_crash():
    df = trades([{"trade_id": "a"}, {"trade_id": "b"}]).with_columns(
        pl.Series("price", [[1.0], [2.0, 3.0]])
    )
    checked = run(df)
    assert checked.reconciles and checked.clean.height == 0
    assert set(checked.quarantined["check"]) == {"price_type"}


def test_payload_keeps_non_finite_values_and_is_valid_json():
    import json

    df = trades([{"trade_id": "n", "price": float("nan"), "amount": float("-inf")}])
    payload = json.loads(run(df).quarantined["payload"][0])
    assert payload["price"] == "NaN" and payload["amount"] == "-inf"
    assert payload["trade_id"] == "n" and payload["ts"].startswith("2026-11-10T12:00:00")


def test_cost_consistency_tolerance():
    df = trades(
        [
            {"trade_id": "ok", "cost": 100.05},  # 0.05 % off
            {"trade_id": "off", "cost": 100.2},  # 0.2 % off
            {"trade_id": "none", "cost": None},
        ]
    )
    checked = run(df)
    assert sorted(checked.clean["trade_id"]) == ["none", "ok"]
    assert checked.quarantined["check"].to_list() == ["cost_consistent"]


def test_future_skew_and_late_arrivals():
    df = trades(
        [
            {"trade_id": "skew", "ts": NOW + timedelta(minutes=4)},
            {"trade_id": "future", "ts": NOW + timedelta(minutes=6)},
            {"trade_id": "late", "ts": NOW - timedelta(minutes=6)},
            {"trade_id": "fresh", "ts": NOW - timedelta(minutes=4)},
        ]
    )
    checked = run(df)
    assert sorted(checked.clean["trade_id"]) == ["fresh", "late", "skew"]
    assert checked.late == 1 and checked.metadata()["late"] == 1
    flags = dict(checked.clean.select("trade_id", "late").iter_rows())
    assert flags == {"late": True, "fresh": False, "skew": False}


# ------------------------------------------------------------------ per-record late flag

CANDLE = {"timeframe": "1m", "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5}
# minutes between the record's time (a 1m bar: its close) and its arrival -> late?
DELAYS = {6: True, 120: True, 5: False, 1: False}  # exactly LATE_AFTER is not late


def _late_batch(entity: str) -> tuple[pl.DataFrame, contracts.Contract, list[str]]:
    """One record per delay in DELAYS, all arriving at NOW; each *claims* the wrong ``late``
    (a source cannot know it: the contract derives it and ignores the claim)."""
    rows = []
    for minutes, is_late in DELAYS.items():
        when = NOW - timedelta(minutes=minutes)
        if entity == "trades":
            row = {"trade_id": f"t{minutes}", "ts": when}
        elif entity == "candles":
            # the bar closes at ``when``: lateness counts from the close
            row = {"exchange": "binance", "symbol": "BTC/USDT", **CANDLE}
            row["ts"] = when - timedelta(minutes=1)
        else:
            link = f"https://news.example/{minutes}"
            row = {"news_id": f"n{minutes}", "title": f"BTC item {minutes}", "link": link}
            row["published"] = when
        rows.append({**row, "ingested_at": NOW, "late": not is_late})
    if entity == "trades":
        rules = contracts.trade_rules(("binance",), ("BTC",), NOW)
        return trades(rows), rules, ["exchange", "symbol", "trade_id"]
    time_col = "published" if entity == "news" else "ts"
    df = pl.DataFrame(rows).with_columns(pl.col(time_col).cast(TS), pl.col("ingested_at").cast(TS))
    if entity == "candles":
        rules = contracts.candle_rules(("binance",), ("BTC",), NOW)
        return df, rules, ["exchange", "symbol", "timeframe", "ts"]
    return df, contracts.news_rules(NOW), ["news_id"]


@pytest.mark.parametrize("entity", ["trades", "candles", "news"])
def test_late_records_are_flagged_per_record_still_clean_and_counted(entity: str):
    df, rules, key = _late_batch(entity)
    checked = contracts.check(df, rules, key, source="t", run_id="r", now=NOW)
    assert checked.quarantined.height == 0 and checked.clean.height == len(DELAYS)  # all clean
    assert checked.clean.schema["late"] == pl.Boolean
    own_time = {
        "trades": pl.col("ts"),
        "candles": pl.col("ts") + pl.duration(minutes=1),  # the 1m bar's close
        "news": pl.col("published"),
    }[entity]
    got = dict(
        checked.clean.select(
            (pl.col("ingested_at") - own_time).dt.total_minutes(), "late"
        ).iter_rows()
    )
    assert got == DELAYS
    assert checked.late == sum(DELAYS.values()) == checked.clean["late"].sum()
    assert checked.metadata()["late"] == checked.clean["late"].sum()
    assert checked.reconciles


def test_late_uses_the_check_time_when_the_source_gives_no_arrival_time():
    df = trades(
        [
            {"trade_id": "old", "ts": NOW - timedelta(hours=3), "ingested_at": None},
            {"trade_id": "new", "ts": NOW - timedelta(minutes=1), "ingested_at": None},
        ]
    )
    checked = run(df)
    assert dict(checked.clean.select("trade_id", "late").iter_rows()) == {
        "old": True,
        "new": False,
    }
    assert checked.late == 1


def test_a_bogus_late_value_from_a_source_never_quarantines_or_leaks():
    df = trades([{"trade_id": "a", "ts": NOW - timedelta(minutes=1)}]).with_columns(
        pl.lit("definitely").alias("late")
    )
    checked = run(df)
    assert checked.quarantined.height == 0
    assert checked.clean["late"].to_list() == [False]


def test_exact_duplicates_differing_in_arrival_are_one_record_flagged_from_the_first():
    df = trades(
        [
            {"trade_id": "d", "ts": NOW - timedelta(minutes=10), "ingested_at": NOW},
            {"trade_id": "d", "ts": NOW - timedelta(minutes=10), "ingested_at": NOW + HOUR},
        ]
    )
    checked = run(df)
    assert checked.exact_duplicates == 1 and checked.clean["late"].to_list() == [True]
    assert checked.late == 1 and checked.reconciles


def test_empty_input_has_the_stored_layout():
    checked = run(trades([{}]).clear())
    assert checked.clean.schema == pl.Schema(RAW_TRADES.columns)
    assert checked.late == 0


def test_empty_input_is_not_checked_but_reports_its_missing_columns(monkeypatch):
    monkeypatch.setattr(contracts, "_coerce", None)  # nothing to coerce: never called
    checked = run(pl.DataFrame(schema={"trade_id": pl.String, "price": pl.Float64}))
    assert checked.clean.schema == pl.Schema(RAW_TRADES.columns)
    assert checked.quarantined.height == 0 and checked.received == 0 and checked.reconciles
    assert "price" not in checked.missing_columns and "exchange" in checked.missing_columns


def test_a_batch_every_rule_passes_skips_pandera_with_the_same_outcome(monkeypatch):
    """Clean batches (most of every day) are not handed to pandera: one pass over the same
    rule expressions says it would report nothing. Any failing row goes through pandera."""
    import pandera.polars as pa

    calls = []
    validate = pa.DataFrameSchema.validate

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return validate(self, *args, **kwargs)

    monkeypatch.setattr(pa.DataFrameSchema, "validate", counting)
    clean = trades([{"trade_id": str(i), "side": "buy"} for i in range(5)])
    fast = run(clean)
    assert calls == [] and fast.clean.height == 5 and fast.quarantined.height == 0
    dirty = trades([{"trade_id": "a"}, {"trade_id": "b", "price": -1.0}])
    assert run(dirty).quarantined["check"].to_list() == ["price_positive"]
    assert calls == ["trades"]
    # the same outcome as pandera's, for every entity
    monkeypatch.setattr(contracts, "_passes_every_rule", lambda *_: False)
    slow = run(clean)
    assert fast.clean.equals(slow.clean) and fast.quarantined.equals(slow.quarantined)
    assert calls == ["trades", "trades"]


@pytest.mark.parametrize("entity", ["trades", "candles", "news"])
def test_the_rule_pass_agrees_with_pandera_on_clean_and_dirty_batches(entity):
    rules = {
        "trades": contracts.trade_rules(("binance",), ("BTC",), NOW),
        "candles": contracts.candle_rules(("binance",), ("BTC",), NOW),
        "news": contracts.news_rules(NOW),
    }[entity]
    base = {
        "trades": {"exchange": "binance", "symbol": "BTC/USDT", "trade_id": "1", "ts": NOW,
                   "price": 1.0, "amount": 1.0, "side": "buy"},
        "candles": {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m", "ts": NOW,
                    "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0},
        "news": {"news_id": "n", "title": "Bitcoin", "link": "https://x/1", "published": NOW},
    }[entity]  # fmt: skip
    bad = {"trades": {"price": "x"}, "candles": {"high": 0.1}, "news": {"link": "ftp://x"}}
    verdicts = []
    for rows in ([base, base], [base, {**base, **bad[entity]}]):
        coerced, _ = contracts._coerce(pl.DataFrame(rows), rules.columns)
        try:
            rules.schema.validate(coerced, lazy=True)
            pandera_passes = True
        except Exception:  # noqa: BLE001 - SchemaErrors: something failed
            pandera_passes = False
        assert contracts._passes_every_rule(coerced, rules) is pandera_passes
        verdicts.append(pandera_passes)
    assert verdicts == [True, False]


def test_bare_asset_means_any_market_unified_symbol_means_that_market():
    df = trades(
        [
            {"trade_id": "1", "symbol": "BTC/USD"},
            {"trade_id": "2", "symbol": "ETH/USDT"},
            {"trade_id": "3", "symbol": "ETH/USD"},
            {"trade_id": "4", "symbol": "BTC/"},
        ]
    )
    c = contracts.trade_rules(("binance",), ("BTC", "ETH/USDT"), NOW)
    checked = contracts.check(df, c, KEY, source="t", run_id="r", now=NOW)
    assert sorted(checked.clean["trade_id"]) == ["1", "2"]
    assert checked.quarantined["check"].to_list() == ["symbol_known", "symbol_known"]


def test_base_and_quote_are_derived_when_absent_and_must_agree():
    df = trades([{"trade_id": "a"}, {"trade_id": "b"}]).with_columns(
        pl.Series("base", [None, "ETH"], dtype=pl.String)
    )
    checked = run(df)
    assert checked.clean.select("base", "quote").rows() == [("BTC", "USDT")]
    assert checked.quarantined["check"].to_list() == ["market_consistent"]


def test_rows_outside_the_partition_day_are_quarantined():
    df = trades([{"trade_id": "in"}, {"trade_id": "out", "ts": NOW - timedelta(days=1)}])
    c = contracts.trade_rules(("binance",), ("BTC",), NOW)
    checked = contracts.check(df, c, KEY, source="t", run_id="r", now=NOW, day="2026-11-10")
    assert checked.clean["trade_id"].to_list() == ["in"]
    assert checked.quarantined["check"].to_list() == ["in_partition"]
    assert "2026-11-10" in checked.quarantined["reason"][0]


def test_missing_columns_are_reported():
    checked = run(trades([{"trade_id": "a"}]))  # no base, quote, cost, side, source
    assert checked.missing_columns == ["base", "quote", "cost", "side", "source"]
    assert checked.clean.height == 1 and checked.clean["source"].to_list() == ["t"]


def test_a_simulated_day_of_100k_trades_is_checked_in_well_under_two_seconds():

    import numpy as np

    n = 100_000
    rng = np.random.default_rng(0)
    price = rng.uniform(100, 200, n)
    amount = rng.pareto(2.0, n) + 0.001
    start = datetime(2026, 11, 10, tzinfo=UTC)
    ts = pl.datetime_range(start, start + timedelta(hours=12), "400ms", eager=True, time_unit="ms")
    df = pl.DataFrame(
        {
            "exchange": rng.choice(["binance", "coinbase"], n),
            "symbol": rng.choice(["BTC/USDT", "ETH/USDT"], n),
            "base": None,
            "quote": None,
            "trade_id": [str(i) for i in range(n)],
            "ts": ts[:n],
            "price": price,
            "amount": amount,
            "cost": price * amount,
            "side": rng.choice(["buy", "sell"], n),
            "source": "sim",
            "ingested_at": NOW,
        }
    ).with_columns(  # 1 % bad prices, 0.1 % exact duplicates
        pl.when(pl.int_range(n) % 100 == 7).then(-1.0).otherwise(pl.col("price")).alias("price")
    )
    df = pl.concat([df, df.head(100)])
    c = contracts.trade_rules(("binance", "coinbase"), ("BTC", "ETH"), NOW)
    contracts.check(df.head(1000), c, KEY, source="s", run_id="r", now=NOW)  # warm up
    checked = contracts.check(df, c, KEY, source="s", run_id="r", now=NOW, day="2026-11-10")
    # a copied bad row is quarantined twice (bad rows are never deduplicated away)
    assert checked.reconciles and checked.exact_duplicates == 99
    assert checked.quarantined.height == 1001 and checked.clean.height == 99_000


def test_python_objects_are_parsed_one_by_one():
    df = trades([{"trade_id": "a"}, {"trade_id": "b"}]).with_columns(
        pl.Series("price", [object(), 101.5], dtype=pl.Object)
    )
    checked = run(df)
    assert checked.clean["price"].to_list() == [101.5]
    assert checked.quarantined["check"].to_list() == ["price_type"]


def test_copies_that_differ_only_by_rounding_keep_the_precise_one():
    """CryptoDataDownload's hourly files repeat 2,649 bars per market, the second copy rounded
    to two decimals (volume 2678.647488 and 2678.65): one bar, not a conflict."""
    df = trades(
        [
            {"trade_id": "r", "price": 11607.38, "amount": 2678.65},
            {"trade_id": "r", "price": 11607.38, "amount": 2678.647488},
            {"trade_id": "c", "price": 11607.38, "amount": 2678.62},  # not a rounding of
            {"trade_id": "c", "price": 11607.38, "amount": 2678.647488},
            {"trade_id": "i", "price": 100.0, "amount": 1.0},  # 100.4 rounds to 100.0, but
            {"trade_id": "i", "price": 100.4, "amount": 2.0},  # the amounts disagree
        ]
    )
    checked = run(df)
    assert checked.clean.select("trade_id", "amount").rows() == [("r", 2678.647488)]
    assert checked.rounded_duplicates == 1 and checked.exact_duplicates == 0
    assert sorted(checked.quarantined["check"].to_list()) == ["unique_key"] * 4
    assert checked.reconciles and checked.metadata()["rounded_duplicates"] == 1
