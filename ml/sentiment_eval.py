"""Labelled sentiment data and honest evaluation: splits, metrics, McNemar's test.

Data: a CSV with a text column (``text``, or ``sentence`` as in the Financial PhraseBank CSV)
and ``label`` in ``positive | neutral | negative``. :func:`split_labelled` de-duplicates by text
first (the PhraseBank agreement files are nested, so one sentence can appear several times) and
then draws a seeded split stratified by label: the held-out test set never shares a sentence
with training or validation. :func:`heldout_digest` fingerprints a test set, so that two
numbers are only compared when they come from the same rows.

McNemar's test compares two classifiers on the *same* rows through the discordant pairs only:
``b`` = rows model A gets right and B wrong, ``c`` = the reverse. Under "equal accuracy" each
discordant row is a fair coin, so the two-sided p-value is the exact binomial test of ``b`` in
``b + c`` (valid for any count, unlike the chi-square approximation). The chi-square statistic
with continuity correction is reported too, for readers who expect it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ml.errors import InsufficientDataError
from ml.sentiment import LABELS

AGREEMENT_COL = "max_agreement"


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    val: pl.DataFrame
    test: pl.DataFrame


def load_labelled(path: str | Path) -> pl.DataFrame:
    """``text, label`` rows from a CSV (a folder: its ``financial_phrasebank.csv``), plus
    ``max_agreement`` when the file has it (used only to weight training sentences).

    Raises ``ValueError`` naming the problem when columns are missing, labels are unknown or
    there are no rows.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "financial_phrasebank.csv"
    if not p.is_file():
        raise FileNotFoundError(f"labelled data not found: {p}")
    df = pl.read_csv(p, infer_schema=False)
    text_col = "text" if "text" in df.columns else "sentence" if "sentence" in df.columns else None
    if text_col is None or "label" not in df.columns:
        raise ValueError(f"{p}: need columns text (or sentence) and label, got {df.columns}")
    cols = [
        pl.col(text_col).str.strip_chars().alias("text"),
        pl.col("label").str.strip_chars().str.to_lowercase().alias("label"),
    ]
    if AGREEMENT_COL in df.columns:  # PhraseBank: annotator agreement in percent (50..100)
        cols.append(pl.col(AGREEMENT_COL).cast(pl.Float64, strict=False))
    df = df.select(cols).filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
    bad = sorted(set(df["label"].drop_nulls().to_list()) - set(LABELS)) + (
        ["<missing>"] if df["label"].null_count() else []
    )
    if bad:
        raise ValueError(f"{p}: unknown labels {bad}; expected {', '.join(LABELS)}")
    if df.is_empty():
        raise ValueError(f"{p}: no labelled rows")
    return df


def dedupe(df: pl.DataFrame) -> pl.DataFrame:
    """One row per text; a text labelled differently in several rows keeps its most frequent
    label (ties: the first seen), as the PhraseBank's majority vote would. Extra columns
    (``max_agreement``) keep their maximum over the rows of that text and label."""
    extra = [pl.col(c).max() for c in df.columns if c not in ("text", "label")]
    counted = (
        df.with_row_index("_i")
        .group_by("text", "label")
        .agg(pl.len().alias("_n"), pl.col("_i").min(), *extra)
        .sort(["_n", "_i"], descending=[True, False])
    )
    return counted.unique("text", keep="first", maintain_order=True).sort("_i").drop("_n", "_i")


#: The least labelled sentences per label (distinct texts) to fine-tune and evaluate on: with a
#: 20 % test and 10 % validation share per label, every label then has 2 test sentences and 1
#: validation sentence. A classifier that never saw a label cannot be judged on it.
MIN_PER_LABEL = 10


def enough_labelled(df: pl.DataFrame, min_per_label: int = MIN_PER_LABEL) -> None:
    """Raise :class:`~ml.errors.InsufficientDataError` unless every label of :data:`LABELS` has
    ``min_per_label`` distinct labelled sentences."""
    counts = dict(dedupe(df).group_by("label").len().iter_rows())
    has = {label: int(counts.get(label, 0)) for label in LABELS}
    short = {label: n for label, n in has.items() if n < min_per_label}
    if short:
        have = ", ".join(f"{n} {label}" for label, n in has.items())
        raise InsufficientDataError(
            f"too few labelled sentences to fine-tune and evaluate: needs {min_per_label} "
            f"distinct sentences per label ({', '.join(LABELS)}), has {have}",
            needs=f"{min_per_label} labelled sentences per label",
            has=have,
        )


