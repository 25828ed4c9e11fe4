"""Ingest contracts: split what a source delivered into clean rows and quarantined rows.

A contract is a pandera ``DataFrameSchema`` (polars backend) plus the layout the rows must
conform to. Checking a batch runs in four vectorised steps:

1. **Coerce.** Sources hand over records as received: a column may be missing, hold strings
   where numbers belong, or timestamps as ISO text or epoch numbers. Each declared column is
   cast to its declared type without raising; a value that was present but does not parse
   becomes null *and* is remembered, so the ``<column>_type`` check quarantines it with the
   original value.
2. **Validate** with pandera, ``lazy=True`` so every failure of every row is collected
   (``SchemaErrors.failure_cases``). Each failure case carries the row index; rows map back to
   the check that failed first (in the contract's priority order) and a readable reason that
   lists every failing check with the value as received. A batch that passes every rule (one
   vectorised pass over the same expressions) is not handed to pandera: it would find nothing.
3. **Deduplicate.** Rows equal in every value (``ingested_at`` aside) are exact duplicates:
   one is kept, the others counted. Rows with the same key and different values are
   conflicting duplicates: all of them are quarantined, since we cannot know which is right,
   unless they differ only by rounding (``_rounding_copies``: real files repeat a bar with
   its numbers rounded to fewer decimals, like CryptoDataDownload's hourly files in 2020):
   then the most precise copy is kept and the others are counted as ``rounded_duplicates``.
4. **Account.** Nothing is dropped silently: received = clean + quarantined + exact
   duplicates, and each quarantined row keeps the check, the reason and the original record as
   JSON (non-finite floats kept as the strings ``"NaN"``, ``"inf"``, ``"-inf"``).

Timeliness: a timestamp more than ``FUTURE_SKEW`` ahead of the check time is rejected; a row
that arrived (``ingested_at``, else the check time) more than ``LATE_AFTER`` after its
timestamp is *late*: it stays clean, carries ``late = true`` (a column of the raw layout,
derived here from the coerced times, never taken from the source) and is counted in
``Checked.late`` and the metadata. The count is the sum of the flags, so the two cannot
disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandera.polars as pa
import polars as pl

from sentinance_assets.lib.schemas import LATE_AFTER as LATE_AFTER  # re-export (timeliness)
from sentinance_assets.lib.schemas import (
    QUARANTINE_COLUMNS,
    RAW_CANDLES,
    RAW_NEWS,
    RAW_TRADES,
    TS,
    Dataset,
)
from sentinance_assets.lib.timestamps import parse_series

FUTURE_SKEW = timedelta(minutes=5)
CONSISTENCY_TOLERANCE = 0.001  # cost vs price x amount, relative
# Plausibility bounds: far outside any real market, inside what a units or parsing bug yields.
MIN_PRICE, MAX_PRICE = 1e-12, 1e9
MAX_AMOUNT = 1e12
MAX_VOLUME = 1e15
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)  # the Bitcoin genesis block
MAX_TITLE_CHARS = 1000
SIDES = ("buy", "sell")
_TIMEFRAME_RE = r"^[1-9][0-9]*[smhdwM]$"
_MARKUP_RE = r"(?i)<\s*/?\s*[a-z!?][^>]*>|javascript\s*:|&lt;\s*/?\s*script|\bon[a-z]+\s*="
_URL_RE = r"(?i)^https?://[^\s<>\"']+$"

ROW = "__row"  # row number in the batch as received
RAW = "__raw__"  # prefix of the as-received copy of a column that had to be cast
_ROW_TYPE = pl.UInt32


@dataclass(frozen=True)
class Rule:
    """One named check: ``valid`` is true where a row passes (null counts as a pass)."""

    check: str
    reason: str
    valid: pl.Expr
    column: str | None = None  # reported value (as received) in the reason
    attach: str | None = None  # pandera column carrying the check (default: ``column``)


@dataclass(frozen=True)
class Contract:
    """What one entity's rows must satisfy: a pandera schema plus the layout to coerce to.

    ``columns`` is what a source delivers and the rules check (the dataset's
    ``received_columns``); ``dataset`` is the stored layout, whose derived columns (``late``)
    the contract computes on the clean rows.
    """

    entity: str
    columns: dict[str, pl.DataType]
    time_column: str
    rules: tuple[Rule, ...]
    schema: pa.DataFrameSchema
    dataset: Dataset

    @property
    def priority(self) -> dict[str, int]:
        return {r.check: i for i, r in enumerate(self.rules)}

    @property
    def by_check(self) -> dict[str, Rule]:
        return {r.check: r for r in self.rules}


@dataclass
class Checked:
    """The outcome of one check: clean rows (stored layout, ``late`` flagged), quarantine rows
    and the counts that must reconcile. ``late`` is the number of clean rows flagged late."""

    clean: pl.DataFrame
    quarantined: pl.DataFrame
    received: int
    exact_duplicates: int
    late: int = 0
    missing_columns: list[str] = field(default_factory=list)
    unreadable_files: int = 0
    rounded_duplicates: int = 0  # copies of a kept row that differ only by rounding

    @property
    def reconciles(self) -> bool:
        return self.received == (
            self.clean.height
            + self.quarantined.height
            + self.exact_duplicates
            + self.rounded_duplicates
        )

    @property
    def quality(self) -> float:
        return 1.0 if self.received == 0 else self.clean.height / self.received

    def metadata(self) -> dict[str, float | int | dict[str, int] | list[str]]:
        reasons: dict[str, int] = {}
        if self.quarantined.height:
            counts = self.quarantined.group_by("check").len().sort("len", descending=True)
            for row in counts.iter_rows():
                reasons[row[0]] = int(row[1])
        return {
            "received": self.received,
            "clean": self.clean.height,
            "quarantined": self.quarantined.height,
            "exact_duplicates": self.exact_duplicates,
            "rounded_duplicates": self.rounded_duplicates,
            "late": self.late,
            "unreadable_files": self.unreadable_files,
            "missing_columns": list(self.missing_columns),
            "quality": round(self.quality, 6),
            "quarantine_by_check": reasons,
        }


def combine(parts: Sequence[Checked]) -> Checked:
    """Several landed days as one outcome (a run that lands a range of days reports once)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        raise ValueError("nothing to combine")
    return Checked(
        clean=pl.concat([p.clean for p in parts], how="vertical_relaxed"),
        quarantined=pl.concat([p.quarantined for p in parts], how="vertical_relaxed"),
        received=sum(p.received for p in parts),
        exact_duplicates=sum(p.exact_duplicates for p in parts),
        late=sum(p.late for p in parts),
        rounded_duplicates=sum(p.rounded_duplicates for p in parts),
        missing_columns=sorted({c for p in parts for c in p.missing_columns}),
        unreadable_files=sum(p.unreadable_files for p in parts),
    )


