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

Calibration: :func:`fit_temperature` fits one temperature ``T`` (Guo et al. 2017, "On
Calibration of Modern Neural Networks") that minimises the negative log-likelihood of
``softmax(logits / T)`` on the validation split; dividing by ``T`` never changes the argmax, so
labels and accuracy stay as they were and only the confidence moves.
:func:`expected_calibration_error` measures the result on the test split: confidence = the top
class probability, 15 equal-width bins on ``[0, 1]``, ``ECE = sum_b n_b / n * |acc_b - conf_b|``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ml.errors import InsufficientDataError
from ml.sentiment import LABELS

AGREEMENT_COL = "max_agreement"
#: Other names an annotator-agreement column may carry in a plain ``text,label`` CSV; all are read
#: into :data:`AGREEMENT_COL` (in percent: values in ``(0, 1]`` are taken as fractions).
AGREEMENT_ALIASES = (AGREEMENT_COL, "agreement", "annotator_agreement")
ECE_BINS = 15
PHRASEBANK_CSV = "financial_phrasebank.csv"
#: The Financial PhraseBank release's files, by the agreement level (percent) they stand for.
PHRASEBANK_TXT = {
    50.0: "Sentences_50Agree.txt",
    66.0: "Sentences_66Agree.txt",
    75.0: "Sentences_75Agree.txt",
    100.0: "Sentences_AllAgree.txt",
}


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    val: pl.DataFrame
    test: pl.DataFrame


def load_labelled(path: str | Path) -> pl.DataFrame:
    """``text, label`` rows from a CSV (a folder: its ``financial_phrasebank.csv``), plus
    ``max_agreement`` when the file has it (used only to weight training sentences).

    The folder and a plain CSV are read by this one function into the same frame, so
    :func:`ml.sentiment_lifecycle.prepare_training` trains them with the same recipe: the
    agreement column may be named as in :data:`AGREEMENT_ALIASES` and given in percent
    (PhraseBank: 50..100) or as a fraction (0.5..1.0, converted to percent).

    Raises ``ValueError`` naming the problem when columns are missing, labels are unknown or
    there are no rows.
    """
    p = Path(path)
    if p.is_dir() and not (p / PHRASEBANK_CSV).is_file() and _phrasebank_txt_files(p):
        df = _read_phrasebank_txt(p)
    else:
        if p.is_dir():
            p = p / PHRASEBANK_CSV
        if not p.is_file():
            raise FileNotFoundError(f"labelled data not found: {p}")
        df = pl.read_csv(p, infer_schema=False)
    df = df.rename({c: c.strip().lstrip("\ufeff").lower() for c in df.columns})
    text_col = "text" if "text" in df.columns else "sentence" if "sentence" in df.columns else None
    if text_col is None or "label" not in df.columns:
        raise ValueError(f"{p}: need columns text (or sentence) and label, got {df.columns}")
    cols = [
        pl.col(text_col).str.strip_chars().alias("text"),
        pl.col("label").str.strip_chars().str.to_lowercase().alias("label"),
    ]
    agree_col = next((c for c in AGREEMENT_ALIASES if c in df.columns), None)
    if agree_col is not None:  # PhraseBank: annotator agreement in percent (50..100)
        cols.append(pl.col(agree_col).cast(pl.Float64, strict=False).alias(AGREEMENT_COL))
    df = df.select(cols).filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
    if agree_col is not None:
        levels = df[AGREEMENT_COL].drop_nulls()
        if levels.len() and float(levels.max()) <= 1.0:
            df = df.with_columns(pl.col(AGREEMENT_COL) * 100.0)
    bad = sorted(set(df["label"].drop_nulls().to_list()) - set(LABELS)) + (
        ["<missing>"] if df["label"].null_count() else []
    )
    if bad:
        raise ValueError(f"{p}: unknown labels {bad}; expected {', '.join(LABELS)}")
    if df.is_empty():
        raise ValueError(f"{p}: no labelled rows")
    return df


def _phrasebank_txt_files(folder: Path) -> dict[float, Path]:
    """The release's ``Sentences_<level>.txt`` files by agreement level (in the folder or its
    ``FinancialPhraseBank-v1.0`` sub-folder)."""
    found: dict[float, Path] = {}
    for base in (folder, folder / "FinancialPhraseBank-v1.0"):
        for level, name in PHRASEBANK_TXT.items():
            if level not in found and (base / name).is_file():
                found[level] = base / name
    return found


def _read_phrasebank_txt(folder: Path) -> pl.DataFrame:
    """The original release (``sentence@label`` lines, latin-1) as ``sentence, label,
    max_agreement`` rows: one row per line of the widest file, each with the strictest
    agreement file its sentence/label pair appears in (what ``financial_phrasebank.csv``
    holds)."""
    files = _phrasebank_txt_files(folder)
    levels: dict[tuple[str, str], float] = {}
    widest: list[tuple[str, str]] = []
    for level in sorted(files):  # 50 first: the superset
        rows = []
        for line in files[level].read_text(encoding="latin-1").splitlines():
            sentence, sep, label = line.rpartition("@")
            if sep and sentence.strip():
                rows.append((sentence.strip(), label.strip()))
        for row in rows:
            levels[row] = level
        if not widest:
            widest = rows
    return pl.DataFrame(
        {
            "sentence": [r[0] for r in widest],
            "label": [r[1] for r in widest],
            AGREEMENT_COL: [str(levels[r]) for r in widest],
        }
    )


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


# ---- calibration ----------------------------------------------------------------------------


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)``."""
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def nll(logits: np.ndarray, y: Sequence[int] | np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the class indices ``y`` under ``softmax(logits / T)``."""
    z = _log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    idx = np.asarray(y, dtype=np.int64)
    return float(-z[np.arange(len(idx)), idx].mean())


def fit_temperature(
    logits: np.ndarray, y: Sequence[int] | np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature ``T`` minimising :func:`nll` of ``logits / T`` (bounded search on
    ``log T``, so ``T`` stays positive; 1.0 for no rows)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        return 1.0
    if len(z) != len(y):
        raise ValueError("one label per row of logits is needed")
    res = minimize_scalar(
        lambda log_t: nll(z, y, math.exp(log_t)),
        bounds=(math.log(bounds[0]), math.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(res.x))


def expected_calibration_error(
    probs: np.ndarray, y: Sequence[int] | np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """ECE with ``n_bins`` equal-width confidence bins (confidence = the top probability; bin
    ``b`` holds ``(b/n_bins, (b+1)/n_bins]``, the first also 0): the row-weighted mean of
    ``|accuracy - mean confidence|`` over the non-empty bins."""
    p = np.asarray(probs, dtype=np.float64)
    idx = np.asarray(y, dtype=np.int64)
    if len(p) == 0:
        raise ValueError("no rows to evaluate")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == idx).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.sum() / len(p) * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def calibration_report(
    logits: np.ndarray, labels: Sequence[str], temperature: float, n_bins: int = ECE_BINS
) -> dict[str, float]:
    """ECE and NLL of ``logits`` (in :data:`LABELS` order) on ``labels`` before (T = 1) and
    after temperature scaling: ``{temperature, ece_before, ece_after, nll_before, nll_after}``."""
    k = {label: i for i, label in enumerate(LABELS)}
    y = np.array([k[t] for t in labels], dtype=np.int64)
    return {
        "temperature": float(temperature),
        "ece_before": expected_calibration_error(softmax(logits), y, n_bins),
        "ece_after": expected_calibration_error(softmax(logits, temperature), y, n_bins),
        "nll_before": nll(logits, y),
        "nll_after": nll(logits, y, temperature),
    }