def split_labelled(
    df: pl.DataFrame, test_frac: float = 0.2, val_frac: float = 0.1, seed: int = 7
) -> Split:
    """Seeded split by unique text, stratified by label: ``test_frac`` of each class for test,
    ``val_frac`` (of the whole) for validation, the rest for training."""
    if not (0 < test_frac < 1 and 0 <= val_frac < 1 and test_frac + val_frac < 1):
        raise ValueError("need 0 < test_frac, 0 <= val_frac and test_frac + val_frac < 1")
    data = dedupe(df)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    labels = data["label"].to_list()
    for label in LABELS:
        idx = np.array([i for i, y in enumerate(labels) if y == label])
        if idx.size == 0:
            continue
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(test_frac * idx.size))
        n_val = int(round(val_frac * idx.size))
        parts["test"] += idx[:n_test].tolist()
        parts["val"] += idx[n_test : n_test + n_val].tolist()
        parts["train"] += idx[n_test + n_val :].tolist()
    take = {k: data[sorted(v)] for k, v in parts.items()}
    return Split(train=take["train"], val=take["val"], test=take["test"])


def heldout_digest(texts: Sequence[str], labels: Sequence[str]) -> str:
    """Order-independent SHA-256 of a labelled set (identifies "the same held-out set")."""
    h = hashlib.sha256()
    for t, y in sorted(zip(texts, labels, strict=True)):
        h.update(f"{t}\t{y}\n".encode())
    return h.hexdigest()


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (``confusion[true][pred]`` counts, in :data:`LABELS` order)."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        raise ValueError("no rows to evaluate")
    k = {label: i for i, label in enumerate(LABELS)}
    cm = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[k[t], k[p]] += 1
    out: dict[str, Any] = {"n": int(cm.sum()), "accuracy": float(np.trace(cm) / cm.sum())}
    f1s = []
    for label, i in k.items():
        tp = cm[i, i]
        pred_n, true_n = cm[:, i].sum(), cm[i, :].sum()
        precision = float(tp / pred_n) if pred_n else 0.0
        recall = float(tp / true_n) if true_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[f"precision_{label}"] = precision
        out[f"recall_{label}"] = recall
        out[f"f1_{label}"] = f1
        out[f"support_{label}"] = int(true_n)
        f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s))
    out["confusion"] = {t: {p: int(cm[k[t], k[p]]) for p in LABELS} for t in LABELS}
    return out


def confusion_frame(metrics: dict[str, Any], model: str) -> pl.DataFrame:
    """Long ``model, true_label, predicted_label, count`` frame of a confusion matrix."""
    rows = [
        {"model": model, "true_label": t, "predicted_label": p, "count": c}
        for t, preds in metrics["confusion"].items()
        for p, c in preds.items()
    ]
    return pl.DataFrame(rows)


def numeric_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """The scalar entries of :func:`classification_metrics`, keys prefixed (for MLflow)."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def mcnemar(
    y_true: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str]
) -> dict[str, float]:
    """McNemar's test of models A and B on the same rows (see module docstring).

    Returns ``b`` (A right, B wrong), ``c`` (A wrong, B right), ``statistic`` (chi-square with
    continuity correction; 0 when there are no discordant pairs) and ``p_value`` (exact
    two-sided binomial; 1.0 without discordant pairs).
    """
    from scipy.stats import binomtest

    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError("y_true, pred_a and pred_b differ in length")
    a_ok = np.array([t == p for t, p in zip(y_true, pred_a, strict=True)])
    b_ok = np.array([t == p for t, p in zip(y_true, pred_b, strict=True)])
    b = int(np.sum(a_ok & ~b_ok))
    c = int(np.sum(~a_ok & b_ok))
    if b + c == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0}
    stat = (abs(b - c) - 1) ** 2 / (b + c)
    p = float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return {"b": b, "c": c, "statistic": float(stat), "p_value": min(1.0, p)}