# --------------------------------------------------------------------------- rule helpers


def _required(cols: Sequence[str], columns: dict[str, pl.DataType]) -> list[Rule]:
    """Absent or null. A value that was present but did not parse is the type rule's."""
    return [
        Rule(
            f"{c}_required",
            f"{c} is missing",
            pl.col(c).is_not_null() | (pl.col(f"{RAW}{c}") if columns[c] != pl.String else False),
        )
        for c in cols
    ]


def _parsed(cols: Sequence[str], kinds: dict[str, str]) -> list[Rule]:
    """Present in the input but not readable as the declared type."""
    return [
        Rule(
            f"{c}_type",
            f"{c} is not {kinds[c]}",
            pl.col(c).is_not_null() | ~pl.col(f"{RAW}{c}"),
            column=c,
        )
        for c in cols
    ]


def _finite_positive(col: str) -> Rule:
    c = pl.col(col)
    return Rule(
        f"{col}_positive", f"{col} must be a finite number > 0", c.is_finite() & (c > 0), col
    )


def _between(col: str, lo: float, hi: float) -> Rule:
    c = pl.col(col)
    return Rule(
        f"{col}_plausible",
        f"{col} is outside the plausible range [{lo:g}, {hi:g}]",
        ~(c.is_finite() & (c > 0)) | ((c >= lo) & (c <= hi)),  # only positive values
        col,
    )


