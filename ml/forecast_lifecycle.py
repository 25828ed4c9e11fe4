"""Forecaster lifecycle: train -> evaluate vs baselines -> register -> decide -> serve.

The same steps, with the same names, as :mod:`ml.sentiment_lifecycle`:

* train + evaluate vs baselines: :func:`walk_forward`;
* evaluate the champion on the same rows: :func:`champion_predictions`;
* decide: :func:`decide`, the whole promotion rule (its comparisons: :func:`promotion_decision`);
* log, register, record: :func:`train_and_register` (the decision is recorded by
  :meth:`ml.tracking.MlflowStore.record_decision`);
* serve: :func:`load_serving`, :func:`forecast_latest` (what serves: :mod:`ml.serving`);
  watch: :func:`monitored_model`, :func:`model_drift`.

Plain functions over polars frames and an :class:`~ml.tracking.MlflowStore`: the Dagster assets
in ``defs/ml/forecasting.py``, the ``sentinance forecast evaluate`` command, the benchmark and
the tests all use them. Reading candles (warehouse, files) and casting rows to the project's
tables is I/O glue on the Dagster side (``sentinance_assets/lib/forecast_io.py``).

Walk-forward evaluation (:func:`walk_forward`): the hold-out starts at ``test_start`` (default:
the last 20 % of the span) and is cut into consecutive folds by
:func:`ml.evaluation.walk_forward_splits`. Fold ``i`` trains a fresh seed ensemble on every row
up to its ``train_end_ts`` (expanding window) and predicts its test window, which starts
``max horizon`` bars later (the gap). The model's out-of-sample predictions of all folds and
the baselines (zero return, persistence, RiskMetrics EWMA volatility) are scored on the same
rows. The model of the last fold (trained on the most data; its own hold-out is the last fold)
is the challenger that gets registered.

Input (:func:`walk_forward`): hourly candles of one exchange. Features come from
:func:`ml.features.build_feature_set`, which finds and counts missing, duplicated, maintenance
and implausible bars and never lets a window cross one (``WalkForward.quality``; the look-back
windows masked for the same reason are added as ``masked_lookback_rows``). A symbol with fewer
than :data:`MIN_HISTORY_DAYS` days of usable hourly bars is left out; when no symbol has them,
or the rows left cannot hold a training window and a hold-out, it raises
:class:`~ml.errors.InsufficientDataError` saying what it needs and what it has (the Dagster
assets skip on it). Long histories train each epoch on a sample of the windows
(:func:`config_for`), so four years cost about as much per epoch as eight months.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from ml import har, serving, tracking
from ml.drift import DriftResult, data_drift
from ml.errors import InsufficientDataError
from ml.evaluation import (
    ALL_SYMBOLS,
    BASELINES,
    CHAMPION,
    MODEL_NAME,
    VOL_BASELINES,
    conformal_quantiles,
    evaluate_windows,
    evaluation_metrics,
    walk_forward_splits,
)
from ml.features import (
    HORIZONS,
    VOL_WINDOW,
    CandleQuality,
    FeatureSet,
    build_feature_set,
    build_features,
    inspect_candles,
    target_col,
    vol_target_col,
)
from ml.forecaster import (
    ForecasterConfig,
    TrainedForecaster,
    load_registered_forecaster,
    log_forecaster,
    pred_col,
    pred_vol_col,
    train_forecaster,
)
from ml.tracking import MlflowStore

REGISTERED_NAME = "sentinance-forecaster"
EXPERIMENT = "forecaster"
#: Alias of the most recently trained version: drift monitoring falls back to it while no
#: version has earned ``champion``.
LATEST_ALIAS = "latest_trained"
TEST_SHARE = 0.2  # the last 20 % of the span is the hold-out
MAX_FOLDS = 3
MIN_FOLD_BARS = 24  # a fold's test window holds at least a day of hourly origins
BAR = timedelta(hours=1)
RECENT = timedelta(days=2)  # the "current" window of the drift checks
#: The least history the forecaster trains on, per symbol: the 24-bar feature warm-up, then two
#: days of rows (about 38 training origins and 10 hold-out origins for the 1h horizon; the 4h
#: horizon joins from about 3.5 days and the 24h one from about 12, see :func:`config_for`).
#: With less, the walk-forward evaluation would judge the model on a handful of origins.
MIN_HISTORY_DAYS = 3
MIN_HISTORY_BARS = MIN_HISTORY_DAYS * 24
#: Above this many training windows (all symbols), an epoch trains on a random sample of this
#: many (:func:`config_for`), with batches of :data:`LONG_HISTORY_BATCH`.
LONG_HISTORY_WINDOWS = 16_384
LONG_HISTORY_BATCH = 128
#: What the drift checks watch (:func:`model_drift`): the model's inputs and its residuals.
DRIFT_SUBJECTS = ("inputs", "residuals")


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
    quality: CandleQuality | None = None  # what the candles held and what it cost
    short_symbols: list[str] = field(default_factory=list)  # left out: too little history
    seconds: float = 0.0
    #: residual quantiles of every candidate (:func:`ml.evaluation.conformal_quantiles`)
    quantiles: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def model(self) -> TrainedForecaster:
        """The last fold's model: the challenger."""
        return self.models[-1]

    @property
    def realized_from(self) -> str:
        """Which returns the realized volatility (targets, HAR inputs) was computed from."""
        totals = self.quality.totals() if self.quality else {}
        intraday, usable = totals.get("intraday_var_rows", 0), totals.get("usable_bars", 0)
        if not intraday:
            return "hourly returns (no intraday data)"
        return f"1-minute returns on {intraday} of {usable} hourly bars, hourly returns elsewhere"

    @property
    def train_end_ts(self) -> datetime:
        return self.folds[-1][0]

    @property
    def test_start_ts(self) -> datetime:
        return self.folds[0][0] + self.config.max_horizon * BAR


