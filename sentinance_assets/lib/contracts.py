"""Ingest contracts: split what a source delivered into clean rows and quarantined rows.

Nothing is dropped silently. For every batch: received = clean + quarantined + exact
duplicates, and each quarantined row keeps the check that failed, a readable reason and the
original record as JSON, so an operator can see and replay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from sentinance_assets.lib.schemas import QUARANTINE_COLUMNS, TS

FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Rule:
    check: str
    reason: str
    bad: pl.Expr  # true where the row violates the rule


@dataclass
class Checked:
    clean: pl.DataFrame
    quarantined: pl.DataFrame
    received: int
    exact_duplicates: int

    @property
    def reconciles(self) -> bool:
        return self.received == self.clean.height + self.quarantined.height + self.exact_duplicates

    @property
    def quality(self) -> float:
        return 1.0 if self.received == 0 else self.clean.height / self.received

    def metadata(self) -> dict[str, float | int | dict[str, int]]:
        reasons: dict[str, int] = {}
        if self.quarantined.height:
            for row in self.quarantined.group_by("check").len().iter_rows():
                reasons[row[0]] = int(row[1])
        return {
            "received": self.received,
            "clean": self.clean.height,
            "quarantined": self.quarantined.height,
            "exact_duplicates": self.exact_duplicates,
            "quality": round(self.quality, 6),
            "quarantine_by_check": reasons,
        }


def _not_finite_positive(col: str) -> pl.Expr:
    c = pl.col(col)
    return c.is_null() | c.is_nan() | c.is_infinite() | (c <= 0)


def _required(cols: list[str]) -> list[Rule]:
    return [Rule(f"{c}_required", f"{c} is missing", pl.col(c).is_null()) for c in cols]


def trade_rules(exchanges: tuple[str, ...], symbols: tuple[str, ...], now: datetime) -> list[Rule]:
    return [
        *_required(["exchange", "symbol", "trade_id", "ts", "price", "amount"]),
        Rule("exchange_known", "exchange is not configured", ~pl.col("exchange").is_in(exchanges)),
        Rule("symbol_known", "symbol is not configured", ~_symbol_known(symbols)),
        Rule("price_positive", "price must be a finite number > 0", _not_finite_positive("price")),
        Rule(
            "amount_positive", "amount must be a finite number > 0", _not_finite_positive("amount")
        ),
        Rule("not_in_future", "timestamp is in the future", pl.col("ts") > now + FUTURE_SKEW),
    ]


def candle_rules(exchanges: tuple[str, ...], symbols: tuple[str, ...], now: datetime) -> list[Rule]:
    return [
        *_required(["exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close"]),
        Rule("exchange_known", "exchange is not configured", ~pl.col("exchange").is_in(exchanges)),
        Rule("symbol_known", "symbol is not configured", ~_symbol_known(symbols)),
        *[
            Rule(f"{c}_positive", f"{c} must be a finite number > 0", _not_finite_positive(c))
            for c in ("open", "high", "low", "close")
        ],
        Rule(
            "volume_non_negative",
            "volume must be a finite number >= 0",
            pl.col("volume").is_null() | ~pl.col("volume").is_finite() | (pl.col("volume") < 0),
        ),
        Rule(
            "ohlc_consistent",
            "high must be >= max(open, close) and low <= min(open, close)",
            (pl.col("high") < pl.max_horizontal("open", "close"))
            | (pl.col("low") > pl.min_horizontal("open", "close")),
        ),
        Rule("not_in_future", "timestamp is in the future", pl.col("ts") > now + FUTURE_SKEW),
    ]


def news_rules(now: datetime) -> list[Rule]:
    return [
        *_required(["news_id", "title", "link"]),
        Rule("title_not_blank", "title is blank", pl.col("title").str.strip_chars() == ""),
        Rule(
            "not_in_future",
            "published time is in the future",
            pl.col("published") > now + FUTURE_SKEW,
        ),
    ]


def _symbol_known(symbols: tuple[str, ...]) -> pl.Expr:
    """A configured unified symbol, or a market of a configured bare asset."""
    unified = [s for s in symbols if "/" in s]
    bare = [s for s in symbols if "/" not in s]
    return pl.col("symbol").is_in(unified) | pl.col("symbol").str.split("/").list.first().is_in(
        bare
    )


def check(
    df: pl.DataFrame,
    rules: list[Rule],
    key: list[str],
    *,
    source: str,
    run_id: str,
    now: datetime | None = None,
    ignore_for_duplicates: tuple[str, ...] = ("ingested_at",),
) -> Checked:
    """Apply ``rules`` then the uniqueness rule on ``key``.

    Rows with the same key and the same values (``ignore_for_duplicates`` aside) are exact
    duplicates: one is kept, the rest counted. Rows with the same key and different values are
    conflicting duplicates: all of them are quarantined, since we cannot know which is right.
    """
    now = now or datetime.now(UTC)
    received = df.height
    if received == 0:
        return Checked(df, empty_quarantine(), 0, 0)

    failed = pl.lit(None, dtype=pl.String)
    reason = pl.lit(None, dtype=pl.String)
    for rule in reversed(rules):  # the first failing rule wins
        failed = pl.when(rule.bad.fill_null(False)).then(pl.lit(rule.check)).otherwise(failed)
        reason = pl.when(rule.bad.fill_null(False)).then(pl.lit(rule.reason)).otherwise(reason)
    tagged = df.with_columns(failed.alias("__check"), reason.alias("__reason"))
    bad = tagged.filter(pl.col("__check").is_not_null())
    good = tagged.filter(pl.col("__check").is_null()).drop("__check", "__reason")

    value_cols = [c for c in good.columns if c not in ignore_for_duplicates]
    deduped = good.unique(subset=value_cols, keep="first", maintain_order=True)
    exact_duplicates = good.height - deduped.height
    conflicting_keys = deduped.group_by(key).len().filter(pl.col("len") > 1).drop("len")
    conflicts = deduped.join(conflicting_keys, on=key, how="semi")
    clean = deduped.join(conflicting_keys, on=key, how="anti")
    conflicts = conflicts.with_columns(
        pl.lit("unique_key").alias("__check"),
        pl.lit(f"conflicting duplicate: same {', '.join(key)} with different values").alias(
            "__reason"
        ),
    )
    quarantined = _to_quarantine(
        pl.concat([bad, conflicts], how="vertical_relaxed"), source, run_id, now
    )
    return Checked(clean, quarantined, received, exact_duplicates)


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_COLUMNS)


def _to_quarantine(df: pl.DataFrame, source: str, run_id: str, now: datetime) -> pl.DataFrame:
    if df.height == 0:
        return empty_quarantine()
    payload_cols = [c for c in df.columns if not c.startswith("__")]
    return df.select(
        pl.col("__check").alias("check"),
        pl.col("__reason").alias("reason"),
        pl.struct(payload_cols).struct.json_encode().alias("payload"),
        pl.lit(source).alias("source"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(now).cast(TS).alias("quarantined_at"),
    )
