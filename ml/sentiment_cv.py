"""Cross-validated estimates of the sentiment recipe, on the development rows only.

Why: a figure measured on the split that also chose the recipe is optimistic (issue #21: 0.877
on the project's own split, 0.836 on unseen data). Model selection therefore compares recipes
by k-fold cross-validation on the development rows (the recipe's train + validation split,
:func:`ml.sentiment_eval.split_labelled` with its seed), reporting mean and standard deviation
over folds and seeds; the test split is never read here. Each fold trains exactly like
``sentinance sentiment train``: an inner stratified validation split for the epoch choice and
the temperature, agreement loss weights, the same :class:`~ml.sentiment_transformer.TrainConfig`.

Every fold is scored on all its held-out rows (PhraseBank's 50 %-agreement data) and on those
whose annotators all agreed (``max_agreement == 100``): the literature's figures differ by about
ten points between the two.

The int8 question is cross-validated too: every fold scores the same weights in fp32 and in
int8 (on the runtime that would serve it), and :func:`int8_decision` keeps int8 when the mean
paired loss over folds and seeds is within the recipe's one-point rule.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from ml.sentiment import LABELS
from ml.sentiment_eval import AGREEMENT_COL, classification_metrics, dedupe, split_labelled

ALL_AGREE = 100.0
COUNTS = ("n", "allagree_n")  # row counts in a run's scores, not summarised


def development_rows(
    data: pl.DataFrame, test_frac: float = 0.2, val_frac: float = 0.1, split_seed: int = 7
) -> pl.DataFrame:
    """The recipe's train + validation rows: everything but its test split (never read)."""
    split = split_labelled(data, test_frac=test_frac, val_frac=val_frac, seed=split_seed)
    return pl.concat([split.train, split.val], how="diagonal_relaxed")