@dataclass
class ForecastRun:
    """Outcome of :func:`train_and_register`."""

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


@dataclass(frozen=True)
class UnloadableChampion:
    """A champion that is registered but could not be loaded: it blocks promotion, since
    "better than the champion" cannot be shown, but must not stop a retraining."""

    version: str
    error: str


# ---- train + evaluate vs baselines ----------------------------------------------------------


def split_time(frame: pl.DataFrame, test_share: float = TEST_SHARE) -> datetime:
    """The last training origin: ``1 - test_share`` of the way through the span."""
    start, end = frame["ts"].min(), frame["ts"].max()
    return start + (end - start) * (1 - test_share)


def _days(bars: int) -> str:
    days = bars / 24
    return f"{days:.0f}" if days == int(days) else f"{days:.1f}"


def history_check(fs: FeatureSet) -> list[str]:
    """The symbols with fewer than :data:`MIN_HISTORY_BARS` usable hourly bars (left out of
    training); raises :class:`~ml.errors.InsufficientDataError` when no symbol has enough."""
    table = fs.quality.table
    usable = dict(zip(table["symbol"], table["usable_bars"], strict=True))
    short = sorted(s for s, n in usable.items() if n < MIN_HISTORY_BARS)
    if len(short) == len(usable):
        most = max(usable.values(), default=0)
        flagged = fs.quality.totals().get("flagged_bars", 0)
        note = f"; {flagged} flagged bars left out" if flagged else ""
        raise InsufficientDataError(
            f"too little history: the forecaster needs {MIN_HISTORY_DAYS} days of hourly "
            f"history per symbol, has {_days(most)} ({most} usable hourly bars{note})",
            needs=f"{MIN_HISTORY_DAYS} days of hourly history",
            has=_days(most),
        )
    return short