def _symbol_known(symbols: tuple[str, ...]) -> pl.Expr:
    """A configured unified symbol, or any market of a configured bare asset (BTC -> BTC/*)."""
    unified = [s for s in symbols if "/" in s]
    bare = [s for s in symbols if "/" not in s]
    parts = pl.col("symbol").str.split("/")
    market_of_bare = (parts.list.len() == 2) & parts.list.first().is_in(bare)
    market_of_bare = market_of_bare & (parts.list.last().str.len_chars() > 0)
    return pl.col("symbol").is_in(unified) | market_of_bare


def _venue_rules(exchanges: tuple[str, ...], symbols: tuple[str, ...]) -> list[Rule]:
    return [
        Rule(
            "exchange_known",
            f"exchange is not configured ({', '.join(exchanges)})",
            pl.col("exchange").is_in(exchanges),
            "exchange",
        ),
        Rule(
            "symbol_known",
            f"symbol is not a market of the configured symbols ({', '.join(symbols)})",
            _symbol_known(symbols),
            "symbol",
        ),
    ]


def _market_rule() -> Rule:
    parts = pl.col("symbol").str.split("/")
    return Rule(
        "market_consistent",
        "base/quote do not match the symbol",
        (parts.list.len() != 2)
        | ((pl.col("base") == parts.list.first()) & (pl.col("quote") == parts.list.last())),
        attach="base",
    )


def _time_rules(col: str, now: datetime) -> list[Rule]:
    return [
        Rule(
            "not_in_future",
            f"{col} is more than {int(FUTURE_SKEW.total_seconds())} s in the future",
            pl.col(col) <= pl.lit(now + FUTURE_SKEW).cast(TS),
            col,
        ),
        Rule(
            "time_plausible",
            f"{col} is before {EARLIEST.date()} (wrong epoch unit?)",
            pl.col(col) >= pl.lit(EARLIEST).cast(TS),
            col,
        ),
    ]


def _schema(entity: str, columns: dict[str, pl.DataType], rules: list[Rule]) -> pa.DataFrameSchema:
    """A pandera schema whose checks are the rules, attached to the column they report."""

    def make(rule: Rule) -> pa.Check:
        expr = rule.valid.fill_null(True).alias("valid")

        def fn(data: pa.PolarsData, expr: pl.Expr = expr) -> pl.LazyFrame:
            return data.lazyframe.select(expr)

        return pa.Check(fn, name=rule.check, description=rule.reason)

    per_column: dict[str, list[pa.Check]] = {c: [] for c in columns}
    frame_checks: list[pa.Check] = []
    for rule in rules:
        # Column-level checks only: pandera renders each failing row of a frame-level check as
        # JSON (seconds for 50k failures); a column check reports the value (milliseconds).
        target = rule.attach or rule.column or rule.check.removesuffix("_required")
        (per_column[target] if target in per_column else frame_checks).append(make(rule))
    return pa.DataFrameSchema(
        {c: pa.Column(t, nullable=True, checks=per_column[c]) for c, t in columns.items()},
        checks=frame_checks,
        name=entity,
        strict=False,  # the row number and as-received copies ride along
        coerce=False,  # coercion is ours: it must never raise and must remember what failed
    )


def _contract(dataset: Dataset, time_column: str, rules: list[Rule]) -> Contract:
    entity = dataset.name
    columns = dataset.received_columns
    names = [r.check for r in rules]
    if len(names) != len(set(names)):
        raise ValueError(f"{entity}: duplicate check names {names}")
    return Contract(
        entity, columns, time_column, tuple(rules), _schema(entity, columns, rules), dataset
    )


_KINDS = {pl.Float64: "a number", TS: "a timestamp", pl.Boolean: "a boolean"}


def _type_rules(columns: dict[str, pl.DataType]) -> list[Rule]:
    typed = [c for c, t in columns.items() if t != pl.String]
    kinds = {c: _KINDS.get(columns[c], str(columns[c])) for c in typed}
    return _parsed(typed, kinds)


# --------------------------------------------------------------------------- contracts


