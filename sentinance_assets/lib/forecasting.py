"""The forecasting lifecycle as plain functions: data from the marts, train, evaluate, track.

The Dagster assets in ``defs/ml/forecasting.py`` only wire these together; the same functions
serve the CLI, notebooks and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ml import tracking
from ml.drift import DriftResult, data_drift
from ml.evaluation import evaluate_forecasts, evaluation_metrics, skill_scores
from ml.features import HORIZONS, build_features
from ml.forecaster import (
    ForecasterConfig,
    TrainedForecaster,
    load_registered_forecaster,
    log_forecaster,
    train_forecaster,
)
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS, TS
from sentinance_assets.lib.warehouse import reading

REGISTERED_NAME = "sentinance-forecaster"
EXPERIMENT = "forecaster"
TEST_SHARE = 0.2  # the last 20 % of the span is the hold-out


@dataclass
class ForecastRun:
    model: TrainedForecaster
    frame: pl.DataFrame
    feature_cols: list[str]
    train_end_ts: datetime
    evaluation: pl.DataFrame
    run_id: str
    version: str
    decision: dict[str, Any]


def load_hourly_candles(read_path: Path, exchange: str) -> pl.DataFrame:
    """1-hour candles of every symbol on ``exchange`` from the published marts."""
    with reading(read_path) as conn:
        df = conn.execute(
            "select symbol, ts, open, high, low, close, volume from marts.candles "
            "where timeframe = '1h' and exchange = ? order by symbol, ts",
            [exchange],
        ).pl()
    return df.with_columns(pl.col("ts").cast(TS))


def split_time(frame: pl.DataFrame, test_share: float = TEST_SHARE) -> datetime:
    """The last training origin: ``1 - test_share`` of the way through the span."""
    start, end = frame["ts"].min(), frame["ts"].max()
    return start + (end - start) * (1 - test_share)


def config_for(frame: pl.DataFrame, train_end_ts: datetime, seed: int) -> ForecasterConfig:
    """Default hyper-parameters, shrunk to fit short histories.

    A horizon needs room for a fit/validation gap of its own length inside the training
    window, so horizons longer than a quarter of it are left out (and say so in the params);
    the look-back is at most a third of it.
    """
    per_symbol = frame.filter(pl.col("ts") <= train_end_ts).group_by("symbol").len()["len"].min()
    rows = int(per_symbol or 0)
    horizons = {label: k for label, k in HORIZONS.items() if 4 * k <= rows}
    if not horizons:
        raise ValueError(f"too little history to train: {rows} hourly rows per symbol")
    lookback = max(4, min(48, rows // 3))
    return ForecasterConfig(lookback=lookback, seeds=(seed, seed + 1, seed + 2),
                            horizons=horizons)


def train_and_evaluate(
    candles: pl.DataFrame, mlflow_db: Path, mlflow_artifacts: Path, seed: int
) -> ForecastRun:
    if candles.is_empty():
        raise ValueError("no 1-hour candles to train on: build the marts first")
    frame, feature_cols = build_features(candles, HORIZONS)
    train_end = split_time(frame)
    config = config_for(frame, train_end, seed)
    tracking.configure_mlflow(mlflow_db, mlflow_artifacts)
    with tracking.start_run(
        EXPERIMENT, params={**config.to_dict(), "train_end_ts": train_end.isoformat()}
    ) as run:
        model = train_forecaster(frame, feature_cols, config, train_end)
        preds = model.predict(frame)
        evaluation = evaluate_forecasts(frame, preds, train_end, config.horizons)
        tracking.log_metrics(evaluation_metrics(evaluation))
        tracking.log_frame_artifact(evaluation, "evaluation")
        log_forecaster(model)
        run_id = run.info.run_id
    version = tracking.register_model(run_id, "forecaster", REGISTERED_NAME)
    skill = skill_scores(evaluation).get("1h", float("nan"))
    decision = tracking.promote_if_better(REGISTERED_NAME, version, skill, higher_is_better=True)
    return ForecastRun(model, frame, feature_cols, train_end, evaluation, run_id, version, decision)


def evaluation_rows(run: ForecastRun, now: datetime | None = None) -> pl.DataFrame:
    return FORECAST_EVALUATION.conform(
        run.evaluation.with_columns(
            pl.lit(run.run_id).alias("run_id"),
            pl.lit(run.version).alias("model_version"),
            pl.lit(now or datetime.now(UTC)).cast(TS).alias("evaluated_at"),
        )
    )


def champion(mlflow_db: Path, mlflow_artifacts: Path) -> TrainedForecaster:
    tracking.configure_mlflow(mlflow_db, mlflow_artifacts)
    return load_registered_forecaster(REGISTERED_NAME)


def forecast_latest(
    model: TrainedForecaster, candles: pl.DataFrame, exchange: str, now: datetime | None = None
) -> pl.DataFrame:
    """Forecasts from the last bar of each symbol, in the ``ml.forecasts`` layout."""
    frame, _ = build_features(candles, model.config.horizons)
    long = model.predict_long(frame)
    latest = long.filter(pl.col("origin_ts") == pl.col("origin_ts").max().over("symbol"))
    return FORECASTS.conform(
        latest.with_columns(
            pl.lit(exchange).alias("exchange"),
            pl.lit("log_return").alias("target"),
            pl.lit(str(model.info.get("registered_version", ""))).alias("model_version"),
            pl.lit(now or datetime.now(UTC)).cast(TS).alias("created_at"),
        )
    )


def input_drift(
    model: TrainedForecaster, candles: pl.DataFrame, recent: timedelta = timedelta(days=2)
) -> DriftResult:
    """Drift of the model inputs: training window (reference) vs the most recent window."""
    frame, _ = build_features(candles, model.config.horizons)
    train_end = datetime.fromisoformat(model.info["train_end_ts"])
    reference = frame.filter(pl.col("ts") <= train_end)
    current = frame.filter(pl.col("ts") > frame["ts"].max() - recent)
    return data_drift(reference, current, model.feature_cols)
