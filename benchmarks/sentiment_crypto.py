"""Sentiment on crypto news: agreement with two sets' machine labels, accuracy on hand labels.

    .venv/bin/python benchmarks/sentiment_crypto.py                  # VADER only
    nice -n 10 .venv/bin/python benchmarks/sentiment_crypto.py --model-dir DIR  # + transformer
    .venv/bin/python benchmarks/sentiment_crypto.py --draw-sample /tmp/draw.csv  # labelling draw

Data, read in place from ``../shared/data`` beside the repository (never copied; licences and
label origin in each folder's PROVENANCE.md):

* ``crypto_news_googlenews_finbert_2020_2022``: headlines with **FinBERT's** labels;
* ``crypto_news_cryptonews_2021_2022``: headlines and ledes with a **TextBlob** polarity class,
  computed on the lede (the ``text`` column), which is therefore what is scored here by default
  (``--cryptonews-field title`` scores the headline against the same label instead).

Both label sets are *machine* labels: agreement with them says how close a model comes to
FinBERT / TextBlob on crypto text (a domain-agreement check), not whether it is right.

Accuracy is measured on ``benchmarks/data/crypto_headlines_labels.csv``: 120 headlines drawn by
a seeded, stratified random draw (:func:`ml.sentiment_eval.draw_headline_sample`: 60 per set,
split evenly over each set's years, seed 21) and labelled one by one by a single annotator
(who, and the guideline: ``benchmarks/data/CRYPTO_HEADLINES_PROVENANCE.md``; not yet reviewed
by a second person). The repository keeps only the keys and
labels; the headlines are joined from the shared files at run time. Reported for VADER, the
transformer (headline only) and the machine labels of the same rows, with percentile bootstrap
95 % intervals: n = 120 is small, the intervals are wide.

Prints one JSON document on stdout (and writes it with ``--out``) and a short table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ml.sentiment import LABELS, SentimentModel, VaderModel  # noqa: E402
from ml.sentiment_eval import (  # noqa: E402
    CRYPTONEWS,
    GOOGLENEWS,
    MACHINE_LABELLER,
    bootstrap_ci,
    classification_metrics,
    confidence_ece,
    draw_headline_sample,
    join_labels,
    load_crypto_news,
    load_hand_labels,
)

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_LABELS = ROOT / "benchmarks" / "data" / "crypto_headlines_labels.csv"
NOTE = (
    "machine_agreement: agreement with FinBERT's (googlenews_finbert) and TextBlob's "
    "(cryptonews) automatic labels, a domain-agreement check, not accuracy. hand_sample: "
    "accuracy against one annotator's labels of 120 headlines (see "
    "benchmarks/data/CRYPTO_HEADLINES_PROVENANCE.md); small n, see the bootstrap 95% intervals. "
    "confidence: the transformer's calibrated probability (fitted on PhraseBank) vs its hit rate."
)
SAMPLE_SEED = 21
SAMPLE_PER_DATASET = 60


def _rounded(metrics: dict[str, Any], digits: int = 4) -> dict[str, Any]:
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in metrics.items()}


def _label_counts(labels: list[str]) -> dict[str, int]:
    return {label: labels.count(label) for label in LABELS}


def score(
    model: SentimentModel, texts: list[str], batch_size: int
) -> tuple[list[str], list[float | None], float]:
    """Labels, confidences and sentences per second of ``model`` on ``texts``."""
    t0 = time.perf_counter()
    preds = model.predict(texts, batch_size)
    rate = len(texts) / max(time.perf_counter() - t0, 1e-9)
    return [p.label for p in preds], [p.confidence for p in preds], rate


def confidence_summary(
    y_true: list[str], y_pred: list[str], conf: list[float | None]
) -> dict[str, Any] | None:
    """Mean calibrated confidence when right / wrong and the 15-bin ECE (``None`` when the
    model gives no confidence, as VADER)."""
    if any(c is None for c in conf):
        return None
    c = np.array(conf, dtype=np.float64)
    ok = np.array([t == p for t, p in zip(y_true, y_pred, strict=True)])
    return {
        "mean_confidence": round(float(c.mean()), 4),
        "mean_confidence_right": round(float(c[ok].mean()), 4) if ok.any() else None,
        "mean_confidence_wrong": round(float(c[~ok].mean()), 4) if (~ok).any() else None,
        "ece_15_bins": round(confidence_ece(c, ok), 4),
    }


def machine_agreement(
    news: pl.DataFrame,
    models: dict[str, SentimentModel],
    batch_size: int,
    cryptonews_field: str,
) -> dict[str, Any]:
    """Per set: each model's agreement with the set's machine labels (all rows with text)."""
    out: dict[str, Any] = {}
    for dataset in (GOOGLENEWS, CRYPTONEWS):
        field = cryptonews_field if dataset == CRYPTONEWS else "title"
        rows = news.filter(
            (pl.col("dataset") == dataset)
            & pl.col(field).is_not_null()
            & (pl.col(field).str.strip_chars() != "")
        )
        texts, labels = rows[field].to_list(), rows["machine_label"].to_list()
        block: dict[str, Any] = {
            "labeller": MACHINE_LABELLER[dataset],
            "scored_field": field,
            "n": len(texts),
            "machine_label_counts": _label_counts(labels),
            "models": {},
        }
        for name, model in models.items():
            preds, _, rate = score(model, texts, batch_size)
            block["models"][name] = _rounded(classification_metrics(labels, preds)) | {
                "sentences_per_s": round(rate, 1)
            }
        out[dataset] = block
    return out


def hand_sample(
    news: pl.DataFrame,
    labels_path: Path,
    models: dict[str, SentimentModel],
    batch_size: int,
    n_boot: int,
) -> dict[str, Any]:
    """Each model and each set's machine labels against the hand labels (headlines only)."""
    joined = join_labels(load_hand_labels(labels_path), news)
    y = joined["label"].to_list()
    texts = joined["title"].to_list()
    out: dict[str, Any] = {
        "labels_file": str(
            labels_path.relative_to(ROOT) if labels_path.is_relative_to(ROOT) else labels_path
        ),
        "n": len(y),
        "by_dataset_n": dict(joined.group_by("dataset").len().sort("dataset").iter_rows()),
        "hand_label_counts": _label_counts(y),
        "bootstrap": {"resamples": n_boot, "level": 0.95, "method": "percentile, rows"},
        "models": {},
        "machine_labels_vs_hand": {},
    }
    majority = max(LABELS, key=y.count)
    out["majority_class"] = {"label": majority, "accuracy": round(y.count(majority) / len(y), 4)}
    for name, model in models.items():
        preds, conf, _ = score(model, texts, batch_size)
        m = _rounded(classification_metrics(y, preds))
        m["ci95"] = {
            k: [round(x, 4) for x in v] for k, v in bootstrap_ci(y, preds, n_boot=n_boot).items()
        }
        right = pl.Series([p == t for p, t in zip(preds, y, strict=True)])
        m["by_dataset_accuracy"] = {
            d: round(float(right.filter(joined["dataset"] == d).mean()), 4)
            for d in sorted(set(joined["dataset"].to_list()))
        }
        m["confidence"] = confidence_summary(y, preds, conf)
        out["models"][name] = m
    for dataset, labeller in MACHINE_LABELLER.items():
        part = joined.filter(pl.col("dataset") == dataset)
        if part.is_empty():
            continue
        yt, yp = part["label"].to_list(), part["machine_label"].to_list()
        m = _rounded(classification_metrics(yt, yp))
        m["ci95"] = {
            k: [round(x, 4) for x in v] for k, v in bootstrap_ci(yt, yp, n_boot=n_boot).items()
        }
        m["labelled_field"] = "lede (text column)" if dataset == CRYPTONEWS else "headline"
        out["machine_labels_vs_hand"][f"{labeller}_on_{dataset}"] = m
    return out


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(report: dict[str, Any]) -> str:
    """A short readable summary of the JSON report."""
    lines = ["Agreement with machine labels (NOT accuracy: FinBERT / TextBlob labels)"]
    lines.append(
        f"{'set':<22}{'labeller':<10}{'field':<7}{'n':>6}  {'model':<14}{'agree':>7}{'m-F1':>7}"
    )
    for dataset, block in report["machine_agreement"].items():
        for name, m in block["models"].items():
            lines.append(
                f"{dataset:<22}{block['labeller']:<10}{block['scored_field']:<7}{block['n']:>6}  "
                f"{name:<14}{m['accuracy']:>7.3f}{m['macro_f1']:>7.3f}"
            )
    hs = report.get("hand_sample")
    if hs:
        lines.append("")
        lines.append(
            f"Hand-labelled headlines (n={hs['n']}, one annotator, small: bootstrap 95% CI; "
            f"majority '{hs['majority_class']['label']}' = {hs['majority_class']['accuracy']:.3f})"
        )
        lines.append(f"{'scorer':<34}{'n':>5}{'acc':>7}  {'95% CI':<15}{'m-F1':>7}  {'95% CI':<15}")
        rows = list(hs["models"].items()) + list(hs["machine_labels_vs_hand"].items())
        for name, m in rows:
            ca, cf = m["ci95"]["accuracy"], m["ci95"]["macro_f1"]
            lines.append(
                f"{name:<34}{m['n']:>5}{m['accuracy']:>7.3f}  [{ca[0]:.3f}, {ca[1]:.3f}]  "
                f"{m['macro_f1']:>7.3f}  [{cf[0]:.3f}, {cf[1]:.3f}]"
            )
        for name, m in hs["models"].items():
            c = m.get("confidence")
            if c:
                lines.append(
                    f"{name} confidence: mean {c['mean_confidence']:.3f} (right "
                    f"{_num(c['mean_confidence_right'])}, wrong "
                    f"{_num(c['mean_confidence_wrong'])}) vs accuracy {m['accuracy']:.3f}; "
                    f"ECE {c['ece_15_bins']:.3f} (15 bins)"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--model-dir", type=Path, help="also measure this saved transformer")
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="hand labels CSV")
    ap.add_argument(
        "--cryptonews-field",
        choices=("text", "title"),
        default="text",
        help="what to score against the cryptonews labels (text: the lede they were made on)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument(
        "--draw-sample",
        type=Path,
        help="write the seeded labelling draw (dataset, key, year, title) here and stop; keep "
        "it outside the repository (it holds the headlines)",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    try:
        news = load_crypto_news(args.data)
    except FileNotFoundError as exc:
        print(
            f"crypto news not found ({exc}); needs ../shared/data beside the repo", file=sys.stderr
        )
        return 2
    if args.draw_sample:
        draw_headline_sample(news, SAMPLE_PER_DATASET, SAMPLE_SEED).write_csv(args.draw_sample)
        print(f"wrote the labelling draw to {args.draw_sample}", file=sys.stderr)
        return 0

    models: dict[str, SentimentModel] = {"vader": VaderModel()}
    report: dict[str, Any] = {
        "note": NOTE,
        "data": str(args.data),
        "threads": args.threads,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "models": {"vader": models["vader"].version},
    }
    if args.model_dir:
        from ml.sentiment_transformer import load_transformer, set_threads

        set_threads(args.threads)
        transformer = load_transformer(args.model_dir, threads=args.threads)
        models["transformer"] = transformer
        report["models"]["transformer"] = (
            f"{transformer.version} ({transformer.runtime}, T={transformer.temperature:.4f})"
        )
        report["model_dir"] = str(args.model_dir)
    report["machine_agreement"] = machine_agreement(
        news, models, args.batch_size, args.cryptonews_field
    )
    if args.labels.is_file():
        report["hand_sample"] = hand_sample(
            news, args.labels, models, args.batch_size, args.bootstrap
        )
    else:
        print(f"no hand labels at {args.labels}; skipped the hand sample", file=sys.stderr)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    doc = json.dumps(report, indent=1)
    print(doc)
    print(table(report), file=sys.stderr)
    if args.out:
        args.out.write_text(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
