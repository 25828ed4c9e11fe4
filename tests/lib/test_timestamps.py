"""The one timestamp parser: every accepted form, every path that reads a time, clear errors."""

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from sentinance_assets.lib.timestamps import (
    TS,
    TimestampError,
    parse_expr,
    parse_series,
    parse_time,
)

T = datetime(2023, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
EPOCH_S = 1677673815.25


@pytest.mark.parametrize(
    "values",
    [
        [EPOCH_S],  # seconds (fractional)
        [int(EPOCH_S * 1_000)],  # milliseconds
        [int(EPOCH_S * 1_000_000)],  # microseconds
        [int(EPOCH_S * 1_000_000_000)],  # nanoseconds
        [str(int(EPOCH_S * 1_000))],  # a number as text
        ["2023-03-01T12:30:15.250Z"],
        ["2023-03-01 12:30:15.25+00:00"],
        ["2023-03-01T14:30:15.250+02:00"],
        ["2023-03-01T12:30:15.250"],  # naive text: UTC
        [datetime(2023, 3, 1, 12, 30, 15, 250_000)],  # naive datetime: UTC
        [T.astimezone(timezone(timedelta(hours=-5)))],  # aware, another zone
    ],
    ids=[
        "s",
        "ms",
        "us",
        "ns",
        "ms-text",
        "iso-z",
        "iso-space",
        "iso-offset",
        "naive-text",
        "naive-dt",
        "aware-dt",
    ],
)
def test_every_form_reads_the_same_instant(values) -> None:
    got = parse_series(pl.Series("ts", values))
    assert got.dtype == TS
    assert got.to_list() == [T]


def test_seconds_ms_us_ns_agree_in_one_column() -> None:
    s = pl.Series([1677628800, 1677628800000, 1677628800000000, 1677628800000000000])
    got = parse_series(s)
    assert got.n_unique() == 1 and got[0] == datetime(2023, 3, 1, tzinfo=UTC)


def test_dates_and_minutes_without_seconds() -> None:
    assert parse_series(pl.Series(["2023-03-01"])).item() == datetime(2023, 3, 1, tzinfo=UTC)
    assert parse_series(pl.Series([date(2023, 3, 1)])).item() == datetime(2023, 3, 1, tzinfo=UTC)
    got = parse_series(pl.Series(["2023-03-01T12:30", "2023-03-01 12:30Z"]))
    assert got.to_list() == [datetime(2023, 3, 1, 12, 30, tzinfo=UTC)] * 2


def test_strict_names_the_column_and_the_bad_values() -> None:
    s = pl.Series("timestamp", ["2023-03-01", "yesterday-ish", None, "nan"])
    with pytest.raises(TimestampError, match=r"timestamp: 2 value\(s\).*yesterday-ish"):
        parse_series(s)
    lenient = parse_series(s, strict=False)
    assert lenient.null_count() == 3  # null stays null; the two bad ones become null


def test_non_finite_and_absurd_numbers_are_invalid() -> None:
    s = pl.Series("ts", [float("inf"), float("nan"), 1e25])
    assert parse_series(s, strict=False).null_count() == 3
    with pytest.raises(TimestampError):
        parse_series(s)


def test_expression_form_and_scalars() -> None:
    df = pl.DataFrame({"t": ["2023-03-01T12:30:15.250Z", str(EPOCH_S)]})
    assert df.select(parse_expr("t"))["t"].to_list() == [T, T]
    assert parse_time("2023-03-01T12:30:15.25Z") == T
    assert parse_time(EPOCH_S) == T
    with pytest.raises(TimestampError, match="--until='soon'"):
        parse_time("soon", what="--until")


def test_every_input_path_reads_epoch_seconds_alike(tmp_path: Path) -> None:
    """A file with epoch seconds reads as the same instants in the replay source, the contracts,
    ``sentinance detect`` / ``watch --trades`` and ``forecast evaluate`` (it read as 1970 in
    some of them before there was one parser)."""
    from sentinance_assets.lib import contracts
    from sentinance_assets.lib.detection.watch import read_trades_file
    from sentinance_assets.lib.forecast_io import read_candles_file
    from sentinance_assets.lib.sources.replay import normalise_trades

    secs = [1677628800, 1677628860]
    want = [datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 1, 0, 1, tzinfo=UTC)]
    trades = tmp_path / "trades.csv"
    trades.write_text(
        "exchange,symbol,trade_id,timestamp,price,amount,side\n"
        + "".join(f"binance,BTC/USDT,{i},{s},100,1,buy\n" for i, s in enumerate(secs))
    )
    assert read_trades_file(trades)["ts"].to_list() == want
    replay_rows = normalise_trades(pl.read_csv(trades), trades, tmp_path)
    assert replay_rows["ts"].to_list() == want
    assert contracts._cast(pl.Series("ts", secs), TS).to_list() == want
    candles = tmp_path / "candles.csv"
    candles.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        + "".join(f"{s},BTC/USDT,1,1,1,1,1\n" for s in secs)
    )
    assert read_candles_file(candles)["ts"].to_list() == want


def test_day_first_and_month_first_columns_are_told_apart() -> None:
    day_first = parse_series(pl.Series("date", ["5-7-2022 04:24", "30-6-2022 23:59"]))
    assert day_first.to_list() == [
        datetime(2022, 7, 5, 4, 24, tzinfo=UTC),
        datetime(2022, 6, 30, 23, 59, tzinfo=UTC),
    ]
    month_first = parse_series(pl.Series("date", ["07/05/2022", "06/30/2022"]))
    assert month_first.to_list() == [
        datetime(2022, 7, 5, tzinfo=UTC),
        datetime(2022, 6, 30, tzinfo=UTC),
    ]
    with pytest.raises(TimestampError, match="5-7-2022"):  # either order fits: not guessed
        parse_series(pl.Series("date", ["5-7-2022", "6-7-2022"]))