def trade_rules(exchanges: tuple[str, ...], symbols: tuple[str, ...], now: datetime) -> Contract:
    cols = RAW_TRADES.received_columns
    price, amount = pl.col("price"), pl.col("amount")
    notional = price * amount
    return _contract(
        RAW_TRADES,
        "ts",
        [
            *_required(["exchange", "symbol", "trade_id", "ts", "price", "amount"], cols),
            *_type_rules(cols),
            *_venue_rules(exchanges, symbols),
            _market_rule(),
            _finite_positive("price"),
            _finite_positive("amount"),
            _between("price", MIN_PRICE, MAX_PRICE),
            Rule(
                "amount_plausible",
                f"amount is above the plausible maximum {MAX_AMOUNT:g}",
                ~amount.is_finite() | (amount <= MAX_AMOUNT),
                "amount",
            ),
            Rule("side_valid", "side must be 'buy' or 'sell'", pl.col("side").is_in(SIDES), "side"),
            *_time_rules("ts", now),
            Rule(
                "cost_consistent",
                f"cost differs from price x amount by more than {CONSISTENCY_TOLERANCE:.1%}",
                pl.col("cost").is_null()
                | (
                    pl.col("cost").is_finite()
                    & ((pl.col("cost") - notional).abs() <= CONSISTENCY_TOLERANCE * notional.abs())
                ),
                "cost",
            ),
        ],
    )


def candle_rules(exchanges: tuple[str, ...], symbols: tuple[str, ...], now: datetime) -> Contract:
    cols = RAW_CANDLES.received_columns
    ohlc = ("open", "high", "low", "close")
    vol = pl.col("volume")
    return _contract(
        RAW_CANDLES,
        "ts",
        [
            *_required(["exchange", "symbol", "timeframe", "ts", *ohlc], cols),
            *_type_rules(cols),
            *_venue_rules(exchanges, symbols),
            _market_rule(),
            Rule(
                "timeframe_valid",
                "timeframe must look like 1m, 5m, 1h, 1d",
                pl.col("timeframe").str.contains(_TIMEFRAME_RE),
                "timeframe",
            ),
            *[_finite_positive(c) for c in ohlc],
            *[_between(c, MIN_PRICE, MAX_PRICE) for c in ohlc],
            Rule(
                "volume_non_negative",
                "volume must be a finite number >= 0",
                vol.is_finite() & (vol >= 0),
                "volume",
            ),
            Rule(
                "volume_plausible",
                f"volume is above the plausible maximum {MAX_VOLUME:g}",
                ~vol.is_finite() | (vol <= MAX_VOLUME),
                "volume",
            ),
            Rule(
                "ohlc_consistent",
                "high must be >= max(open, close) and low <= min(open, close)",
                (pl.col("high") >= pl.max_horizontal("open", "close"))
                & (pl.col("low") <= pl.min_horizontal("open", "close")),
                attach="high",
            ),
            *_time_rules("ts", now),
        ],
    )


def news_rules(now: datetime) -> Contract:
    cols = RAW_NEWS.received_columns
    title = pl.col("title")
    return _contract(
        RAW_NEWS,
        "published",
        [
            *_required(["news_id", "title", "link", "published"], cols),
            *_type_rules(cols),
            Rule("title_not_blank", "title is blank", title.str.strip_chars() != "", "title"),
            Rule(
                "title_markup",
                "title contains HTML or script markup",
                ~title.str.contains(_MARKUP_RE),
                "title",
            ),
            Rule(
                "title_length",
                f"title is longer than {MAX_TITLE_CHARS} characters",
                title.str.len_chars() <= MAX_TITLE_CHARS,
                "title",
            ),
            Rule(
                "link_valid",
                "link must be an http(s) URL",
                pl.col("link").str.contains(_URL_RE),
                "link",
            ),
            *_time_rules("published", now),
        ],
    )


# --------------------------------------------------------------------------- coercion