def _stratified_assignment(labels: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold number of each row: per label, rows in a seeded random order dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for label in LABELS:
        idx = np.array([i for i, y in enumerate(labels) if y == label], dtype=np.int64)
        if idx.size:
            fold[idx[rng.permutation(idx.size)]] = np.arange(idx.size) % k
    return fold


def cv_folds(
    dev: pl.DataFrame, k: int = 5, seed: int = 7
) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """``k`` stratified ``(fit, held_out)`` pairs over the unique sentences of ``dev``; every
    row is held out exactly once."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    rows = dedupe(dev)
    smallest = min(rows.filter(pl.col("label") == y).height for y in LABELS)
    if smallest < k:
        raise ValueError(f"a label has {smallest} sentences: too few for {k} folds")
    fold = _stratified_assignment(rows["label"].to_list(), k, seed)
    tagged = rows.with_columns(pl.Series("_fold", fold))
    return [
        (
            tagged.filter(pl.col("_fold") != f).drop("_fold"),
            tagged.filter(pl.col("_fold") == f).drop("_fold"),
        )
        for f in range(k)
    ]


def inner_split(
    fit: pl.DataFrame, val_frac: float = 0.125, seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A stratified validation split of a fold's fitting rows (epoch choice, temperature):
    ``val_frac`` 0.125 of 80 % is the recipe's 10 % of the whole."""
    fold = _stratified_assignment(fit["label"].to_list(), round(1 / val_frac), seed)
    tagged = fit.with_columns(pl.Series("_v", fold == 0))
    return tagged.filter(~pl.col("_v")).drop("_v"), tagged.filter(pl.col("_v")).drop("_v")


def subset_scores(
    y_true: Sequence[str], y_pred: Sequence[str], agreement: Sequence[Any] | None
) -> dict[str, float]:
    """Accuracy and macro-F1 on every row, and on the all-agree rows when agreement is known."""
    out: dict[str, float] = {}
    m = classification_metrics(y_true, y_pred)
    out["accuracy"], out["macro_f1"] = m["accuracy"], m["macro_f1"]
    if agreement is not None:
        keep = [i for i, a in enumerate(agreement) if a is not None and float(a) >= ALL_AGREE]
        if keep:
            sub = classification_metrics([y_true[i] for i in keep], [y_pred[i] for i in keep])
            out["allagree_accuracy"], out["allagree_macro_f1"] = sub["accuracy"], sub["macro_f1"]
            out["allagree_n"] = float(len(keep))
    out["n"] = float(len(y_true))
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (n - 1), its standard error, min and max of ``values``
    (empty: ``{}``)."""
    if not values:
        return {}
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": statistics.fmean(values),
        "sd": sd,
        "se": sd / len(values) ** 0.5,
        "min": min(values),
        "max": max(values),
        "runs": float(len(values)),
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """:func:`spread` of each score over the runs."""
    keys = sorted({k for r in runs for k in r["scores"] if k not in COUNTS})
    return {
        key: spread([float(r["scores"][key]) for r in runs if key in r["scores"]]) for key in keys
    }


def variant_scores(
    model: Any, held_out: pl.DataFrame, agreement: Sequence[Any] | None
) -> dict[str, float]:
    """Scores of one runtime of a fold's model on its held-out rows, with the expected
    calibration error of its (temperature-scaled) probabilities: ``ece``."""
    from ml.sentiment_eval import calibration_report

    texts, truth = held_out["text"].to_list(), held_out["label"].to_list()
    logits = model.logits(texts)
    labels = [LABELS[i] for i in np.argmax(logits, axis=1)]
    scores = subset_scores(truth, labels, agreement)
    scores["ece"] = calibration_report(logits, truth, model.temperature)["ece_after"]
    return scores


def paired_difference(
    runs: Sequence[dict[str, Any]], key: str = "accuracy", a: str = "int8", b: str = "fp32"
) -> dict[str, float]:
    """:func:`spread` over runs of ``variants[a][key] - variants[b][key]`` (same fold,
    same seed, same weights: a paired comparison, free of the fold-to-fold spread)."""
    diffs = [
        float(r["variants"][a][key]) - float(r["variants"][b][key])
        for r in runs
        if a in r.get("variants", {}) and b in r.get("variants", {})
    ]
    return spread(diffs)


def recipe_difference(
    runs: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]], key: str = "macro_f1"
) -> dict[str, float]:
    """:func:`spread` over the (fold, seed) runs both hold of ``scores[key]`` in
    ``runs`` minus ``other`` (two recipes on the same folds: a paired comparison)."""
    theirs = {(r["fold"], r["seed"]): r for r in other}
    diffs = [
        float(r["scores"][key]) - float(theirs[(r["fold"], r["seed"])]["scores"][key])
        for r in runs
        if (r["fold"], r["seed"]) in theirs and key in r["scores"]
    ]
    return spread(diffs)


def int8_decision(runs: Sequence[dict[str, Any]], max_loss: float) -> dict[str, Any]:
    """The served recipe's int8 question answered by cross-validation: int8 is kept when its
    mean paired accuracy loss over folds and seeds is at most ``max_loss`` (the recipe's
    one-point rule, here on every held-out fold instead of one validation split)."""
    diff = paired_difference(runs)
    if not diff:
        return {"decided": False, "reason": "no run scored both fp32 and int8"}
    return {
        "decided": True,
        "keep_int8": diff["mean"] >= -max_loss,
        "max_loss": max_loss,
        "accuracy_difference": diff,
        "macro_f1_difference": paired_difference(runs, "macro_f1"),
        "kept_by_validation_rule": sum(bool(r.get("quantized")) for r in runs),
        "runs": len(runs),
    }


def run_fold(
    fit: pl.DataFrame,
    held_out: pl.DataFrame,
    config: Any,
    seed: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the recipe on one fold's fitting rows (seed ``seed``) and score its held-out rows:
    ``scores`` for the model as served (int8 when the validation rule kept it), ``variants``
    for fp32 and int8 each (same weights), so the int8 choice itself is cross-validated."""
    from ml.sentiment_transformer import agreement_weights, fine_tune, int8_model

    cfg = replace(config, seed=seed)
    train, val = inner_split(fit, seed=seed)
    has_agreement = AGREEMENT_COL in train.columns
    weights = agreement_weights(
        train[AGREEMENT_COL].to_list() if has_agreement else None,
        cfg.low_agreement_weight,
        train.height,
    )
    result = fine_tune(
        train["text"].to_list(),
        train["label"].to_list(),
        val["text"].to_list(),
        val["label"].to_list(),
        config=cfg,
        log=log,
        train_weights=weights,
    )
    agreement = held_out[AGREEMENT_COL].to_list() if AGREEMENT_COL in held_out.columns else None
    fp32 = result.model
    int8 = result.int8 if result.int8 is not None else int8_model(fp32)
    int8.temperature = fp32.temperature
    variants = {
        "fp32": variant_scores(fp32, held_out, agreement),
        "int8": variant_scores(int8, held_out, agreement),
    }
    return {
        "seed": seed,
        "best_epoch": result.best_epoch,
        "quantized": result.quantize,
        "int8_runtime": int8.runtime,
        "temperature": fp32.temperature,
        "train_seconds": result.train_seconds,
        "n_train": train.height,
        "n_val": val.height,
        "scores": variants["int8" if result.quantize else "fp32"],
        "variants": variants,
    }
