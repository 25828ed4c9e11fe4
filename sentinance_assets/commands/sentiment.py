"""``sentinance sentiment evaluate|train``: sentiment models on a labelled CSV.

``evaluate --data FILE.csv`` scores every row of the file (columns ``text,label``, or
``sentence,label``; labels positive/neutral/negative) with VADER and, when one is available,
the transformer: ``--model`` (hub id or folder), else ``SENTINANCE_SENTIMENT_MODEL``, else the
registered champion. Prints JSON: per model accuracy, macro-F1, per-class precision/recall/F1,
confusion matrix, and McNemar's test transformer vs VADER. Nothing is written.

``train --data FILE.csv`` splits the file by unique text (seeded, stratified: 70 % train,
10 % validation, 20 % held-out test), fine-tunes the packaged MiniLM (or ``--base-model``),
evaluates it and VADER on the held-out rows, logs everything to MLflow under the Sentinance
home, registers the model and promotes it only if it beats the champion on the same held-out
rows. Prints the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.tracking import MlflowStore


def register(subparsers: Any) -> None:
    """Add ``sentiment evaluate`` and ``sentiment train`` to the CLI's sub-parsers."""
    sentiment = subparsers.add_parser("sentiment", help="sentiment models: evaluate, train")
    sub = sentiment.add_subparsers(dest="sentiment_command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    ev = sub.add_parser(
        "evaluate",
        help="metrics of VADER and the transformer on a labelled CSV; prints JSON",
        description=__doc__,
        formatter_class=fmt,
    )
    ev.add_argument("--data", required=True, help="CSV with columns text,label")
    ev.add_argument("--model", help="transformer to evaluate: Hugging Face id or local folder")
    ev.add_argument(
        "--vader-only", action="store_true", help="evaluate VADER only, even if a model exists"
    )
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--output", help="also write the JSON to this file")
    ev.set_defaults(func=cmd_sentiment_evaluate)

    tr = sub.add_parser(
        "train",
        help="fine-tune, evaluate, register and maybe promote the transformer; prints JSON",
        description=__doc__,
        formatter_class=fmt,
    )
    tr.add_argument("--data", required=True, help="CSV with columns text,label")
    tr.add_argument("--base-model", help="folder or hub id to fine-tune (default: packaged MiniLM)")
    d = _train_defaults()
    tr.add_argument("--epochs", type=int, default=d["epochs"])
    tr.add_argument("--learning-rate", type=float, default=d["learning_rate"])
    tr.add_argument("--batch-size", type=int, default=d["batch_size"])
    tr.add_argument("--max-length", type=int, default=d["max_length"])
    tr.add_argument("--label-smoothing", type=float, default=d["label_smoothing"])
    tr.add_argument("--layer-lr-decay", type=float, default=d["layer_lr_decay"])
    tr.add_argument(
        "--low-agreement-weight",
        type=float,
        default=d["low_agreement_weight"],
        help="loss weight of 50%%-agreement sentences (column max_agreement), 1.0 at 100%%",
    )
    tr.add_argument(
        "--teachers",
        type=int,
        default=d["teachers"],
        help="fine-tune N teacher seeds first and distil their mean into one model (0: off)",
    )
    tr.add_argument("--distill-alpha", type=float, default=d["distill_alpha"])
    tr.add_argument("--distill-temperature", type=float, default=d["distill_temperature"])
    tr.add_argument("--seed", type=int, help="training seed (default: SENTINANCE_SEED)")
    tr.add_argument("--split-seed", type=int, default=7, help="held-out split seed (keep fixed)")
    tr.add_argument("--test-frac", type=float, default=0.2)
    tr.add_argument("--val-frac", type=float, default=0.1)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--output", help="also write the JSON to this file")
    tr.set_defaults(func=cmd_sentiment_train)


def _train_defaults() -> dict[str, Any]:
    """``TrainConfig``'s defaults, read without importing torch (the CLI starts fast)."""
    import dataclasses
    import importlib

    mod = importlib.import_module("ml.sentiment_transformer")
    return {f.name: f.default for f in dataclasses.fields(mod.TrainConfig)}


def _emit(doc: dict, output: str | None) -> None:
    text = json.dumps(doc, indent=1, default=str)
    print(text)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


def _store(settings: Any) -> MlflowStore:
    """The MLflow store of the Sentinance home (the same one the Dagster resource builds)."""
    from ml.tracking import MlflowStore

    return MlflowStore(settings.mlflow_db, settings.mlflow_artifacts)


def _load(path: str):
    from ml.sentiment_eval import load_labelled

    return load_labelled(path)


def cmd_sentiment_evaluate(settings: Any, args: argparse.Namespace) -> int:
    from ml.sentiment import VaderModel
    from ml.sentiment_lifecycle import evaluate_models, load_champion
    from ml.sentiment_transformer import load_transformer

    try:
        data = _load(args.data)
    except (OSError, ValueError) as exc:
        print(f"cannot read labelled data: {exc}", file=sys.stderr)
        return 2
    models: dict[str, Any] = {"vader": VaderModel()}
    source = None
    if not args.vader_only:
        source = args.model or settings.sentiment_model
        try:
            if source:
                models["transformer"] = load_transformer(source, threads=2)
            else:
                champ = load_champion(_store(settings), settings.models_dir)
                if champ is not None:
                    models["transformer"] = champ
                    source = "champion"
        except (OSError, ValueError) as exc:
            print(f"cannot load the transformer {source!r}: {exc}", file=sys.stderr)
            return 2
    report = evaluate_models(
        models, data["text"].to_list(), data["label"].to_list(), batch_size=args.batch_size
    )
    report.pop("_predictions")
    versions = {name: f"{m.name}:{m.version}" for name, m in models.items()}
    _emit({"data": str(args.data), "versions": versions, "source": source, **report}, args.output)
    return 0


def cmd_sentiment_train(settings: Any, args: argparse.Namespace) -> int:
    from ml.sentiment_lifecycle import train_and_register
    from ml.sentiment_transformer import TrainConfig

    try:
        data = _load(args.data)
    except (OSError, ValueError) as exc:
        print(f"cannot read labelled data: {exc}", file=sys.stderr)
        return 2
    cfg = TrainConfig(
        base_model=args.base_model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        seed=args.seed if args.seed is not None else settings.seed,
        threads=args.threads,
        label_smoothing=args.label_smoothing,
        layer_lr_decay=args.layer_lr_decay,
        low_agreement_weight=args.low_agreement_weight,
        teachers=args.teachers,
        distill_alpha=args.distill_alpha,
        distill_temperature=args.distill_temperature,
    )
    try:
        summary = train_and_register(
            data,
            _store(settings),
            settings.models_dir,
            config=cfg,
            test_frac=args.test_frac,
            val_frac=args.val_frac,
            split_seed=args.split_seed,
            log=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        print(f"cannot train: {exc}", file=sys.stderr)
        return 2
    _emit(summary, args.output)
    return 0
