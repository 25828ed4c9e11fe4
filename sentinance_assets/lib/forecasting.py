"""The forecasting lifecycle as plain functions: data, walk-forward evaluation, registry, drift.

The Dagster assets in ``defs/ml/forecasting.py``, the ``sentinance forecast evaluate`` command,
the benchmark and the tests all use these functions.

Walk-forward evaluation (:func:`walk_forward`): the hold-out starts at ``test_start`` (default:
the last 20 % of the span) and is cut into consecutive folds by
:func:`ml.evaluation.walk_forward_splits`. Fold ``i`` trains a fresh seed ensemble on every row
up to its ``train_end_ts`` (expanding window) and predicts its test window, which starts
``max horizon`` bars later (the gap). The model's out-of-sample predictions of all folds and
the baselines (zero return, persistence, RiskMetrics EWMA volatility) are scored on the same
rows. The model of the last fold (trained on the most data; its own hold-out is the last fold)
is the challenger that gets registered.

Promotion (:func:`decide`): the challenger becomes ``champion`` only if, pooled over symbols,
for every horizon it beats every baseline (return RMSE vs zero return and persistence,
volatility QLIKE vs EWMA) *and* the current champion on the same hold-out. The champion's
weights are fixed, so it is scored only on hold-out rows it has not seen: origins at least
``max horizon`` bars after its own ``train_end_ts``; the challenger is re-scored on exactly
those rows for that comparison. A champion that cannot score any unseen hold-out row (or cannot
be loaded) blocks promotion, because "better than the champion" cannot be shown. Either way
the version stays registered and the decision and numbers are recorded (MLflow run and
model-version tags, returned for asset metadata).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ml import tracking
from ml.drift import DriftResult, data_drift
from ml.evaluation import (
    CHAMPION,
    MODEL_NAME,
    evaluate_windows,
    evaluation_metrics,
    promotion_decision,
    walk_forward_splits,
)
from ml.features import HORIZONS, build_features, target_col, vol_target_col
from ml.forecaster import (
    ForecasterConfig,
    TrainedForecaster,
    load_registered_forecaster,
    log_forecaster,
    pred_col,
    pred_vol_col,
    train_forecaster,
)
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS, TS
from sentinance_assets.lib.timestamps import parse_series
from sentinance_assets.lib.warehouse import reading

REGISTERED_NAME = "sentinance-forecaster"
EXPERIMENT = "forecaster"
TEST_SHARE = 0.2  # the last 20 % of the span is the hold-out
MAX_FOLDS = 3
MIN_FOLD_BARS = 24  # a fold's test window holds at least a day of hourly origins
BAR = timedelta(hours=1)


@dataclass
class WalkForward:
    """Outcome of :func:`walk_forward`."""

    frame: pl.DataFrame
    feature_cols: list[str]
    config: ForecasterConfig
    folds: list[tuple[datetime, datetime]]
    models: list[TrainedForecaster]
    predictions: list[pl.DataFrame]
    evaluation: pl.DataFrame  # all folds' rows scored together
    fold_evaluation: pl.DataFrame  # per fold, with a ``fold`` column
    seconds: float = 0.0

    @property
    def model(self) -> TrainedForecaster:
        """The last fold's model: the challenger."""
        return self.models[-1]

    @property
    def train_end_ts(self) -> datetime:
        return self.folds[-1][0]

    @property
    def test_start_ts(self) -> datetime:
        return self.folds[0][0] + self.config.max_horizon * BAR


@dataclass
class ForecastRun:
    walk: WalkForward
    evaluation: pl.DataFrame  # walk-forward table + the champion's rows when compared
    run_id: str
    version: str
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> TrainedForecaster:
        return self.walk.model

    @property
    def train_end_ts(self) -> datetime:
        return self.walk.train_end_ts


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


def split_time(frame: pl.DataFrame, test_share: float = TEST_SHARE) -> datetime:
    """The last training origin: ``1 - test_share`` of the way through the span."""
    start, end = frame["ts"].min(), frame["ts"].max()
    return start + (end - start) * (1 - test_share)


