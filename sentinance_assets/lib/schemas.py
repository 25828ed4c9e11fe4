"""Column layouts of every dataset Sentinance writes to its lake.

One home for the shape of the data: the simulator, the sources, the ML assets and the
detectors all produce frames with exactly these columns, and the warehouse exposes each
dataset as a DuckDB view under the schema named here. Timestamps are UTC everywhere
(``Datetime("ms", "UTC")`` in polars, ``TIMESTAMPTZ`` in DuckDB with the session pinned to
UTC), symbols are ccxt unified symbols (``BTC/USDT``) and exchanges ccxt ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

TS = pl.Datetime("ms", "UTC")

# Timeliness: a record that arrived (``ingested_at``) more than this after its own time is late.
LATE_AFTER = timedelta(minutes=5)


def late_flag(time_column: str) -> pl.Expr:
    """``late``: the record arrived (``ingested_at``) more than ``LATE_AFTER`` after its time.

    One definition for everyone: the contracts set it on every clean row, and
    :meth:`Dataset.conform` derives it for producers that write without a contract (the
    simulator, test fixtures) and for lake files written before the column existed. Null only
    when either time is unknown: we do not claim "on time" without evidence.
    """
    arrived_after = pl.col("ingested_at").cast(TS) - pl.col(time_column).cast(TS)
    return (arrived_after > pl.lit(LATE_AFTER)).alias("late")


# Milliseconds per unit of a ccxt timeframe ("15m", "4h", "1d", "1w"); months ("1M") have no
# fixed length and give null.
_TIMEFRAME_UNIT_MS: dict[str, int] = {
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}


def bar_length(timeframe: pl.Expr) -> pl.Expr:
    """A ccxt timeframe string as a bar length (``Duration``); null when not of the form
    ``<n><s|m|h|d|w>``."""
    n = timeframe.str.extract(r"^([1-9][0-9]*)[smhdw]$", 1).cast(pl.Int64)
    unit_ms = timeframe.str.slice(-1).replace_strict(
        _TIMEFRAME_UNIT_MS, default=None, return_dtype=pl.Int64
    )
    return pl.duration(milliseconds=n * unit_ms, time_unit="ms")


def candle_late_flag() -> pl.Expr:
    """``late`` for a bar: counted from its *close* (open ``ts`` + its timeframe), the moment it
    could first be fetched complete. From the open, every bar of 5 minutes or longer would be
    late however promptly it arrived, and the flag would say nothing. An unknown timeframe gives
    null, as an unknown time does."""
    closed = pl.col("ts").cast(TS) + bar_length(pl.col("timeframe"))
    arrived_after = pl.col("ingested_at").cast(TS) - closed
    return (arrived_after > pl.lit(LATE_AFTER)).alias("late")


@dataclass(frozen=True)
class Dataset:
    """A lake dataset: where its Parquet files live and which DuckDB view exposes them."""

    schema: str  # DuckDB schema of the view, also the first lake folder
    name: str  # view name and second lake folder
    columns: dict[str, pl.DataType]
    # Columns computed from the others (name -> expression), never taken from a source: a
    # source cannot know them (``late`` depends on when *we* received the record), so they are
    # not part of :attr:`received_columns` and :meth:`conform` derives them when absent.
    derived: Mapping[str, pl.Expr] = field(default_factory=dict, compare=False, repr=False)

    @property
    def received_columns(self) -> dict[str, pl.DataType]:
        """The layout a source delivers and a contract checks: every column but the derived."""
        return {c: t for c, t in self.columns.items() if c not in self.derived}

    @property
    def relpath(self) -> str:
        return f"{self.schema}/{self.name}"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.columns)

    def conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Select and cast to the declared layout; a missing column is a programming error.

        A missing *derived* column is computed from the others (a frame that already has it,
        e.g. one read back from the lake, keeps its values).
        """
        absent = [c for c in self.derived if c not in df.columns]
        if absent and all(c in df.columns for c in self.received_columns):
            df = df.with_columns([self.derived[c].alias(c) for c in absent])
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ValueError(f"{self.qualified}: frame lacks columns {missing}")
        return df.select([pl.col(c).cast(t) for c, t in self.columns.items()])


RAW_TRADES = Dataset(
    "raw",
    "trades",
    {
        "exchange": pl.String,
        "symbol": pl.String,
        "base": pl.String,
        "quote": pl.String,
        "trade_id": pl.String,
        "ts": TS,
        "price": pl.Float64,
        "amount": pl.Float64,
        "cost": pl.Float64,
        "side": pl.String,
        "source": pl.String,
        "ingested_at": TS,
        "late": pl.Boolean,  # arrived more than LATE_AFTER after ts; still clean
    },
    derived={"late": late_flag("ts")},
)

RAW_CANDLES = Dataset(
    "raw",
    "candles",
    {
        "exchange": pl.String,
        "symbol": pl.String,
        "base": pl.String,
        "quote": pl.String,
        "timeframe": pl.String,
        "ts": TS,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
        "source": pl.String,
        "ingested_at": TS,
        "late": pl.Boolean,  # arrived more than LATE_AFTER after the bar closed
    },
    derived={"late": candle_late_flag()},
)

