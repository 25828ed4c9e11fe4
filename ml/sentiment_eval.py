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

Crypto news (issue #21): :func:`load_googlenews_finbert` and :func:`load_cryptonews` read the two
shared crypto-news sets with their *machine* labels (FinBERT, TextBlob), for a domain-agreement
check; :func:`draw_headline_sample`, :func:`load_hand_labels` and :func:`join_labels` give the
seeded, stratified hand-labelled sample its texts at run time; :func:`bootstrap_ci` puts
intervals on its small-n accuracy and macro-F1 (``benchmarks/sentiment_crypto.py``).
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
    return confidence_ece(p.max(axis=1), p.argmax(axis=1) == idx, n_bins)


def confidence_ece(
    confidence: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    n_bins: int = ECE_BINS,
) -> float:
    """ECE from each row's confidence (the probability of the predicted label) and whether
    the prediction was right; the binning of :func:`expected_calibration_error`."""
    conf = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(conf) == 0:
        raise ValueError("no rows to evaluate")
    if len(conf) != len(correct):
        raise ValueError("one correctness flag per confidence is needed")
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.sum() / len(conf) * abs(correct[mask].mean() - conf[mask].mean())
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


# ---- crypto headlines: a domain check on machine labels, and a hand-labelled sample ---------
#
# Two public crypto-news sets are read in place from ``../shared/data`` (never copied into the
# repository; see each folder's PROVENANCE.md). Their sentiment labels are *machine* labels
# (FinBERT's for the Google News set, a TextBlob polarity class for the CryptoNews set), so
# agreement with them is a domain-agreement check, not accuracy. Accuracy is measured on a
# small hand-labelled sample whose keys and labels live in the repository and whose texts are
# joined from the shared files at run time (:func:`join_labels`).

GOOGLENEWS_DIR = "crypto_news_googlenews_finbert_2020_2022"
GOOGLENEWS_CSV = "crypto_news.csv"
CRYPTONEWS_DIR = "crypto_news_cryptonews_2021_2022"
CRYPTONEWS_CSV = "cryptonews.csv"
GOOGLENEWS = "googlenews_finbert"  # the ``dataset`` value of the rows of each set
CRYPTONEWS = "cryptonews"
#: Who produced each set's ``machine_label`` (both automatic, neither human).
MACHINE_LABELLER = {GOOGLENEWS: "finbert", CRYPTONEWS: "textblob"}
#: The columns of :func:`load_googlenews_finbert` and :func:`load_cryptonews`.
CRYPTO_COLUMNS = ("dataset", "key", "year", "title", "text", "machine_label")
HAND_LABEL_COLUMNS = ("dataset", "url", "label", "note")


def _csv_in(path: str | Path, default_name: str) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / default_name
    if not p.is_file():
        raise FileNotFoundError(f"crypto news file not found: {p}")
    return p


def _check_machine_labels(df: pl.DataFrame, where: Path) -> pl.DataFrame:
    bad = sorted(set(df["machine_label"].drop_nulls().to_list()) - set(LABELS))
    if bad or df["machine_label"].null_count():
        raise ValueError(f"{where}: unreadable sentiment labels {bad or ['<missing>']}")
    return df


def load_googlenews_finbert(path: str | Path) -> pl.DataFrame:
    """The Google News crypto headlines with FinBERT's labels (folder or ``crypto_news.csv``).

    Returns :data:`CRYPTO_COLUMNS`: ``dataset`` = ``googlenews_finbert``, ``key`` = the article
    URL, ``year`` of ``created_at``, ``title`` = the headline without the Google News
    ``" - <source_name>"`` suffix (every row has it; it names the publisher, it is not part of
    the headline), ``text`` = ``title`` (the only text the set has, hence what FinBERT
    labelled), ``machine_label`` = ``description_finbert``. An article found under several
    search keywords (same URL, title and label) is kept once.
    """
    p = _csv_in(path, GOOGLENEWS_CSV)
    raw = pl.read_csv(p, infer_schema=False)
    need = {"title", "url", "source_name", "created_at", "description_finbert"}
    if missing := sorted(need - set(raw.columns)):
        raise ValueError(f"{p}: missing columns {missing}")
    suffix = pl.lit(" - ") + pl.col("source_name").fill_null("")
    title = (
        pl.when(pl.col("title").str.ends_with(suffix))
        .then(pl.col("title").str.head(pl.col("title").str.len_chars() - suffix.str.len_chars()))
        .otherwise(pl.col("title"))
        .str.strip_chars()
    )
    df = (
        raw.filter(pl.col("url").is_not_null())
        .unique("url", keep="first", maintain_order=True)
        .select(
            pl.lit(GOOGLENEWS).alias("dataset"),
            pl.col("url").alias("key"),
            pl.col("created_at").str.slice(0, 4).cast(pl.Int32).alias("year"),
            title.alias("title"),
            title.alias("text"),
            pl.col("description_finbert")
            .str.strip_chars()
            .str.to_lowercase()
            .alias("machine_label"),
        )
    )
    return _check_machine_labels(df, p)


def load_cryptonews(path: str | Path) -> pl.DataFrame:
    """The CryptoNews / CoinTelegraph / CryptoPotato set (folder or ``cryptonews.csv``, ``;``
    separated) with its TextBlob-style labels.

    Returns :data:`CRYPTO_COLUMNS`: ``dataset`` = ``cryptonews``, ``key`` = ``url`` as written
    in the file (rows without one cannot be keyed and are dropped), ``year`` of the day-first
    ``date`` (``D-M-YYYY HH:MM``), ``title`` (null when the file's is empty), ``text`` = the
    article's lede (the file's ``text`` column: the field the labels were computed on;
    TextBlob's polarity/subjectivity recomputed on it reproduce the stored values, on the title
    they do not), ``machine_label`` = the ``'class'`` entry of the ``sentiment`` dict string.
    """
    p = _csv_in(path, CRYPTONEWS_CSV)
    raw = pl.read_csv(p, separator=";", infer_schema=False)
    need = {"date", "sentiment", "text", "title", "url"}
    if missing := sorted(need - set(raw.columns)):
        raise ValueError(f"{p}: missing columns {missing}")
    title = pl.col("title").str.strip_chars()
    df = (
        raw.filter(pl.col("url").is_not_null() & (pl.col("url").str.strip_chars() != ""))
        .unique("url", keep="first", maintain_order=True)
        .select(
            pl.lit(CRYPTONEWS).alias("dataset"),
            pl.col("url").alias("key"),
            pl.col("date")
            .str.extract(r"^\s*\d{1,2}-\d{1,2}-(\d{4})", 1)
            .cast(pl.Int32)
            .alias("year"),
            pl.when(title == "").then(None).otherwise(title).alias("title"),
            pl.col("text").str.strip_chars().alias("text"),
            pl.col("sentiment")
            .str.extract(r"""['"]class['"]\s*:\s*['"](\w+)['"]""", 1)
            .str.to_lowercase()
            .alias("machine_label"),
        )
    )
    if df["year"].null_count():
        raise ValueError(f"{p}: {df['year'].null_count()} dates not in the D-M-YYYY form")
    return _check_machine_labels(df, p)


def load_crypto_news(root: str | Path) -> pl.DataFrame:
    """Both crypto sets under ``root`` (the shared data folder), one frame of
    :data:`CRYPTO_COLUMNS` (Google News rows first)."""
    base = Path(root)
    return pl.concat(
        [load_googlenews_finbert(base / GOOGLENEWS_DIR), load_cryptonews(base / CRYPTONEWS_DIR)]
    )


def draw_headline_sample(
    news: pl.DataFrame, n_per_dataset: int = 60, seed: int = 21
) -> pl.DataFrame:
    """A seeded random draw of headlines, stratified by dataset and, within it, by year.

    Every dataset gets ``n_per_dataset`` rows, split as evenly as possible over its years (the
    remainder goes to the earliest years). Eligible: rows with a non-empty ``title``. Within a
    stratum, rows are sorted by ``key`` before the draw, so the sample depends on the data and
    the seed only (not on the file's row order). One ``numpy`` generator, strata visited in
    (dataset, year) order. Returns ``dataset, key, year, title`` sorted that way.
    """
    rng = np.random.default_rng(seed)
    eligible = news.filter(pl.col("title").is_not_null() & (pl.col("title") != ""))
    parts = []
    for dataset in sorted(eligible["dataset"].unique().to_list()):
        rows = eligible.filter(pl.col("dataset") == dataset)
        years = sorted(rows["year"].unique().to_list())
        base, extra = divmod(n_per_dataset, len(years))
        for i, year in enumerate(years):
            stratum = rows.filter(pl.col("year") == year).sort("key")
            n = base + (1 if i < extra else 0)
            if n > stratum.height:
                raise ValueError(f"{dataset} {year}: {stratum.height} rows, cannot draw {n}")
            pick = np.sort(rng.choice(stratum.height, size=n, replace=False))
            parts.append(stratum[pick.tolist()].select("dataset", "key", "year", "title"))
    return pl.concat(parts)


def load_hand_labels(path: str | Path) -> pl.DataFrame:
    """The hand labels (``dataset, url, label, note``; ``url`` is each set's row key), e.g.
    ``benchmarks/data/crypto_headlines_labels.csv`` (who labelled, and how: its
    ``CRYPTO_HEADLINES_PROVENANCE.md``).

    Raises ``ValueError`` on missing columns, unknown labels or datasets, or a key labelled
    twice.
    """
    p = Path(path)
    df = pl.read_csv(p, infer_schema=False)
    if missing := [c for c in HAND_LABEL_COLUMNS if c not in df.columns]:
        raise ValueError(f"{p}: missing columns {missing}")
    df = df.select(
        pl.col("dataset").str.strip_chars(),
        pl.col("url").str.strip_chars(),
        pl.col("label").str.strip_chars().str.to_lowercase(),
        pl.col("note"),
    )
    if bad := sorted(set(df["label"].fill_null("<missing>").to_list()) - set(LABELS)):
        raise ValueError(f"{p}: unknown labels {bad}; expected {', '.join(LABELS)}")
    if bad := sorted(set(df["dataset"].fill_null("<missing>").to_list()) - set(MACHINE_LABELLER)):
        raise ValueError(f"{p}: unknown datasets {bad}; expected {', '.join(MACHINE_LABELLER)}")
    dup = df.filter(pl.struct("dataset", "url").is_duplicated())
    if dup.height:
        raise ValueError(f"{p}: keys labelled more than once: {dup['url'].unique().to_list()[:5]}")
    return df


def join_labels(labels: pl.DataFrame, news: pl.DataFrame) -> pl.DataFrame:
    """The hand labels with their headlines: ``dataset, url, label, note, title,
    machine_label`` in the labels' order.

    Raises ``ValueError`` naming the keys (first five) when any labelled row is not found in
    ``news`` or has no title: the texts are joined at run time from the shared files, and a
    silently shorter sample would change every figure.
    """
    texts = news.select("dataset", pl.col("key").alias("url"), "title", "machine_label").unique(
        ["dataset", "url"], keep="first"
    )
    joined = labels.join(texts, on=["dataset", "url"], how="left", maintain_order="left")
    missing = joined.filter(pl.col("title").is_null())
    if missing.height:
        keys = [f"{d}:{u}" for d, u in missing.select("dataset", "url").iter_rows()][:5]
        raise ValueError(
            f"{missing.height} of {labels.height} labelled rows have no headline in the crypto "
            f"news files (wrong data folder or changed files?): {keys}"
        )
    return joined


def bootstrap_ci(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of accuracy and macro-F1 (rows resampled with
    replacement, ``n_boot`` times, seeded): ``{"accuracy": [lo, hi], "macro_f1": [lo, hi]}``.

    Macro-F1 is over the three :data:`LABELS` as in :func:`classification_metrics` (a class
    missing from a resample counts with F1 0, which widens the interval on tiny samples).
    """
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        raise ValueError("no rows to evaluate")
    k = {label: i for i, label in enumerate(LABELS)}
    t = np.array([k[y] for y in y_true])
    p = np.array([k[y] for y in y_pred])
    rng = np.random.default_rng(seed)
    n, m = len(t), len(LABELS)
    accs, f1s = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        cm = np.bincount(t[idx] * m + p[idx], minlength=m * m).reshape(m, m)
        tp = np.diag(cm).astype(np.float64)
        pred_n, true_n = cm.sum(axis=0), cm.sum(axis=1)
        prec = np.divide(tp, pred_n, out=np.zeros(m), where=pred_n > 0)
        rec = np.divide(tp, true_n, out=np.zeros(m), where=true_n > 0)
        denom = prec + rec
        f1 = np.divide(2 * prec * rec, denom, out=np.zeros(m), where=denom > 0)
        accs[b] = tp.sum() / n
        f1s[b] = f1.mean()
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {
        "accuracy": [float(x) for x in np.percentile(accs, q)],
        "macro_f1": [float(x) for x in np.percentile(f1s, q)],
    }