def config_for(
    frame: pl.DataFrame,
    train_end_ts: datetime,
    seed: int,
    test_start: datetime | None = None,
    **overrides: Any,
) -> ForecasterConfig:
    """Default hyper-parameters, shrunk to fit short histories.

    A horizon ``k`` is kept only if the training window has room for a fit/validation gap of
    its own length (``4 k`` rows per symbol) and the hold-out has room for the ``k``-bar gap,
    ``k`` bars of realized target and a few test origins (``2 k + 4`` bars after
    ``train_end_ts``; ``k + 4`` bars from ``test_start`` when it is given). The look-back is at
    most a third of the training rows. ``overrides`` replace any other field.
    """
    counts = frame.group_by("symbol").agg(
        (pl.col("ts") <= train_end_ts).sum().alias("train"),
        (pl.col("ts") > (test_start or train_end_ts)).sum().alias("test"),
    )
    rows = int(counts["train"].min() or 0)
    test_rows = int(counts["test"].min() or 0)
    horizons = {
        label: k
        for label, k in HORIZONS.items()
        if 4 * k <= rows and (k + 4 if test_start else 2 * k + 4) <= test_rows
    }
    if not horizons:
        raise ValueError(
            f"too little history to train and evaluate: {rows} training and {test_rows} "
            "hold-out hourly rows per symbol"
        )
    lookback = max(4, min(48, rows // 3))
    kwargs: dict[str, Any] = {
        "lookback": lookback,
        "seeds": (seed, seed + 1, seed + 2),
        "horizons": horizons,
    }
    kwargs.update(overrides)
    return ForecasterConfig(**kwargs)


def plan_folds(
    frame: pl.DataFrame, test_start: datetime, max_horizon: int, n_folds: int | None = None
) -> list[tuple[datetime, datetime]]:
    """Walk-forward folds covering the origins from ``test_start`` to the last origin whose
    longest target is realized; at most :data:`MAX_FOLDS` folds of at least
    :data:`MIN_FOLD_BARS` origins (one fold when the hold-out is shorter)."""
    last_origin = frame["ts"].max() - max_horizon * BAR
    origins = int((last_origin - test_start) / BAR) + 1
    if origins < 1:
        raise ValueError(
            f"no test origin between {test_start} and the last origin with a realized "
            f"{max_horizon}-bar target ({last_origin})"
        )
    if n_folds is None:
        n_folds = max(1, min(MAX_FOLDS, origins // MIN_FOLD_BARS))
    n_folds = max(1, min(n_folds, origins))
    horizons = {"max": max_horizon}
    return walk_forward_splits(frame, n_folds, origins // n_folds, horizons, BAR)


def walk_forward(
    candles: pl.DataFrame,
    seed: int,
    test_start: datetime | None = None,
    n_folds: int | None = None,
    config: ForecasterConfig | None = None,
    **overrides: Any,
) -> WalkForward:
    """Expanding-window walk-forward evaluation of the forecaster against the baselines.

    Args:
        candles: 1-hour candles (``symbol, ts, open, high, low, close, volume``), one exchange.
        seed: first seed of the ensemble (config default: ``seed, seed+1, seed+2``).
        test_start: first test origin (UTC); default: ``1 - TEST_SHARE`` through the span plus
            the horizon gap. Training for the first fold ends ``max horizon`` bars before it.
        n_folds: number of folds (default: :func:`plan_folds`).
        config: hyper-parameters (default :func:`config_for` with ``overrides``).
    """
    import time

    t0 = time.perf_counter()
    if candles.is_empty():
        raise ValueError("no 1-hour candles to train on: build the marts first")
    frame, feature_cols = build_features(candles, HORIZONS)
    if frame.is_empty():
        raise ValueError("too little history: no row has every feature")
    if test_start is None:
        train_end = split_time(frame)
        config = config or config_for(frame, train_end, seed, **overrides)
        test_start = train_end + config.max_horizon * BAR
    else:
        if test_start.tzinfo is None:
            test_start = test_start.replace(tzinfo=UTC)
        config = config or config_for(
            frame, test_start - 24 * BAR, seed, test_start=test_start, **overrides
        )
    folds = plan_folds(frame, test_start, config.max_horizon, n_folds)
    models, predictions, windows, per_fold = [], [], [], []
    for i, (train_end, test_end) in enumerate(folds):
        model = train_forecaster(frame, feature_cols, config, train_end)
        test_from = train_end + (config.max_horizon - config.lookback) * BAR
        preds = model.predict(frame.filter(pl.col("ts") >= test_from))
        window = (train_end, test_end, {MODEL_NAME: preds})
        fold_ev = evaluate_windows(frame, [window], config.horizons, BAR)
        per_fold.append(fold_ev.with_columns(pl.lit(i).alias("fold")))
        models.append(model)
        predictions.append(preds)
        windows.append(window)
    evaluation = evaluate_windows(frame, windows, config.horizons, BAR)
    return WalkForward(
        frame=frame,
        feature_cols=feature_cols,
        config=config,
        folds=folds,
        models=models,
        predictions=predictions,
        evaluation=evaluation,
        fold_evaluation=pl.concat(per_fold),
        seconds=time.perf_counter() - t0,
    )


def side_by_side(evaluation: pl.DataFrame) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{symbol: {horizon: {model: {metric: value, metric + "_n": n}}}}`` (NaN -> None)."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for r in evaluation.iter_rows(named=True):
        v = r["value"]
        v = None if v is None or not math.isfinite(v) else v
        cell = out.setdefault(r["symbol"], {}).setdefault(r["horizon"], {})
        cell.setdefault(r["model"], {})[r["metric"]] = v
        cell[r["model"]][f"{r['metric']}_n"] = r["n"]
    return out


def champion_predictions(
    champion: TrainedForecaster, walk: WalkForward
) -> tuple[pl.DataFrame | None, str]:
    """The champion's predictions on the walk-forward hold-out rows it has not seen.

    Returns ``(predictions or None, note)``: rows with origins before its own training end
    plus its horizon gap are dropped (it was fitted on their targets).
    """
    missing = [c for c in champion.feature_cols if c not in walk.frame.columns]
    if missing:
        return None, f"champion needs features {missing} that this frame lacks"
    trained_to = datetime.fromisoformat(champion.info["train_end_ts"])
    unseen_from = max(trained_to + champion.config.max_horizon * BAR, walk.test_start_ts)
    preds = champion.predict(
        walk.frame.filter(pl.col("ts") >= unseen_from - champion.config.lookback * BAR)
    ).filter(pl.col("ts") >= unseen_from)
    if preds.is_empty():
        return None, f"champion was trained up to {trained_to}: no unseen hold-out row"
    return preds, f"champion scored on hold-out origins from {unseen_from.isoformat()}"


def decide(walk: WalkForward, champion: TrainedForecaster | None) -> tuple[dict, pl.DataFrame]:
    """Promotion decision for the walk-forward challenger (see module docstring).

    Returns ``(decision, champion_rows)``: ``decision`` has ``promoted, reason, baselines,
    vs_champion`` (each a :func:`ml.evaluation.promotion_decision` result or ``None``) and
    ``champion_version``; ``champion_rows`` are the champion's and the challenger's scores on
    the rows they share (model names ``champion`` and ``lstm_vs_champion``), or empty.
    """
    base = promotion_decision(walk.evaluation, champion=None)
    decision: dict[str, Any] = {"baselines": base, "vs_champion": None, "champion_version": None}
    empty = walk.evaluation.clear()
    if champion is None:
        decision.update(promoted=base["promoted"], reason=f"no champion yet; {base['reason']}")
        return decision, empty
    decision["champion_version"] = champion.info.get("registered_version")
    preds, note = champion_predictions(champion, walk)
    if preds is None:
        decision.update(promoted=False, reason=f"not promoted: {note}; {base['reason']}")
        return decision, empty
    windows = [
        (tr, te, {MODEL_NAME: p, CHAMPION: preds})
        for (tr, te), p in zip(walk.folds, walk.predictions, strict=True)
    ]
    shared = {h: k for h, k in walk.config.horizons.items() if h in champion.config.horizons}
    horizons = {**walk.config.horizons}  # the gap stays the challenger's max horizon
    both = evaluate_windows(walk.frame, windows, horizons, BAR)
    both = both.filter(pl.col("horizon").is_in(list(shared)))
    rules = (("rmse", ()), ("vol_qlike", ()))
    vs = promotion_decision(both, champion=CHAMPION, rules=rules)
    decision["vs_champion"] = vs
    promoted = base["promoted"] and vs["promoted"]
    verdict = "promoted" if promoted else "not promoted"
    decision.update(
        promoted=promoted,
        reason=f"{verdict}: baselines: {base['reason']}; vs champion v"
        f"{decision['champion_version']} ({note}): {vs['reason']}",
    )
    rows = both.filter(pl.col("model").is_in([MODEL_NAME, CHAMPION])).with_columns(
        pl.col("model").replace({MODEL_NAME: f"{MODEL_NAME}_vs_champion"})
    )
    return decision, rows


LATEST_ALIAS = "latest_trained"


def _mark_latest(version: str) -> None:
    """Point the ``latest_trained`` alias at ``version``: drift monitoring falls back to it
    while no version has earned ``champion``."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(REGISTERED_NAME, LATEST_ALIAS, version)


def monitored_model(
    mlflow_db: Path, mlflow_artifacts: Path
) -> tuple[TrainedForecaster | None, str]:
    """The model whose inputs and residuals drift checks watch: the champion, else the most
    recently trained version (so drift is watched before any version is promoted)."""
    tracking.configure_mlflow(mlflow_db, mlflow_artifacts)
    model = current_champion()
    if model is not None:
        return model, "champion"
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_model_version_by_alias(REGISTERED_NAME, LATEST_ALIAS)
    except MlflowException:
        return None, "none"
    return load_registered_forecaster(REGISTERED_NAME, alias=LATEST_ALIAS), LATEST_ALIAS


def current_champion() -> TrainedForecaster | None:
    """The registered champion, or ``None`` when there is none (MLflow must be configured)."""
    if tracking.get_champion(REGISTERED_NAME) is None:
        return None
    return load_registered_forecaster(REGISTERED_NAME)


def train_and_evaluate(
    candles: pl.DataFrame,
    mlflow_db: Path,
    mlflow_artifacts: Path,
    seed: int,
    n_folds: int | None = None,
    **overrides: Any,
) -> ForecastRun:
    """Walk-forward evaluate, log to MLflow, register the challenger, decide promotion."""
    tracking.configure_mlflow(mlflow_db, mlflow_artifacts)
    walk = walk_forward(candles, seed, n_folds=n_folds, **overrides)
    try:
        champ = current_champion()
        champ_error = None
    except Exception as exc:  # an unloadable champion must not stop the retraining
        champ, champ_error = None, f"{type(exc).__name__}: {exc}"
    params = {
        **walk.config.to_dict(),
        "train_end_ts": walk.train_end_ts.isoformat(),
        "test_start_ts": walk.test_start_ts.isoformat(),
        "folds": [[a.isoformat(), b.isoformat()] for a, b in walk.folds],
        "feature_cols": walk.feature_cols,
    }
    with tracking.start_run(EXPERIMENT, params=params) as run:
        if champ_error is not None:
            decision = {
                "promoted": False,
                "reason": f"not promoted: current champion could not be loaded ({champ_error})",
                "baselines": promotion_decision(walk.evaluation, champion=None),
                "vs_champion": None,
                "champion_version": tracking.get_champion(REGISTERED_NAME)[0],
            }
            champ_rows = walk.evaluation.clear()
        else:
            decision, champ_rows = decide(walk, champ)
        evaluation = pl.concat([walk.evaluation, champ_rows])
        tracking.log_metrics(evaluation_metrics(evaluation))
        tracking.log_metrics(
            {
                "train_seconds_last_fold": walk.model.info["train_seconds"],
                "mean_epoch_seconds": walk.model.info["mean_epoch_seconds"],
                "walk_forward_seconds": walk.seconds,
            }
        )
        tracking.log_frame_artifact(evaluation, "evaluation")
        tracking.log_frame_artifact(walk.fold_evaluation, "evaluation_per_fold")
        for h in walk.config.horizons:
            tracking.log_frame_artifact(horizon_table(evaluation, h), f"evaluation_{h}")
        log_forecaster(walk.model)
        run_id = run.info.run_id
        import mlflow

        mlflow.set_tags(
            {
                "promotion_decision": "promoted" if decision["promoted"] else "rejected",
                "promotion_reason": decision["reason"][:4900],
            }
        )
    version = tracking.register_model(run_id, "forecaster", REGISTERED_NAME)
    _mark_latest(version)
    numbers = {
        "baselines": decision["baselines"]["comparisons"],
        "vs_champion": (decision["vs_champion"] or {}).get("comparisons"),
    }
    tracking.record_decision(
        REGISTERED_NAME, version, decision["promoted"], decision["reason"], numbers
    )
    return ForecastRun(walk, evaluation, run_id, version, decision)


def horizon_table(evaluation: pl.DataFrame, horizon: str) -> pl.DataFrame:
    """One horizon's table: a row per ``symbol, model``, a column per metric."""
    sel = evaluation.filter(pl.col("horizon") == horizon)
    if sel.is_empty():
        return pl.DataFrame(
            {"symbol": [], "model": []}, schema={"symbol": pl.String, "model": pl.String}
        )
    return sel.pivot(on="metric", index=["symbol", "model"], values="value").sort("symbol", "model")


def evaluation_rows(run: ForecastRun, now: datetime | None = None) -> pl.DataFrame:
    return FORECAST_EVALUATION.conform(
        run.evaluation.with_columns(
            pl.lit(run.run_id).alias("run_id"),
            pl.lit(run.version).alias("model_version"),
            pl.lit(now or datetime.now(UTC)).cast(TS).alias("evaluated_at"),
        )
    )


def champion(mlflow_db: Path, mlflow_artifacts: Path) -> TrainedForecaster | None:
    """The ``champion`` model, or ``None`` if no version has been promoted yet."""
    tracking.configure_mlflow(mlflow_db, mlflow_artifacts)
    return current_champion()


def forecast_latest(
    model: TrainedForecaster, candles: pl.DataFrame, exchange: str, now: datetime | None = None
) -> pl.DataFrame:
    """Forecasts (log return and realized volatility per horizon) from the last bar of each
    symbol, in the ``ml.forecasts`` layout, with the model's registered version on every row."""
    frame, _ = build_features(candles, HORIZONS)  # the feature set the model was trained on
    frame = frame.filter(
        pl.col("ts") > pl.col("ts").max().over("symbol") - model.config.lookback * BAR
    )
    long = model.predict_long(frame)
    latest = long.filter(pl.col("origin_ts") == pl.col("origin_ts").max().over("symbol"))
    return FORECASTS.conform(
        latest.with_columns(
            pl.lit(exchange).alias("exchange"),
            pl.lit(str(model.info.get("registered_version", ""))).alias("model_version"),
            pl.lit(now or datetime.now(UTC)).cast(TS).alias("created_at"),
        )
    )


def _windows(
    model: TrainedForecaster, frame: pl.DataFrame, recent: timedelta
) -> tuple[pl.DataFrame, pl.DataFrame]:
    train_end = datetime.fromisoformat(model.info["train_end_ts"])
    reference = frame.filter(pl.col("ts") <= train_end)
    current = frame.filter(pl.col("ts") > max(frame["ts"].max() - recent, train_end))
    return reference, current


def input_drift(
    model: TrainedForecaster,
    candles: pl.DataFrame,
    recent: timedelta = timedelta(days=2),
    drift_share: float = 0.5,
) -> DriftResult:
    """Drift of the model inputs: training window (reference) vs the most recent window
    (after the training window)."""
    frame, _ = build_features(candles, HORIZONS)  # the feature set the model was trained on
    reference, current = _windows(model, frame, recent)
    return data_drift(reference, current, model.feature_cols, drift_share=drift_share)


def residual_columns(model: TrainedForecaster) -> list[str]:
    cols = [f"resid_{h}" for h in model.config.horizons]
    if model.config.vol_targets:
        cols += [f"resid_rv_{h}" for h in model.config.horizons]
    return cols


def residuals(model: TrainedForecaster, frame: pl.DataFrame) -> pl.DataFrame:
    """``symbol, ts, resid_<h>..., resid_rv_<h>...`` = realized - predicted, on rows whose
    targets are realized (``ts`` is the forecast origin)."""
    preds = model.predict(frame)
    joined = preds.join(frame, on=["symbol", "ts"], how="inner")
    exprs = [
        (pl.col(target_col(h)) - pl.col(pred_col(h))).alias(f"resid_{h}")
        for h in model.config.horizons
    ]
    if model.config.vol_targets:
        exprs += [
            (pl.col(vol_target_col(h)) - pl.col(pred_vol_col(h))).alias(f"resid_rv_{h}")
            for h in model.config.horizons
        ]
    return joined.select("symbol", "ts", *exprs).drop_nulls()


def residual_drift(
    model: TrainedForecaster,
    candles: pl.DataFrame,
    recent: timedelta = timedelta(days=2),
    drift_share: float = 0.5,
) -> DriftResult:
    """Drift of the prediction residuals: residuals on the training window (reference; in
    sample, so slightly optimistic) vs residuals on the most recent origins whose targets are
    realized. Large-horizon residuals need ``max horizon`` bars of future, so the current
    window ends that much before the last bar."""
    frame, _ = build_features(candles, HORIZONS)  # the feature set the model was trained on
    res = residuals(model, frame)
    if res.is_empty():
        from ml.drift import InsufficientDataError

        raise InsufficientDataError("no origin with realized targets to compute residuals")
    train_end = datetime.fromisoformat(model.info["train_end_ts"])
    reference = res.filter(pl.col("ts") <= train_end)
    current = res.filter(pl.col("ts") > max(res["ts"].max() - recent, train_end))
    return data_drift(reference, current, residual_columns(model), drift_share=drift_share)


def decision_summary(decision: dict[str, Any]) -> str:
    """Compact JSON of the comparisons behind a decision (for asset metadata)."""
    keep = {
        k: decision.get(k)
        for k in ("promoted", "reason", "champion_version", "baselines", "vs_champion")
    }
    return json.dumps(keep, default=str, indent=1)


def promotion_decision_summary(walk: WalkForward) -> dict[str, Any]:
    """Whether the walk-forward model beats every baseline (the baseline half of :func:`decide`)."""
    d = promotion_decision(walk.evaluation, champion=None)
    return {"beats_all_baselines": d["promoted"], "reason": d["reason"]}
