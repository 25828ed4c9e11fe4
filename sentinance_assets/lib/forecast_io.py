"""Forecasting I/O glue: candles in (warehouse or file), forecaster outputs out as project rows.

The lifecycle itself (walk-forward evaluation, registry, promotion, serving, drift) is plain ML
in :mod:`ml.forecast_lifecycle`; what needs the warehouse or the project's table schemas stays
here, so that ``ml/`` never imports ``sentinance_assets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ml.forecast_lifecycle import ForecastRun, forecast_latest
from ml.forecaster import TrainedForecaster
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS, TS
from sentinance_assets.lib.timestamps import parse_series
from sentinance_assets.lib.warehouse import reading

#: An hour's intraday variance is used only when at least this many of its 60 one-minute
#: returns were observed; with fewer it would understate the hour's variance, and the
#: features fall back to the hourly squared return.
MIN_MINUTE_RETURNS = 30

HOURLY_SQL = f"""
with minutes as (
    select symbol, ts,
           ln(close) - ln(lag(close) over w) as r,
           ts - lag(ts) over w as step
    from marts.candles
    where timeframe = '1m' and exchange = $exchange and close > 0
    window w as (partition by symbol order by ts)
),
intraday as (
    -- the 1-minute return ending in minute bar ts belongs to the hour date_trunc('hour', ts);
    -- a step over a gap of up to an hour carries the move since the last trade, longer is dropped
    select symbol, date_trunc('hour', ts) as ts, sum(r * r) as realized_var, count(*) as n
    from minutes
    where r is not null and step <= interval 60 minute
    group by all
)
select c.symbol, c.ts, c.open, c.high, c.low, c.close, c.volume,
       case when i.n >= {MIN_MINUTE_RETURNS} then i.realized_var end as realized_var