def _cast(s: pl.Series, dtype: pl.DataType) -> pl.Series:
    if s.dtype == dtype:
        return s
    if dtype == TS:
        return parse_series(s, strict=False)
    if dtype == pl.String:
        if s.dtype == pl.Object:
            return s.map_elements(str, return_dtype=pl.String)
        try:
            return s.cast(pl.String)
        except Exception:  # noqa: BLE001 - nested types: keep their JSON text
            return pl.DataFrame({"v": s}).select(pl.struct("v").struct.json_encode()).to_series()
    if dtype == pl.Boolean and s.dtype == pl.String:
        low = s.str.strip_chars().str.to_lowercase()
        return low.replace_strict(
            {"true": True, "1": True, "false": False, "0": False}, default=None, return_dtype=dtype
        )
    if s.dtype == pl.String:
        s = s.str.strip_chars()
    if s.dtype == pl.Object:  # arbitrary Python objects: parse each one's text
        s = pl.Series(s.name, [None if v is None else str(v).strip() for v in s], dtype=pl.String)
    try:
        return s.cast(dtype, strict=False)
    except Exception:  # noqa: BLE001 - e.g. a list or struct where a number belongs
        return pl.Series(s.name, [None] * s.len(), dtype=dtype)


def _coerce(df: pl.DataFrame, columns: dict[str, pl.DataType]) -> tuple[pl.DataFrame, list[str]]:
    """The declared columns, cast; an as-received copy of each that needed casting."""
    missing = [c for c in columns if c not in df.columns]
    out: list[pl.Series] = [pl.Series(ROW, range(df.height), dtype=_ROW_TYPE)]
    for c, t in columns.items():
        if c in missing:
            out.append(pl.Series(c, [None] * df.height, dtype=t))
            if t != pl.String:
                out.append(pl.Series(f"{RAW}{c}", [False] * df.height, dtype=pl.Boolean))
            continue
        s = df.get_column(c)
        cast = _cast(s, t).alias(c)
        if t != pl.String:
            present = s.is_not_null()
            if s.dtype == pl.String:  # blank text is an absent value, not a bad one
                present = present & (s.str.strip_chars() != "")
            out.append(present.fill_null(False).alias(f"{RAW}{c}"))
        out.append(cast)
    return pl.DataFrame(out), missing


# --------------------------------------------------------------------------- check


def check(
    df: pl.DataFrame,
    contract: Contract,
    key: list[str],
    *,
    source: str,
    run_id: str,
    now: datetime | None = None,
    ignore_for_duplicates: tuple[str, ...] = ("ingested_at",),
    day: str | date | None = None,
) -> Checked:
    """Validate ``df`` against ``contract``, then the uniqueness rule on ``key``.

    With ``day`` (the partition being landed), rows whose time falls outside that UTC day are
    quarantined too (``in_partition``): they would otherwise land in the wrong partition.
    """
    now = now or datetime.now(UTC)
    received = df.height
    if received == 0:  # nothing to coerce or check (a quiet day, a source without data)
        missing = [c for c in contract.columns if c not in df.columns]
        return Checked(contract.dataset.empty(), empty_quarantine(), 0, 0, 0, missing)
    coerced, missing = _coerce(df, contract.columns)
    coerced = coerced.with_columns(
        pl.col("ingested_at").fill_null(pl.lit(now).cast(TS)),
        pl.col("source").fill_null(pl.lit(source)),
    )
    if {"symbol", "base", "quote"} <= set(contract.columns):  # derivable, so derive
        parts = pl.col("symbol").str.split("/")
        two = parts.list.len() == 2
        coerced = coerced.with_columns(
            pl.col("base").fill_null(pl.when(two).then(parts.list.first())),
            pl.col("quote").fill_null(pl.when(two).then(parts.list.last())),
        )

    failures = _failures(coerced, contract)
    if day is not None:
        failures = pl.concat([failures, _outside_day(coerced, contract, day)])
    tagged = _first_failure(failures, contract, df)

    bad = coerced.join(tagged, on=ROW, how="inner")
    good = coerced.join(tagged, on=ROW, how="anti").select(ROW, *contract.columns)

    value_cols = [c for c in contract.columns if c not in ignore_for_duplicates]
    deduped = good.unique(subset=value_cols, keep="first", maintain_order=True)
    exact_duplicates = good.height - deduped.height
    conflicting_keys = (
        deduped.group_by(key).len().filter(pl.col("len") > 1).drop("len")
        if deduped.height
        else deduped.select(key).clear()
    )
    conflicts = deduped.join(conflicting_keys, on=key, how="semi", nulls_equal=True)
    clean = deduped.join(conflicting_keys, on=key, how="anti", nulls_equal=True)
    kept, conflicts = _rounding_copies(conflicts, key, [c for c in value_cols if c not in key])
    rounded_duplicates = 0
    if kept.height:
        rounded = deduped.join(kept.select(key), on=key, how="semi", nulls_equal=True).height
        rounded_duplicates = rounded - kept.height
        clean = pl.concat([clean, kept.select(clean.columns)])
    conflicts = conflicts.select(
        ROW,
        pl.lit("unique_key").alias("__check"),
        pl.lit(f"conflicting duplicate: same {', '.join(key)} with different values").alias(
            "__reason"
        ),
    )
    rejected = pl.concat([bad.select(ROW, "__check", "__reason"), conflicts]).sort(ROW)
    clean = clean.sort(contract.time_column, ROW, nulls_last=True).select(list(contract.columns))
    clean = _stored_layout(clean, contract)
    late = int(clean.get_column("late").sum())  # the flags are the count
    quarantined = _to_quarantine(df, rejected, source, run_id, now)
    return Checked(
        clean,
        quarantined,
        received,
        exact_duplicates,
        late,
        missing,
        rounded_duplicates=rounded_duplicates,
    )


