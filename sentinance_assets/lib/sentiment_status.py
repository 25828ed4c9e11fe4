"""Which model scores the news, said plainly, and the sentiment models' held-out metrics.

Shared by the ``sentinance demo`` summary, the app's News & sentiment page and its Models page.
Reads only the settings and the MLflow SQLite store opened read-only
(:mod:`sentinance_assets.lib.registry`): no model is loaded, MLflow is not imported.

Out of the box nothing is trained, so VADER scores the news. VADER is *below the majority
class* on held-out Financial PhraseBank sentences (docs/sentiment.md): that is said next to
its scores, with the one command that trains the transformer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentinance_assets.lib import registry
from sentinance_assets.settings import Settings

REGISTERED_NAME = "sentinance-sentiment"  # = ml.sentiment_lifecycle.REGISTERED_NAME (no torch)

#: VADER on the project's held-out PhraseBank test split (774 sentences, docs/sentiment.md), and
#: the accuracy of always answering the majority class ("neutral") on the same rows.
VADER_HELDOUT = {"accuracy": 0.565, "macro_f1": 0.492, "majority_accuracy": 0.593, "n": 774}
TRAIN_COMMAND = "sentinance sentiment train --data ../shared/data/financial_phrasebank"
TRAIN_HINT = (
    f"Train the transformer with `{TRAIN_COMMAND}` (the PhraseBank folder, or any CSV with "
    "columns text,label and an optional agreement column; about 10 minutes on 2 CPU cores); "
    "the next run re-scores the news with it."
)

#: Metrics of a sentiment run (``ml.sentiment_lifecycle``) shown on the Models page:
#: column name -> MLflow metric key.
METRIC_COLUMNS = {
    "test_accuracy": "test_accuracy",
    "test_macro_f1": "test_macro_f1",
    "vader_accuracy": "vader_test_accuracy",
    "vader_macro_f1": "vader_test_macro_f1",
    "mcnemar_b": "mcnemar_transformer_vs_vader_b",
    "mcnemar_c": "mcnemar_transformer_vs_vader_c",
    "mcnemar_p": "mcnemar_transformer_vs_vader_p_value",
    "temperature": "temperature",
    "ece_before": "test_ece_before",
    "ece_after": "test_ece_after",
}


def sentiment_versions(mlflow_db: Path) -> list[dict[str, Any]]:
    """Registered sentiment versions (newest first) with :data:`METRIC_COLUMNS` (``None``
    where a run did not record one, e.g. ECE before calibration existed)."""
    rows = []
    for v in registry.versions(Path(mlflow_db)):
        if v["name"] != REGISTERED_NAME:
            continue
        metrics = v["metrics"]
        rows.append(
            {
                "version": v["version"],
                "serving": bool(v["serving"]),
                "decision": v["decision"],
                "created_at": v["created_at"],
                **{col: metrics.get(key) for col, key in METRIC_COLUMNS.items()},
            }
        )
    return rows


def serving_status(settings: Settings) -> dict[str, Any]:
    """``{kind, name, version, message}``: ``kind`` is ``configured`` (the setting
    ``SENTINANCE_SENTIMENT_MODEL``), ``champion`` (a trained transformer) or ``vader``; the
    message says which model scores the news and, for VADER, how good it is and how to train
    the transformer."""
    if settings.sentiment_model:
        return {
            "kind": "configured",
            "name": "transformer",
            "version": settings.sentiment_model,
            "message": f"News is scored by the configured transformer "
            f"{settings.sentiment_model} (SENTINANCE_SENTIMENT_MODEL).",
        }
    champ = next((v for v in sentiment_versions(settings.mlflow_db) if v["serving"]), None)
    if champ is not None:
        parts = [
            f"{label} {champ[key]:.3f}"
            for label, key in (
                ("accuracy", "test_accuracy"),
                ("macro-F1", "test_macro_f1"),
                ("ECE", "ece_after"),
            )
            if champ[key] is not None
        ]
        held_out = f" (held-out {', '.join(parts)})" if parts else ""
        return {
            "kind": "champion",
            "name": REGISTERED_NAME,
            "version": champ["version"],
            "message": f"News is scored by the trained transformer {REGISTERED_NAME} "
            f"v{champ['version']}, the registry's champion{held_out}; confidence is its "
            "calibrated probability.",
        }
    h = VADER_HELDOUT
    return {
        "kind": "vader",
        "name": "vader",
        "version": None,
        "message": "No trained sentiment model: news is scored by VADER, a lexicon baseline, "
        f"with {h['accuracy']:.3f} accuracy (macro-F1 {h['macro_f1']:.3f}) on held-out "
        f"Financial PhraseBank sentences, below always answering 'neutral' "
        f"({h['majority_accuracy']:.3f}). Read its labels as rough.",
        "hint": TRAIN_HINT,
        "command": TRAIN_COMMAND,
    }


def summary_lines(settings: Settings) -> list[str]:
    """The ``sentinance demo`` summary's lines about news sentiment."""
    status = serving_status(settings)
    lines = ["news sentiment", f"  {status['message']}"]
    if status["kind"] == "vader":
        lines.append(f"  train the transformer: {status['command']}")
        lines.append("    (or --data FILE.csv with columns text,label[,agreement])")
    return lines
