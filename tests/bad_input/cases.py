"""Bad inputs, each one kind of trouble, surrounded by good records.

A case names the entity, the bad records (overrides of a good base record), how the whole
column is typed as the source hands it over, and where the bad records must end up: the check
that quarantines them, or ``None`` when they must come out clean (out-of-order rows, padded
numbers) or be dropped as exact duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from sentinance_assets.lib.schemas import TS

DAY = "2026-11-10"
T0 = datetime(2026, 11, 10, 12, tzinfo=UTC)
NOW = datetime(2026, 11, 10, 23, 0, tzinfo=UTC)  # explicit "now" for land_day cases
EXCHANGES = ("binance", "coinbase")
SYMBOLS = ("BTC", "ETH/USDT")  # a bare asset (any BTC market) and one unified symbol
KEYS = {
    "trades": ["exchange", "symbol", "trade_id"],
    "candles": ["exchange", "symbol", "timeframe", "ts"],
    "news": ["news_id"],
}
ID = {"trades": "trade_id", "candles": "ts", "news": "news_id"}


def good(entity: str, i: int) -> dict:
    ts = T0 + timedelta(minutes=i)
    if entity == "trades":
        return {
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "base": "BTC",
            "quote": "USDT",
            "trade_id": f"g{i}",
            "ts": ts,
            "price": 100.0 + i,
            "amount": 0.5,
            "cost": (100.0 + i) * 0.5,
            "side": "buy",
            "source": "test",
            "ingested_at": ts + timedelta(seconds=1),
        }
    if entity == "candles":
        return {
            "exchange": "coinbase",
            "symbol": "BTC/USD",
            "base": "BTC",
            "quote": "USD",
            "timeframe": "1m",
            "ts": ts,
            "open": 100.0,
            "high": 102.0,
            "low": 99.0,
            "close": 101.0,
            "volume": 3.0,
            "source": "test",
            "ingested_at": ts + timedelta(minutes=1),
        }
    return {
        "news_id": f"n{i}",
        "title": f"Bitcoin story {i}",
        "summary": "text",
        "link": f"https://news.example/{i}",
        "published": ts,
        "published_missing": False,
        "publisher": "Example",
        "assets": "BTC",
        "source": "test",
        "ingested_at": ts + timedelta(minutes=2),
    }


@dataclass(frozen=True)
class Case:
    id: str
    entity: str
    bad: list[dict]  # overrides of good(entity, 100 + k)
    check: str | None  # expected quarantine check; None: the bad rows are clean / dropped
    dtypes: dict[str, pl.DataType] = field(default_factory=dict)  # column as the source types it
    drop: tuple[str, ...] = ()  # columns the source did not send at all
    reason: str = ""  # substring the quarantine reason must contain
    duplicates: int = 0  # exact duplicates expected
    all_bad: bool = False  # a batch-wide defect: no good row can survive it


BIG = 10.0**15
COPY = "__copy_of__"  # override key: start from good row N instead of a new record
CASES = [
    # ---- trades: numbers
    Case("price_nan", "trades", [{"price": float("nan")}], "price_positive", reason="got NaN"),
    Case("price_inf", "trades", [{"price": float("inf")}], "price_positive", reason="got inf"),
    Case("amount_neg_inf", "trades", [{"amount": float("-inf")}], "amount_positive"),
    Case("price_negative", "trades", [{"price": -5.0, "cost": -2.5}], "price_positive"),
    Case("price_zero", "trades", [{"price": 0.0, "cost": 0.0}], "price_positive"),
    Case("amount_zero", "trades", [{"amount": 0.0, "cost": 0.0}], "amount_positive"),
    Case("amount_negative", "trades", [{"amount": -1.0, "cost": None}], "amount_positive"),
    Case(
        "price_not_a_number",
        "trades",
        [{"price": "abc", "cost": None}],
        "price_type",
        dtypes={"price": pl.String},
        reason="got 'abc'",
    ),
    Case(
        "amount_decimal_comma",
        "trades",
        [{"amount": "0,5", "cost": None}],
        "amount_type",
        dtypes={"amount": pl.String},
    ),
    Case(
        "numbers_as_padded_text",
        "trades",
        [{"price": " 250.5 ", "amount": "2", "cost": "501"}],
        None,
        dtypes={"price": pl.String, "amount": pl.String, "cost": pl.String},
    ),
    Case("price_absurd", "trades", [{"price": BIG, "cost": BIG * 0.5}], "price_plausible"),
    Case("price_denormal", "trades", [{"price": 1e-300, "cost": None}], "price_plausible"),
    Case("amount_absurd", "trades", [{"amount": 1e20, "cost": None}], "amount_plausible"),
    Case("cost_inconsistent", "trades", [{"cost": 999.0}], "cost_consistent"),
    # ---- trades: completeness
    Case("price_missing", "trades", [{"price": None, "cost": None}], "price_required"),
    Case("trade_id_missing", "trades", [{"trade_id": None}], "trade_id_required"),
    Case("exchange_missing", "trades", [{"exchange": None}], "exchange_required"),
    Case(
        "required_column_absent",
        "trades",
        [{}],
        "amount_required",
        drop=("amount",),
        all_bad=True,
    ),
    Case("optional_columns_absent", "trades", [{}], None, drop=("cost", "side", "base")),
    # ---- trades: configured lists
    Case("unknown_symbol", "trades", [{"symbol": "DOGE/USDT"}], "symbol_known", reason="DOGE"),
    Case("unknown_quote_of_unified", "trades", [{"symbol": "ETH/BTC"}], "symbol_known"),
    Case("symbol_lowercase", "trades", [{"symbol": "btc/usdt"}], "symbol_known"),
    Case("symbol_without_quote", "trades", [{"symbol": "BTC"}], "symbol_known"),
    Case("unknown_exchange", "trades", [{"exchange": "ftx"}], "exchange_known"),
    Case("base_contradicts_symbol", "trades", [{"base": "ETH"}], "market_consistent"),
    Case("side_invalid", "trades", [{"side": "hold"}], "side_valid"),
    # ---- trades: time
    Case(
        "far_future",
        "trades",
        [{"ts": NOW + timedelta(days=400), "ingested_at": NOW}],
        "not_in_future",
    ),
    Case(
        "epoch_seconds_not_ms",  # the unit follows from the magnitude (lib/timestamps.py)
        "trades",
        [{"ts": int(T0.timestamp())}],
        None,
        dtypes={"ts": pl.Int64},
    ),
    Case(
        "epoch_implausibly_early",  # 1,000 s after 1970: a real epoch, but no market then
        "trades",
        [{"ts": 1000}],
        "time_plausible",
        dtypes={"ts": pl.Int64},
    ),
    Case(
        "timestamp_garbage",
        "trades",
        [{"ts": "yesterday-ish"}],
        "ts_type",
        dtypes={"ts": pl.String},
    ),
    Case("timestamp_missing", "trades", [{"ts": None}], "ts_required"),
    Case(
        "other_day",
        "trades",
        [{"ts": T0 - timedelta(days=1), "ingested_at": T0}],
        "in_partition",
    ),
    # ---- trades: uniqueness
    Case(
        "exact_duplicate",
        "trades",
        [{COPY: 1, "ingested_at": T0 + timedelta(hours=1)}],  # arrival time aside, identical
        None,
        duplicates=1,
    ),
    Case("out_of_order", "trades", [{"ts": T0 - timedelta(hours=3)}], None),
    Case(
        "conflicting_duplicate",
        "trades",
        [
            {"trade_id": "dup", "price": 1.0, "cost": 0.5},
            {"trade_id": "dup", "price": 2.0, "cost": 1.0},
        ],
        "unique_key",
    ),
    # ---- candles
    Case("candle_high_below_close", "candles", [{"high": 100.5}], "ohlc_consistent"),
    Case("candle_low_above_open", "candles", [{"low": 100.5}], "ohlc_consistent"),
    Case("candle_volume_negative", "candles", [{"volume": -1.0}], "volume_non_negative"),
    Case("candle_volume_nan", "candles", [{"volume": float("nan")}], "volume_non_negative"),
    Case("candle_open_zero", "candles", [{"open": 0.0, "low": 0.0}], "open_positive"),
    Case("candle_timeframe_bad", "candles", [{"timeframe": "1 minute"}], "timeframe_valid"),
    Case(
        "candle_conflicting_duplicate",
        "candles",
        [{"ts": T0, "close": 101.5}],  # same key as good row 0, another close
        "unique_key",
    ),
    # ---- news
    Case(
        "news_title_script",
        "news",
        [{"title": "<script>alert('x')</script> BTC moons"}],
        "title_markup",
    ),
    Case("news_title_html", "news", [{"title": 'BTC <img src=x onerror="boom">'}], "title_markup"),
    Case("news_title_blank", "news", [{"title": "   "}], "title_not_blank"),
    Case("news_title_huge", "news", [{"title": "B" * 5000}], "title_length"),
    Case("news_link_missing", "news", [{"link": None}], "link_required"),
    Case("news_link_javascript", "news", [{"link": "javascript:alert(1)"}], "link_valid"),
    Case("news_id_missing", "news", [{"news_id": None}], "news_id_required"),
    Case(
        "news_published_future",
        "news",
        [{"published": NOW + timedelta(days=30)}],
        "not_in_future",
    ),
    Case(
        "news_published_garbage",
        "news",
        [{"published": "Tuesday-ish"}],
        "published_type",
        dtypes={"published": pl.String},
    ),
    Case(
        "news_conflicting_id",
        "news",
        [{"news_id": "n1", "title": "Another story"}],
        "unique_key",
    ),
]

N_GOOD = 6


def _as_source_type(value: object, dtype: pl.DataType) -> object:
    if value is None:
        return None
    if dtype == pl.String:
        if isinstance(value, datetime):
            return value.isoformat()
        return value if isinstance(value, str) else repr(value)
    if dtype == pl.Int64 and isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return value


def build(case: Case) -> tuple[pl.DataFrame, list[dict], list[dict]]:
    """The batch as the source hands it over, its good records and its bad records."""
    goods = [good(case.entity, i) for i in range(N_GOOD)]
    bads = []
    for k, o in enumerate(case.bad):
        base = goods[o[COPY]] if COPY in o else good(case.entity, 100 + k)
        bads.append({**base, **{c: v for c, v in o.items() if c != COPY}})
    rows = goods[:3] + bads + goods[3:]
    cols = list(rows[0])
    typed = {c: case.dtypes.get(c) for c in cols if c in case.dtypes}
    records = [
        {
            c: (_as_source_type(r[c], typed[c]) if c in typed else r[c])
            for c in cols
            if c not in case.drop
        }
        for r in rows
    ]
    schema = {}
    for c in cols:
        if c in case.drop:
            continue
        if c in typed:
            schema[c] = typed[c]
        elif c in ("ts", "published", "ingested_at"):
            schema[c] = TS
        elif c in ("published_missing",):
            schema[c] = pl.Boolean
        elif isinstance(rows[0][c], float):
            schema[c] = pl.Float64
        else:
            schema[c] = pl.String
    return pl.DataFrame(records, schema=schema, strict=False), goods, bads