RAW_NEWS = Dataset(
    "raw",
    "news",
    {
        "news_id": pl.String,
        "title": pl.String,
        "summary": pl.String,
        "link": pl.String,
        "published": TS,
        "published_missing": pl.Boolean,
        "publisher": pl.String,
        "assets": pl.String,  # comma-separated base assets the item mentions, e.g. "BTC,ETH"
        "source": pl.String,
        "ingested_at": TS,
        "late": pl.Boolean,  # arrived more than LATE_AFTER after published
    },
    derived={"late": late_flag("published")},
)

# Ground truth of the simulated market: what was injected, so detection is measurable.
RAW_MARKET_EVENTS = Dataset(
    "raw",
    "market_events",
    {
        "event_id": pl.String,
        "type": pl.String,  # volume_spike | whale | divergence | pump_and_dump
        "exchange": pl.String,
        "symbol": pl.String,
        "start_ts": TS,
        "end_ts": TS,
        "magnitude": pl.Float64,
        "description": pl.String,
    },
)

QUARANTINE_COLUMNS: dict[str, pl.DataType] = {
    "check": pl.String,
    "reason": pl.String,
    "payload": pl.String,  # the record as received, JSON
    "source": pl.String,
    "run_id": pl.String,
    "quarantined_at": TS,
}
QUARANTINE_TRADES = Dataset("quarantine", "trades", QUARANTINE_COLUMNS)
QUARANTINE_CANDLES = Dataset("quarantine", "candles", QUARANTINE_COLUMNS)
QUARANTINE_NEWS = Dataset("quarantine", "news", QUARANTINE_COLUMNS)

NEWS_SENTIMENT = Dataset(
    "ml",
    "news_sentiment",
    {
        "news_id": pl.String,
        "model": pl.String,
        "model_version": pl.String,
        "label": pl.String,  # positive | neutral | negative
        "score": pl.Float64,  # signed, -1 .. 1
        # the calibrated probability of ``label`` (a transformer's temperature-scaled softmax
        # maximum, 1/3 .. 1); null for VADER (its compound score is not a probability), for
        # blank text and for rows written before the column existed
        "confidence": pl.Float64,
        "scored_at": TS,
    },
    # lake files written before ``confidence`` existed read back with it null (not a guess)
    derived={"confidence": pl.lit(None, dtype=pl.Float64)},
)

FORECASTS = Dataset(
    "ml",
    "forecasts",
    {
        "symbol": pl.String,
        "exchange": pl.String,
        "origin_ts": TS,  # open time of the last bar the forecast saw
        "horizon": pl.String,  # 1h | 4h | 24h
        "target": pl.String,  # log_return | realized_vol (both in log-return units)
        "prediction": pl.Float64,
        # split-conformal intervals from the serving model's walk-forward residuals
        "lower_80": pl.Float64,
        "upper_80": pl.Float64,
        "lower_95": pl.Float64,
        "upper_95": pl.Float64,
        "model": pl.String,  # the serving model: lstm | zero_return | persistence | ewma_vol | har
        "model_version": pl.String,  # the forecaster run whose walk-forward chose it
        "reason": pl.String,  # why this model serves this target and horizon
        "coverage_80": pl.Float64,  # measured on the hold-out (null: too few folds to measure)
        "coverage_95": pl.Float64,
        "created_at": TS,
    },
)

FORECAST_EVALUATION = Dataset(
    "ml",
    "forecast_evaluation",
    {
        "run_id": pl.String,
        "model_version": pl.String,
        "symbol": pl.String,
        "horizon": pl.String,
        "model": pl.String,  # lstm | zero_return | ...
        "metric": pl.String,  # mae | rmse | direction_accuracy | ...
        "value": pl.Float64,
        "n": pl.Int64,
        "evaluated_at": TS,
    },
)

DRIFT = Dataset(
    "ml",
    "drift",
    {
        "run_id": pl.String,
        "model": pl.String,
        "checked_at": TS,
        "reference_rows": pl.Int64,
        "current_rows": pl.Int64,
        "n_features": pl.Int64,
        "drifted_features": pl.Int64,
        "share_drifted": pl.Float64,
        "dataset_drift": pl.Boolean,
        "details": pl.String,  # JSON: per-feature drift score
    },
)

ALERTS = Dataset(
    "alerts",
    "alerts",
    {
        "alert_id": pl.String,
        "type": pl.String,  # volume_spike | whale | divergence | pump_and_dump | wash_trading
        "exchange": pl.String,
        "symbol": pl.String,
        "severity": pl.String,  # info | warning | critical
        "event_time": TS,
        "detected_at": TS,
        "value": pl.Float64,
        "threshold": pl.Float64,
        "message": pl.String,
        "details": pl.String,  # JSON with the numbers behind the alert
        "rules_version": pl.String,  # content hash of the detection rules (null: before them)
    },
    derived={"rules_version": pl.lit(None, dtype=pl.String)},
)

ALL_DATASETS: tuple[Dataset, ...] = (
    RAW_TRADES,
    RAW_CANDLES,
    RAW_NEWS,
    RAW_MARKET_EVENTS,
    QUARANTINE_TRADES,
    QUARANTINE_CANDLES,
    QUARANTINE_NEWS,
    NEWS_SENTIMENT,
    FORECASTS,
    FORECAST_EVALUATION,
    DRIFT,
    ALERTS,
)