def config_for(
    frame: pl.DataFrame,
    train_end_ts: datetime,
    seed: int,
    test_start: datetime | None = None,
    **overrides: Any,
) -> ForecasterConfig:
    """Default hyper-parameters, shrunk to fit short histories and bounded for long ones.

    A horizon ``k`` is kept only if the training window has room for a fit/validation gap of
    its own length (``4 k`` rows per symbol) and the hold-out has room for the ``k``-bar gap,
    ``k`` bars of realized target and a few test origins (``2 k + 4`` bars after
    ``train_end_ts``; ``k + 4`` bars from ``test_start`` when it is given); none fits:
    :class:`~ml.errors.InsufficientDataError`. The look-back is at most a third of the
    training rows. Long histories (more than :data:`LONG_HISTORY_WINDOWS` training windows in
    all) train each epoch on a fresh random sample of that many windows
    (``epoch_windows``), with a larger batch, so that an epoch costs the same on four years
    as on eight months. ``overrides`` replace any other field.
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
        need_test = 5 if test_start else 6
        raise InsufficientDataError(
            f"too little history to train and evaluate: needs 4 training and {need_test} "
            f"hold-out hourly rows per symbol with every feature, has {rows} and {test_rows}",
            needs=f"4 training and {need_test} hold-out hourly rows per symbol",
            has=f"{rows} and {test_rows}",
        )
    lookback = max(4, min(48, rows // 3))
    kwargs: dict[str, Any] = {
        "lookback": lookback,
        "seeds": (seed, seed + 1, seed + 2),
        "horizons": horizons,
    }
    windows = int(counts["train"].sum() or 0)
    if windows > LONG_HISTORY_WINDOWS:
        kwargs.update(epoch_windows=LONG_HISTORY_WINDOWS, batch_size=LONG_HISTORY_BATCH)
    kwargs.update(overrides)
    return ForecasterConfig(**kwargs)


def masked_lookbacks(frame: pl.DataFrame, lookback: int) -> dict[str, int]:
    """Per symbol, feature rows that close no full look-back window because it would span a
    gap or a flagged bar (the model neither trains on nor predicts them); the first
    ``lookback - 1`` rows of a symbol's history are its warm-up, not counted."""
    run = (pl.col("ts").diff().over("symbol").fill_null(BAR) != BAR).cum_sum().over("symbol")
    pos = pl.int_range(pl.len()).over("symbol", run)
    masked = frame.sort("symbol", "ts").select(
        "symbol", ((pos < lookback - 1) & (run > 0)).alias("masked")
    )
    counts = masked.group_by("symbol").agg(pl.col("masked").sum())
    return {str(s): int(n) for s, n in counts.iter_rows()}