def _decimals(col: str) -> pl.Expr:
    """Decimals of a float as written (shortest round-trip form, trailing zeros dropped)."""
    text = pl.col(col).cast(pl.String)
    frac = text.str.extract(r"\.(\d*?)0*$", 1).str.len_chars().fill_null(0).cast(pl.Int32)
    # scientific notation (1e-05): as precise as a float can be
    return pl.when(text.str.contains("e", literal=True)).then(15).otherwise(frac)


def _rounding_copies(
    conflicts: pl.DataFrame, key: Sequence[str], value_cols: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split conflicting copies into (one kept row per key whose copies differ only by
    rounding, the rows still in conflict).

    The kept row is the most precise copy (most decimals over the float columns). Every other
    copy must equal it in every non-float column and, in each float column, lie within half a
    unit of its own last decimal of the kept value (what rounding the kept value to that many
    decimals gives), or equal it when it is a whole number (1.0 may be 1.000 rounded to
    nothing, or a real 1). Anything else stays a conflict: every copy goes to quarantine.
    """
    if conflicts.is_empty():
        return conflicts.clear(), conflicts
    floats = [c for c in value_cols if conflicts.schema[c].is_float()]
    others = [c for c in value_cols if c not in floats]
    if not floats:
        return conflicts.clear(), conflicts
    work = conflicts.with_columns(
        pl.sum_horizontal(*(_decimals(c) for c in floats)).alias("__precision"),
        *(_decimals(c).alias(f"__dec_{c}") for c in floats),
    )
    best = work.sort("__precision", ROW, descending=[True, False]).unique(
        key, keep="first", maintain_order=True
    )
    paired = work.join(
        best.select(*key, *(pl.col(c).alias(f"__best_{c}") for c in [*floats, *others])),
        on=key,
        nulls_equal=True,
    )
    agree = [pl.col(c).eq_missing(pl.col(f"__best_{c}")) for c in others]
    for c in floats:
        v, b = pl.col(c), pl.col(f"__best_{c}")
        dec = pl.col(f"__dec_{c}")
        # strictly inside half a unit (101 is no rounding of 101.5); a whole number (101.0)
        # could be written with any number of zeros, so it must be equal
        half_unit = 0.5 * pl.lit(10.0).pow(-dec) - 1e-9 * b.abs()
        rounded = (dec > 0) & ((v - b).abs() < half_unit)
        agree.append((v.is_null() & b.is_null()) | (v == b).fill_null(False) | rounded)
    verdict = paired.group_by(key).agg(pl.all_horizontal(*agree).all().alias("__ok"))
    ok_keys = verdict.filter(pl.col("__ok")).select(key)
    kept = best.join(ok_keys, on=key, how="semi", nulls_equal=True).select(conflicts.columns)
    still = conflicts.join(ok_keys, on=key, how="anti", nulls_equal=True)
    return kept, still


def _stored_layout(clean: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Clean rows in the dataset's stored layout, derived columns (``late``) computed here.

    Only from the coerced, validated columns: whatever the source sent under a derived
    column's name is ignored (a source cannot know when we received its record). A clean row
    always has its time and ``ingested_at`` (filled with the check time), so ``late`` is never
    null here.
    """
    return contract.dataset.conform(clean)


def _passes_every_rule(coerced: pl.DataFrame, contract: Contract) -> bool:
    """Whether pandera would report nothing: every column has its declared type and every rule
    holds on every row (the same expressions pandera's checks evaluate, in one vectorised
    pass). A clean batch, the common case, so skips pandera's per-check machinery (tens of
    milliseconds a batch, most of a replayed day's cost); anything else, or any doubt, goes
    through pandera."""
    schema = coerced.schema
    if any(schema.get(c) != t for c, t in contract.columns.items()):
        return False
    try:
        verdict = coerced.select(
            pl.all_horizontal([r.valid.fill_null(True) for r in contract.rules]).all()
        ).item()
    except Exception:  # noqa: BLE001 - let pandera report whatever this is
        return False
    return verdict is True


def _failures(coerced: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """(row, check) of every failure pandera reports, all checks at once (lazy); a batch every
    rule passes is not handed to pandera (see :func:`_passes_every_rule`)."""
    if _passes_every_rule(coerced, contract):
        return pl.DataFrame(schema={ROW: _ROW_TYPE, "check": pl.String})
    try:
        contract.schema.validate(coerced, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        known = contract.by_check
        fc = fc.select(pl.col("index").cast(_ROW_TYPE).alias(ROW), pl.col("check"))
        rowless = fc.filter(pl.col(ROW).is_null() | ~pl.col("check").is_in(list(known)))
        if rowless.height:
            # a schema-level failure (wrong dtype after coercion...): no row passes unseen
            what = ", ".join(sorted(set(rowless["check"].cast(pl.String).to_list())))
            raise ContractError(f"{contract.entity}: schema-level failure ({what})") from exc
        return fc
    return pl.DataFrame(schema={ROW: _ROW_TYPE, "check": pl.String})


def _outside_day(coerced: pl.DataFrame, contract: Contract, day: str | date) -> pl.DataFrame:
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    t = pl.col(contract.time_column)
    out = (t < pl.lit(start).cast(TS)) | (t >= pl.lit(start + timedelta(days=1)).cast(TS))
    return coerced.filter(out.fill_null(False)).select(
        ROW, pl.lit(f"in_partition:{d.isoformat()}").alias("check")
    )


def _first_failure(failures: pl.DataFrame, contract: Contract, raw: pl.DataFrame) -> pl.DataFrame:
    """One row per failing record: the first check by priority, a reason listing them all."""
    if failures.height == 0:
        return pl.DataFrame(schema={ROW: _ROW_TYPE, "__check": pl.String, "__reason": pl.String})
    prio = contract.priority
    reason_of = {r.check: r.reason for r in contract.rules}
    column_of = {r.check: r.column for r in contract.rules if r.column}
    partition = failures.filter(pl.col("check").str.starts_with("in_partition:"))
    rules = failures.filter(~pl.col("check").str.starts_with("in_partition:"))
    rules = rules.with_columns(
        pl.col("check").replace_strict(prio, return_dtype=pl.Int32).alias("__prio"),
        pl.col("check").replace_strict(reason_of, return_dtype=pl.String).alias("__text"),
    )
    # the value as received, for checks that are about one column: gathered per column, only
    # for the failing rows
    rules = rules.with_columns(
        pl.col("check")
        .replace_strict(column_of, default=None, return_dtype=pl.String)
        .alias("__col")
    )
    pieces = [rules.filter(~pl.col("__col").is_in(raw.columns).fill_null(False))]
    for col in rules["__col"].drop_nulls().unique().to_list():
        if col not in raw.columns:
            continue
        sub = rules.filter(pl.col("__col") == col)
        got = _as_text(raw.get_column(col).gather(sub[ROW].cast(pl.Int64)))
        text = pl.concat_str(pl.col("__text"), pl.lit(" (got "), got.fill_null("null"), pl.lit(")"))
        pieces.append(sub.with_columns(text.alias("__text")))
    rules = pl.concat(pieces).drop("__col")
    day_text = partition.select(
        ROW,
        pl.lit("in_partition").alias("check"),
        pl.lit(len(prio)).cast(pl.Int32).alias("__prio"),
        pl.concat_str(
            pl.lit(f"{contract.time_column} is outside the partition day "),
            pl.col("check").str.split(":").list.last(),
        ).alias("__text"),
    )
    every = pl.concat([rules, day_text], how="vertical_relaxed").unique([ROW, "check"])
    return (
        every.sort(ROW, "__prio")
        .group_by(ROW, maintain_order=True)
        .agg(
            pl.col("check").first().alias("__check"),
            pl.col("__text").str.join("; ").alias("__reason"),
        )
    )


def _as_text(s: pl.Series) -> pl.Series:
    """Values as short readable text (repr-like: strings quoted, at most 80 characters)."""
    if s.dtype == pl.String:
        return ("'" + s.str.slice(0, 80) + "'").fill_null("null")
    try:
        text = s.cast(pl.String)
    except Exception:  # noqa: BLE001 - nested or object values
        text = s.map_elements(lambda v: repr(v), return_dtype=pl.String)
    return text.str.slice(0, 80).fill_null("null")


class ContractError(RuntimeError):
    """The contract itself is broken (not the data): a programming error."""


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_COLUMNS)


def payload_json(df: pl.DataFrame) -> pl.Series:
    """Each row as received, as a JSON object; NaN and infinities kept as strings."""
    if df.width == 0:
        return pl.Series("payload", ["{}"] * df.height, dtype=pl.String)
    parts: list[pl.Expr] = []
    for c, t in df.schema.items():
        col = pl.col(c)
        if t == pl.Object or t == pl.Binary:
            col = col.map_elements(repr, return_dtype=pl.String)
        field_json = pl.struct(col.alias(c)).struct.json_encode().str.slice(1)
        field_json = field_json.str.head(-1)
        if t.is_float():
            text = (
                pl.when(pl.col(c).is_nan()).then(pl.lit("NaN")).otherwise(pl.col(c).cast(pl.String))
            )
            field_json = (
                pl.when(pl.col(c).is_finite() | pl.col(c).is_null())
                .then(field_json)
                .otherwise(pl.struct(text.alias(c)).struct.json_encode().str.slice(1).str.head(-1))
            )
        parts.append(field_json)
    expr = pl.concat_str([pl.lit("{"), pl.concat_str(parts, separator=","), pl.lit("}")])
    return df.select(expr.alias("payload")).to_series()


def quarantine_rows(
    records: pl.DataFrame,
    checks: pl.Expr | str,
    reasons: pl.Expr | str,
    *,
    source: str,
    run_id: str,
    now: datetime,
) -> pl.DataFrame:
    """Quarantine rows for ``records`` (as received), e.g. for files that could not be read."""
    if records.height == 0:
        return empty_quarantine()

    def as_expr(v: pl.Expr | str) -> pl.Expr:
        return v if isinstance(v, pl.Expr) else pl.lit(v)

    return records.select(
        as_expr(checks).cast(pl.String).alias("check"),
        as_expr(reasons).cast(pl.String).alias("reason"),
        payload_json(records).alias("payload"),
        pl.lit(source).alias("source"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(now).cast(TS).alias("quarantined_at"),
    )


def _to_quarantine(
    raw: pl.DataFrame, rejected: pl.DataFrame, source: str, run_id: str, now: datetime
) -> pl.DataFrame:
    if rejected.height == 0:
        return empty_quarantine()
    records = raw[rejected[ROW].cast(pl.Int64)]
    return pl.DataFrame(
        {
            "check": rejected["__check"],
            "reason": rejected["__reason"],
            "payload": payload_json(records),
        }
    ).select(
        "check",
        "reason",
        "payload",
        pl.lit(source).alias("source"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(now).cast(TS).alias("quarantined_at"),
    )
