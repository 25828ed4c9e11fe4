"""Forecasting I/O glue: candles in (warehouse or file), forecaster outputs out as project rows.

The lifecycle itself (walk-forward evaluation, registry, promotion, serving, drift) is plain ML
in :mod:`ml.forecast_lifecycle`; what needs the warehouse or the project's table schemas stays
here, so that ``ml/`` never imports ``sentinance_assets``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ml.forecast_lifecycle import ForecastRun, forecast_latest
from ml.forecaster import TrainedForecaster
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS, TS
from sentinance_assets.lib.timestamps import parse_series
from sentinance_assets.lib.warehouse import reading


def load_hourly_candles(read_path: Path, exchange: str) -> pl.DataFrame:
    """1-hour candles of every symbol on ``exchange`` from the published marts."""
    with reading(read_path) as conn:
        df = conn.execute(
            "select symbol, ts, open, high, low, close, volume from marts.candles "
            "where timeframe = '1h' and exchange = ? order by symbol, ts",
            [exchange],
        ).pl()
    return df.with_columns(pl.col("ts").cast(TS))


def read_candles_file(path: str | Path) -> pl.DataFrame:
    """1-hour candles from CSV or Parquet: ``timestamp, symbol, open, high, low, close, volume``.
    ``timestamp`` is any form :mod:`~sentinance_assets.lib.timestamps` reads. Rows are
    sorted; exact duplicate ``(symbol, timestamp)`` rows keep the first occurrence. Returns
    the ``symbol, ts, ...`` layout of :func:`ml.features.build_features`.
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pl.read_parquet(path)
    else:
        df = pl.read_csv(path, infer_schema_length=10000, try_parse_dates=False)
    df = df.rename({c: c.strip().lower() for c in df.columns})
    need = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (need {', '.join(need)})")
    df = df.with_columns(parse_series(df["timestamp"], strict=True).alias("timestamp"))
    return (
        df.select(
            pl.col("symbol").cast(pl.String),
            pl.col("timestamp").alias("ts"),
            *[pl.col(c).cast(pl.Float64) for c in need[2:]],
        )
        .unique(["symbol", "ts"], keep="first", maintain_order=True)
        .sort("symbol", "ts")
    )


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
