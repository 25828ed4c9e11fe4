"""The one timestamp parser of every input path: replay files, contracts, ``sentinance detect``,
``watch --trades``, ``forecast evaluate``, the settings' window and the CLI's options.

Why one: four parsers with four rule sets read the same replay file differently (epoch seconds
came out right in one path and as 1970 in another). The rules, everywhere:

* a datetime column: naive values are UTC, aware ones are converted to UTC; a date is its
  midnight UTC;
* a number (or a text that is a number) is an epoch time whose unit follows from its magnitude:
  below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds (so
  every unit reads right for any time between 1973 and 5138); non-finite numbers are invalid;
* a text is ISO-8601: ``2026-11-15``, ``2026-11-15T12:00``, ``2026-11-15 12:00:00.123``, with an
  optional ``Z`` or ``+hh:mm`` offset; without an offset it is UTC;
* a text with a numeric day and month before a 4-digit year (``5-7-2022 04:24``,
  ``30/06/2022``: news exports write these) is read day-first or month-first, whichever the
  whole column allows (a first number above 12 means day-first, a second number above 12
  month-first); a column both readings fit, or neither, is not guessed: it is invalid;
* anything else is invalid: :func:`parse_series` returns null for it (``strict=False``, the
  contracts then quarantine the row with a reason) or raises :class:`TimestampError` naming the
  column, the first bad values and the accepted forms (``strict=True``).

Everything comes out as ``Datetime("ms", "UTC")`` (:data:`TS`).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from sentinance_assets.lib.schemas import TS

ACCEPTED = (
    "epoch seconds, milliseconds, microseconds or nanoseconds, or ISO-8601 text "
    "(2026-11-15, 2026-11-15T12:00:00, optional Z or +hh:mm; no offset means UTC)"
)


class TimestampError(ValueError):
    """Values that are not a timestamp in any accepted form; the message shows some."""


def _from_epoch(values: pl.Series) -> pl.Series:
    v = values.cast(pl.Float64)
    mag = v.abs()
    ms = pl.select(
        pl.when(~v.is_finite())
        .then(None)
        .when(mag < 1e11)
        .then(v * 1000)
        .when(mag < 1e14)
        .then(v)
        .when(mag < 1e17)
        .then(v / 1000)
        .when(mag < 1e20)
        .then(v / 1e6)
        .otherwise(None)
        .round(0)
        .cast(pl.Int64)
    ).to_series()
    return ms.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").rename(values.name)


def _from_text(text: pl.Series) -> pl.Series:
    stripped = text.str.strip_chars()
    numeric = stripped.cast(pl.Float64, strict=False)
    iso = stripped.str.replace(r"(?i)z$", "+00:00").str.replace(r"^(\d{4}-\d\d-\d\d)[ t]", "${1}T")
    # seconds are optional ("2026-11-15T12:00"): add them so one format reads both
    iso = iso.str.replace(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d)($|[+-])", "${1}:00${2}")
    with_zone = iso.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="ms", strict=False, time_zone="UTC"
    )
    naive = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ms", strict=False)
    day_only = iso.str.to_datetime("%Y-%m-%d", time_unit="ms", strict=False)
    naive = naive.fill_null(day_only).dt.replace_time_zone("UTC")
    out = _from_epoch(numeric).fill_null(with_zone.cast(TS)).fill_null(naive.cast(TS))
    return out.fill_null(_from_day_month_year(stripped))


_DMY = r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$"


def _from_day_month_year(text: pl.Series) -> pl.Series:
    """``D-M-YYYY [HH:MM[:SS]]`` or ``M-D-YYYY ...``, the order decided for the whole column."""
    parts = text.str.extract_groups(_DMY).struct.unnest()
    first, second = parts["1"].cast(pl.Int32), parts["2"].cast(pl.Int32)
    day_first = bool((first > 12).any())
    month_first = bool((second > 12).any())
    if day_first == month_first:  # no value tells the order (or the values contradict)
        return pl.Series(text.name, [None] * text.len(), dtype=TS)
    day, month = (first, second) if day_first else (second, first)
    frame = pl.DataFrame(
        {
            "y": parts["3"].cast(pl.Int32),
            "mo": month,
            "d": day,
            "h": parts["4"].cast(pl.Int32).fill_null(0),
            "mi": parts["5"].cast(pl.Int32).fill_null(0),
            "s": parts["6"].cast(pl.Int32).fill_null(0),
        }
    )
    valid = (
        pl.col("mo").is_between(1, 12)
        & pl.col("d").is_between(1, 31)
        & pl.col("h").is_between(0, 23)
        & pl.col("mi").is_between(0, 59)
        & pl.col("s").is_between(0, 59)
    )
    return frame.select(
        pl.when(valid)
        .then(pl.datetime("y", "mo", "d", "h", "mi", "s", time_unit="ms", time_zone="UTC"))
        .alias(text.name)
    ).to_series()


def parse_series(series: pl.Series, *, strict: bool = True) -> pl.Series:
    """``series`` as UTC milliseconds (:data:`TS`), by the module's rules.

    ``strict=True`` raises :class:`TimestampError` when a non-null value cannot be read;
    ``strict=False`` returns null for it.
    """
    s = series
    dtype = s.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            s = s.dt.replace_time_zone("UTC")
        out = s.dt.convert_time_zone("UTC").cast(TS)
    elif dtype == pl.Date:
        out = s.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").cast(TS)
    elif dtype.is_numeric():
        out = _from_epoch(s).cast(TS)
    elif dtype == pl.Null:
        out = s.cast(TS)
    else:
        if dtype == pl.Object:
            s = pl.Series(s.name, [None if v is None else str(v) for v in s], dtype=pl.String)
        try:
            text = s.cast(pl.String)
        except Exception:  # noqa: BLE001 - lists, structs: nothing here is a time
            text = pl.Series(s.name, [None] * s.len(), dtype=pl.String)
        out = _from_text(text)
    out = out.rename(series.name)
    if strict:
        bad = series.filter(out.is_null() & series.is_not_null())
        if bad.len():
            shown = ", ".join(repr(v) for v in bad.head(3).to_list())
            raise TimestampError(
                f"{series.name or 'timestamp'}: {bad.len()} value(s) are not a timestamp "
                f"(e.g. {shown}); accepted: {ACCEPTED}"
            )
    return out


def parse_expr(column: str, *, strict: bool = True) -> pl.Expr:
    """:func:`parse_series` as an expression over ``column`` (for ``with_columns``)."""
    return pl.col(column).map_batches(lambda s: parse_series(s, strict=strict), return_dtype=TS)


def parse_time(value: str | int | float | datetime, *, what: str = "time") -> datetime:
    """One value (a CLI option, a setting) as an aware UTC datetime; :class:`TimestampError`
    names ``what`` when it cannot be read."""
    series = pl.Series(what, [value])
    if isinstance(value, str):
        series = series.cast(pl.String)
    try:
        parsed = parse_series(series, strict=True)
    except TimestampError:
        raise TimestampError(f"{what}={value!r} is not a time; accepted: {ACCEPTED}") from None
    result = parsed.item()
    if result is None:
        raise TimestampError(f"{what} is empty; accepted: {ACCEPTED}")
    return result