from marts.candles as c
left join intraday as i on i.symbol = c.symbol and i.ts = c.ts
where c.timeframe = '1h' and c.exchange = $exchange
order by c.symbol, c.ts
"""


def load_hourly_candles(read_path: Path, exchange: str) -> pl.DataFrame:
    """1-hour candles of every symbol on ``exchange`` from the published marts, with each
    hour's ``realized_var`` (sum of squared 1-minute log returns) where the lake has 1-minute
    bars for at least :data:`MIN_MINUTE_RETURNS` of its minutes (null otherwise: the features
    then use the hourly return, see :mod:`ml.features`)."""
    with reading(read_path) as conn:
        df = conn.execute(HOURLY_SQL, {"exchange": exchange}).pl()
    return df.with_columns(pl.col("ts").cast(TS), pl.col("realized_var").cast(pl.Float64))


#: Accepted names of the time column, in order of preference (after lower-casing): the
#: project's own ``timestamp``, then CryptoDataDownload's ``unix`` / ``Unix Timestamp`` (epoch
#: s or ms; CDD's ``date`` column mixes ``2020-12-31 23:00:00`` with ``2017-08-17 05-AM``).
TIME_COLUMNS = ("timestamp", "unix", "unix timestamp", "ts", "time", "datetime", "date")
PRICE_COLUMNS = ("open", "high", "low", "close")
CANDLE_FILE_SUFFIXES = (".csv", ".parquet", ".pq")


def _read_table(path: Path) -> pl.DataFrame:
    """A CSV (every value as text; a banner line before the header is skipped, as in
    CryptoDataDownload's Gemini files) or a Parquet file."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return pl.read_parquet(path)
    with path.open(encoding="utf-8", errors="replace") as fh:
        first = fh.readline().strip().lower().split(",")
    banner = not ({c.strip() for c in first} & {*TIME_COLUMNS, "close"})
    return pl.read_csv(path, infer_schema=False, skip_rows=1 if banner else 0)


def _volume_column(columns: list[str], symbols: pl.Series) -> str | None:
    """``volume``, else the base-asset volume of CDD's ``Volume BTC, Volume USDT`` pair."""
    if "volume" in columns:
        return "volume"
    named = [c for c in columns if c.startswith("volume ")]
    first = symbols.drop_nulls().head(1).to_list()
    base = str(first[0]).replace("-", "/").split("/")[0].lower() if first else ""
    for c in named:
        if c.removeprefix("volume ").strip() == base:
            return c
    return named[0] if named else None


def read_candles_file(path: str | Path) -> pl.DataFrame:
    """1-hour candles from a CSV or Parquet file, in the ``symbol, ts, open, high, low, close,
    volume`` layout of :func:`ml.features.build_features`.

    Columns are matched case-insensitively: a time column (:data:`TIME_COLUMNS`; any form
    :mod:`~sentinance_assets.lib.timestamps` reads, epoch units by magnitude per value),
    ``symbol``, ``open, high, low, close`` and ``volume`` (or CryptoDataDownload's ``Volume
    <base>``). CryptoDataDownload exports read as downloaded (banner line, newest first, mixed
    s/ms epochs). Values that are not numbers become null (the features then flag the bar).
    Rows are sorted by ``symbol, ts``; duplicated bars stay, in file order (the features keep
    the first and count the others).
    """
    path = Path(path)
    df = _read_table(path)
    df = df.rename({c: c.strip().lower() for c in df.columns})
    time_col = next((c for c in TIME_COLUMNS if c in df.columns), None)
    volume = _volume_column(df.columns, df["symbol"]) if "symbol" in df.columns else None
    missing = [
        name
        for name, ok in (
            ("timestamp", time_col),
            ("symbol", "symbol" in df.columns),
            *[(c, c in df.columns) for c in PRICE_COLUMNS],
            ("volume", volume),
        )
        if not ok
    ]
    if missing or time_col is None or volume is None:
        need = "timestamp (or unix), symbol, open, high, low, close, volume"
        raise ValueError(f"{path}: missing columns {missing} (need {need})")
    if df["symbol"].null_count():
        raise ValueError(f"{path}: {df['symbol'].null_count()} rows without a symbol")
    return df.select(
        pl.col("symbol").cast(pl.String),
        parse_series(df[time_col], strict=True).alias("ts"),
        *[pl.col(c).cast(pl.Float64, strict=False) for c in PRICE_COLUMNS],
        pl.col(volume).cast(pl.Float64, strict=False).alias("volume"),
    ).sort("symbol", "ts", maintain_order=True)


def candle_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files behind ``paths``: a file as is, a folder's CSV and Parquet files by name."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(f for f in p.iterdir() if f.suffix.lower() in CANDLE_FILE_SUFFIXES)
            if not inside:
                raise ValueError(f"{p}: no CSV or Parquet file in the folder")
            files += inside
        else:
            files.append(p)
    return files


def read_candles_files(paths: Sequence[str | Path]) -> pl.DataFrame:
    """:func:`read_candles_file` of every file behind ``paths`` (:func:`candle_files`), in
    order, as one frame (duplicated bars across files stay, in argument order)."""
    frames = [read_candles_file(f) for f in candle_files(paths)]
    return pl.concat(frames).sort("symbol", "ts", maintain_order=True)


def evaluation_rows(run: ForecastRun, now: datetime | None = None) -> pl.DataFrame:
    """A training run's evaluation table as ``ml.forecast_evaluation`` rows."""
    return FORECAST_EVALUATION.conform(
        run.evaluation.with_columns(
            pl.lit(run.run_id).alias("run_id"),
            pl.lit(run.version).alias("model_version"),
            pl.lit(now or datetime.now(UTC)).cast(TS).alias("evaluated_at"),
        )
    )


def forecast_rows(
    model: TrainedForecaster, candles: pl.DataFrame, exchange: str, now: datetime | None = None
) -> pl.DataFrame:
    """:func:`ml.forecast_lifecycle.forecast_latest` as ``ml.forecasts`` rows of ``exchange``."""
    return FORECASTS.conform(
        forecast_latest(model, candles).with_columns(
            pl.lit(exchange).alias("exchange"),
            pl.lit(now or datetime.now(UTC)).cast(TS).alias("created_at"),
        )
    )