def plan_folds(
    frame: pl.DataFrame, test_start: datetime, max_horizon: int, n_folds: int | None = None
) -> list[tuple[datetime, datetime]]:
    """Walk-forward folds covering the origins from ``test_start`` to the last origin whose
    longest target is realized; at most :data:`MAX_FOLDS` folds of at least
    :data:`MIN_FOLD_BARS` origins (one fold when the hold-out is shorter)."""
    last_origin = frame["ts"].max() - max_horizon * BAR
    origins = int((last_origin - test_start) / BAR) + 1
    if origins < 1:
        raise InsufficientDataError(
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
    t0 = time.perf_counter()
    if candles.is_empty():
        raise InsufficientDataError(
            f"no 1-hour candles to train on (the forecaster needs {MIN_HISTORY_DAYS} days of "
            "hourly history per symbol): build the marts first",
            needs=f"{MIN_HISTORY_DAYS} days of hourly history",
            has="0",
        )
    fs = build_feature_set(candles, HORIZONS)
    short = history_check(fs)
    frame, feature_cols = fs.frame.filter(~pl.col("symbol").is_in(short)), fs.feature_cols
    if frame.is_empty():
        raise InsufficientDataError(
            "too little history: no row has every feature",
            needs=f"{MIN_HISTORY_DAYS} days of gap-free hourly history",
            has="0 rows with every feature",
        )
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
    quality = fs.quality.with_counts(
        "masked_lookback_rows", masked_lookbacks(frame, config.lookback)
    )
    folds = plan_folds(frame, test_start, config.max_horizon, n_folds)
    models, predictions, windows, per_fold = [], [], [], []
    hars = _har_per_fold(frame, folds, config.horizons)
    for i, (train_end, test_end) in enumerate(folds):
        model = train_forecaster(frame, feature_cols, config, train_end)
        test_from = train_end + (config.max_horizon - config.lookback) * BAR
        preds = model.predict(frame.filter(pl.col("ts") >= test_from))
        scored = {MODEL_NAME: preds}
        if hars:
            scored[har.NAME] = hars[i].predict(frame.filter(pl.col("ts") >= test_from))
        window = (train_end, test_end, scored)
        fold_ev = evaluate_windows(frame, [window], config.horizons, BAR)
        per_fold.append(fold_ev.with_columns(pl.lit(i).alias("fold")))
        models.append(model)
        predictions.append(preds)
        windows.append(window)
    evaluation = evaluate_windows(frame, windows, config.horizons, BAR)
    quantiles = conformal_quantiles(frame, windows, config.horizons, BAR)
    return WalkForward(
        frame=frame,
        feature_cols=feature_cols,
        config=config,
        folds=folds,
        models=models,
        predictions=predictions,
        evaluation=evaluation,
        fold_evaluation=pl.concat(per_fold),
        quality=quality,
        short_symbols=short,
        seconds=time.perf_counter() - t0,
        quantiles=quantiles,
    )


def _har_per_fold(
    frame: pl.DataFrame, folds: Sequence[tuple[datetime, datetime]], horizons: dict[str, int]
) -> list[har.HarModel]:
    """The HAR baseline fitted on each fold's training rows; none when a fold has too few
    realized rows for it (a baseline must be scored on every fold or on none)."""
    try:
        return [har.fit_har(frame, train_end, horizons) for train_end, _ in folds]
    except InsufficientDataError:
        return []


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


def horizon_table(evaluation: pl.DataFrame, horizon: str) -> pl.DataFrame:
    """One horizon's table: a row per ``symbol, model``, a column per metric."""
    sel = evaluation.filter(pl.col("horizon") == horizon)
    if sel.is_empty():
        return pl.DataFrame(
            {"symbol": [], "model": []}, schema={"symbol": pl.String, "model": pl.String}
        )
    return sel.pivot(on="metric", index=["symbol", "model"], values="value").sort("symbol", "model")


# ---- evaluate the champion on the same rows --------------------------------------------------


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


# ---- decide ----------------------------------------------------------------------------------


def _value(ev: pl.DataFrame, symbol: str, h: str, model: str, metric: str) -> float | None:
    sel = ev.filter(
        (pl.col("symbol") == symbol)
        & (pl.col("horizon") == h)
        & (pl.col("model") == model)
        & (pl.col("metric") == metric)
    )
    if sel.is_empty():
        return None
    v = sel["value"][0]
    return None if v is None or not math.isfinite(v) else float(v)


def promotion_decision(
    evaluation: pl.DataFrame,
    challenger: str = MODEL_NAME,
    champion: str | None = CHAMPION,
    symbol: str = ALL_SYMBOLS,
    rules: Sequence[tuple[str, Sequence[str]]] = (
        ("rmse", BASELINES),
        ("vol_qlike", VOL_BASELINES),
    ),
) -> dict[str, Any]:
    """Decide whether ``challenger`` may replace ``champion`` (both scored in ``evaluation``).

    For every horizon the challenger was scored on and every ``(metric, baselines)`` rule
    (lower is better), the challenger must be strictly better than each baseline and, when
    ``champion`` has a value for that horizon and metric, than the champion. All comparisons
    must hold; a missing challenger value fails. Returns ``{promoted, reason, comparisons}``
    where ``comparisons`` lists ``{horizon, metric, against, challenger, other, better}``.
    """
    comparisons: list[dict[str, Any]] = []
    horizons = (
        evaluation.filter((pl.col("model") == challenger) & (pl.col("symbol") == symbol))["horizon"]
        .unique(maintain_order=True)
        .to_list()
    )
    for h in horizons:
        for metric, baselines in rules:
            mine = _value(evaluation, symbol, h, challenger, metric)
            against = list(baselines)
            if champion is not None and _value(evaluation, symbol, h, champion, metric) is not None:
                against.append(champion)
            for other in against:
                theirs = _value(evaluation, symbol, h, other, metric)
                if theirs is None and other != champion:
                    continue  # a baseline not scored here (no vol head; too few rows for HAR)
                better = mine is not None and theirs is not None and mine < theirs
                comparisons.append(
                    {
                        "horizon": h,
                        "metric": metric,
                        "against": other,
                        "challenger": mine,
                        "other": theirs,
                        "better": better,
                    }
                )
    if not comparisons:
        return {"promoted": False, "reason": "challenger has no scores", "comparisons": []}
    lost = [c for c in comparisons if not c["better"]]
    if lost:
        worst = ", ".join(f"{c['horizon']} {c['metric']} vs {c['against']}" for c in lost[:6])
        more = f" (+{len(lost) - 6} more)" if len(lost) > 6 else ""
        reason = (
            f"not promoted: loses or ties {len(lost)} of {len(comparisons)} comparisons "
            f"({worst}{more})"
        )
        return {"promoted": False, "reason": reason, "comparisons": comparisons}
    beaten = sorted({c["against"] for c in comparisons})
    return {
        "promoted": True,
        "reason": f"beats {', '.join(beaten)} on all {len(comparisons)} comparisons",
        "comparisons": comparisons,
    }


def decide(
    walk: WalkForward, champion: TrainedForecaster | UnloadableChampion | None
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Promotion decision for the walk-forward challenger (see module docstring).

    Returns ``(decision, champion_rows)``: ``decision`` has ``promoted, reason, baselines,
    vs_champion`` (each a :func:`promotion_decision` result or ``None``) and
    ``champion_version``; ``champion_rows`` are the champion's and the challenger's scores on
    the rows they share (model names ``champion`` and ``lstm_vs_champion``), or empty.
    """
    base = promotion_decision(walk.evaluation, champion=None)
    decision: dict[str, Any] = {"baselines": base, "vs_champion": None, "champion_version": None}
    empty = walk.evaluation.clear()
    if champion is None:
        decision.update(promoted=base["promoted"], reason=f"no champion yet; {base['reason']}")
        return decision, empty
    if isinstance(champion, UnloadableChampion):
        decision.update(
            promoted=False,
            reason=f"not promoted: current champion could not be loaded ({champion.error})",
            champion_version=champion.version,
        )
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


def promotion_decision_summary(walk: WalkForward) -> dict[str, Any]:
    """Whether the walk-forward model beats every baseline (the baseline half of :func:`decide`)."""
    d = promotion_decision(walk.evaluation, champion=None)
    return {"beats_all_baselines": d["promoted"], "reason": d["reason"]}


def decision_summary(decision: dict[str, Any]) -> str:
    """Compact JSON of the comparisons behind a decision (for asset metadata)."""
    keep = {
        k: decision.get(k)
        for k in ("promoted", "reason", "champion_version", "baselines", "vs_champion")
    }
    return json.dumps(keep, default=str, indent=1)


# ---- register + record -----------------------------------------------------------------------


def train_and_register(
    candles: pl.DataFrame,
    store: MlflowStore,
    seed: int,
    n_folds: int | None = None,
    **overrides: Any,
) -> ForecastRun:
    """Walk-forward evaluate, decide against the baselines and the champion, log the run,
    register the challenger (it stays registered either way), record the decision."""
    walk = walk_forward(candles, seed, n_folds=n_folds, **overrides)
    decision, champion_rows = decide(walk, _champion_for_comparison(store))
    evaluation = pl.concat([walk.evaluation, champion_rows])
    # saved with the model: the version that chose the plan is the one that serves it
    walk.model.info["serving_plan"] = serving.serving_plan(
        walk.evaluation, walk.quantiles, walk.config.horizons
    )
    run_id = _log_run(store, walk, evaluation, decision)
    version = store.register_model(run_id, "forecaster", REGISTERED_NAME)
    store.set_alias(REGISTERED_NAME, LATEST_ALIAS, version)
    numbers = {
        "baselines": decision["baselines"]["comparisons"],
        "vs_champion": (decision["vs_champion"] or {}).get("comparisons"),
    }
    store.record_decision(
        REGISTERED_NAME, version, decision["promoted"], decision["reason"], numbers
    )
    return ForecastRun(walk, evaluation, run_id, version, decision)


def _champion_for_comparison(
    store: MlflowStore,
) -> TrainedForecaster | UnloadableChampion | None:
    """The current champion, loaded; an unloadable one is reported, not raised, so that the
    retraining still registers its challenger."""
    mv = store.model_version(REGISTERED_NAME)
    if mv is None:
        return None
    try:
        return load_registered_forecaster(store, REGISTERED_NAME)
    except Exception as exc:  # noqa: BLE001 - any load failure means "cannot compare"
        return UnloadableChampion(str(mv.version), f"{type(exc).__name__}: {exc}")


def _log_run(
    store: MlflowStore, walk: WalkForward, evaluation: pl.DataFrame, decision: dict[str, Any]
) -> str:
    """Log parameters, metrics, evaluation tables, the model and the decision; returns the
    run id."""
    params = {
        **walk.config.to_dict(),
        "train_end_ts": walk.train_end_ts.isoformat(),
        "test_start_ts": walk.test_start_ts.isoformat(),
        "folds": [[a.isoformat(), b.isoformat()] for a, b in walk.folds],
        "feature_cols": walk.feature_cols,
    }
    with store.start_run(EXPERIMENT, params=params) as run:
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
        tracking.tag_run_decision(decision["promoted"], decision["reason"])
        return run.info.run_id


# ---- serve -----------------------------------------------------------------------------------


def load_champion(store: MlflowStore) -> TrainedForecaster | None:
    """The registered ``champion``, or ``None`` while no version has been promoted.

    Cheap when nothing was trained: no MLflow import unless the tracking database exists.
    """
    if not store.exists() or store.model_version(REGISTERED_NAME) is None:
        return None
    return load_registered_forecaster(store, REGISTERED_NAME)


def load_serving(store: MlflowStore) -> TrainedForecaster | None:
    """The most recently trained version, whose ``info["serving_plan"]`` names the model that
    serves each target and horizon (:mod:`ml.serving`); ``None`` while nothing was trained."""
    if not store.exists() or store.model_version(REGISTERED_NAME, LATEST_ALIAS) is None:
        return None
    return load_registered_forecaster(store, REGISTERED_NAME, alias=LATEST_ALIAS)


def forecast_latest(model: TrainedForecaster, candles: pl.DataFrame) -> pl.DataFrame:
    """Forecasts from the last bar of each symbol by ``model``'s serving plan (the LSTM where
    it won the hold-out, the winning baseline elsewhere), with conformal intervals:
    ``symbol, origin_ts, horizon, target, prediction, lower_80, upper_80, lower_95,
    upper_95, model, model_version, reason, coverage_80, coverage_95``. A version trained
    before serving plans existed has none: :class:`~ml.errors.InsufficientDataError`."""
    plan = model.info.get("serving_plan")
    version = str(model.info.get("registered_version", ""))
    if not plan:
        raise InsufficientDataError(
            f"forecaster v{version} has no serving plan (trained by an older release): "
            "retrain it (materialize ml/forecaster)",
            needs="a forecaster version with a serving plan",
            has=f"v{version}",
        )
    return serving.serve(plan, candles, model, version)


def too_short_for(model: TrainedForecaster, candles: pl.DataFrame) -> InsufficientDataError:
    """Why :func:`forecast_latest` has no row: no bar has every feature yet, or (everything
    served by the LSTM) no symbol has ``lookback`` consecutive rows with every feature; the
    error says how long the longest run is."""
    frame, _ = build_features(candles, HORIZONS)
    run = (pl.col("ts").diff().over("symbol").fill_null(BAR) != BAR).cum_sum().over("symbol")
    if frame.is_empty():
        usable, _ = inspect_candles(candles, BAR)
        runs = usable.group_by("symbol", "segment").len()["len"]
        longest_bars = int(runs.max() or 0) if runs.len() else 0
        return InsufficientDataError(
            "too little history to forecast: no hourly bar has every feature yet (they need "
            f"{VOL_WINDOW + 1} consecutive hourly bars), the longest run has {longest_bars}",
            needs=f"{VOL_WINDOW + 1} consecutive hourly bars",
            has=str(longest_bars),
        )
    longest = frame.group_by("symbol", run.alias("run")).len()["len"].max()
    lookback = model.config.lookback
    return InsufficientDataError(
        f"too little history to forecast: the LSTM needs {lookback} consecutive hourly "
        f"rows with every feature (about {lookback + VOL_WINDOW} hours without a gap), the "
        f"longest run has {longest}",
        needs=f"{lookback} consecutive hourly rows with every feature",
        has=str(longest),
    )


# ---- watch -----------------------------------------------------------------------------------


def monitored_model(store: MlflowStore) -> tuple[TrainedForecaster | None, str]:
    """The model whose inputs and residuals drift checks watch: the champion, else the most
    recently trained version (so drift is watched before any version is promoted)."""
    model = load_champion(store)
    if model is not None:
        return model, "champion"
    if not store.exists() or store.model_version(REGISTERED_NAME, LATEST_ALIAS) is None:
        return None, "none"
    return load_registered_forecaster(store, REGISTERED_NAME, alias=LATEST_ALIAS), LATEST_ALIAS


def _windows(
    model: TrainedForecaster, frame: pl.DataFrame, recent: timedelta
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Reference = rows up to the model's training end; current = the last ``recent`` of
    ``frame`` after it."""
    train_end = datetime.fromisoformat(model.info["train_end_ts"])
    reference = frame.filter(pl.col("ts") <= train_end)
    current = frame.filter(pl.col("ts") > max(frame["ts"].max() - recent, train_end))
    return reference, current


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


def model_drift(
    model: TrainedForecaster,
    candles: pl.DataFrame,
    subject: str,
    recent: timedelta = RECENT,
    drift_share: float = 0.5,
) -> DriftResult:
    """Drift of the model's ``inputs`` or of its prediction ``residuals``: the training window
    (reference) against the most recent ``recent`` after it (current).

    Residuals (realized - predicted) of the training window are in sample, so slightly
    optimistic; they need ``max horizon`` bars of future, so the current window of residuals
    ends that much before the last bar.
    """
    frame, _ = build_features(candles, HORIZONS)  # the feature set the model was trained on
    if subject == "inputs":
        data, columns = frame, model.feature_cols
    elif subject == "residuals":
        data, columns = residuals(model, frame), residual_columns(model)
        if data.is_empty():
            raise InsufficientDataError(
                "no origin with realized targets to compute residuals",
                needs="origins with realized targets",
                has="0",
            )
    else:
        raise ValueError(f"unknown drift subject {subject!r}: one of {DRIFT_SUBJECTS}")
    reference, current = _windows(model, data, recent)
    return data_drift(reference, current, columns, drift_share=drift_share)
