"""Sentiment benchmark: held-out Financial PhraseBank quality, CPU throughput, fine-tuning time.

    nice -n 10 .venv/bin/python benchmarks/sentiment.py                 # fine-tune, then measure
    .venv/bin/python benchmarks/sentiment.py --model-dir DIR            # measure a saved model
    .venv/bin/python benchmarks/sentiment.py --model-dir DIR --validation-only  # no test labels
    .venv/bin/python benchmarks/sentiment.py --limit 300 --epochs 1     # quick smoke run

Data: ``../shared/data/financial_phrasebank`` beside the repository (CC BY-NC-SA, read in
place, never copied). The split is the one ``sentinance sentiment train`` uses (by unique
sentence, stratified, seed 7): 70 % train, 10 % validation (epoch choice, int8 decision),
20 % test, untouched until the end. Both models are scored on the same test rows, with
McNemar's test between them.

Throughput: sentences per second over the test sentences (repeated to at least
``--min-sentences``), max length 64, ``--threads`` threads (2), batches of 64 sorted by
length, best of ``--repeats`` timings (the runtimes interleaved, so a load change hits them
alike), for the fp32 weights on torch and on ONNX Runtime, for int8 on torch and on ONNX
Runtime (``ml.sentiment_transformer.quantize_onnx``: the fused ``model.onnx`` dynamically
quantized). Validation accuracy / macro-F1 of every runtime come first, with the
one-accuracy-point int8 rule applied to both int8 variants (the rule ``fine_tune`` uses);
``served`` names the runtime ``load_transformer`` gives the folder. Prints one JSON document
(and writes it with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.sentiment import SentimentModel, VaderModel  # noqa: E402
from ml.sentiment_eval import calibration_report, load_labelled  # noqa: E402
from ml.sentiment_lifecycle import evaluate_models, prepare_training  # noqa: E402
from ml.sentiment_transformer import (  # noqa: E402
    ONNX_FILE,
    TrainConfig,
    fine_tune,
    int8_model,
    load_transformer,
    read_metadata,
    save_model,
    set_threads,
)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "financial_phrasebank"


def throughput(
    models: dict[str, SentimentModel], texts: list[str], repeats: int, batch_size: dict[str, int]
) -> dict[str, float]:
    """Sentences per second of each model (best of ``repeats``; ``batch_size`` per model name,
    else the model's default), the models interleaved in every repeat so that a change of
    machine load hits them alike."""
    best = dict.fromkeys(models, float("inf"))
    for _ in range(repeats):
        for name, model in models.items():
            kw = {"batch_size": batch_size[name]} if name in batch_size else {}
            t0 = time.perf_counter()
            model.predict(texts, **kw)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: round(len(texts) / b, 1) for name, b in best.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model-dir", type=Path, help="measure this saved model, skip fine-tuning")
    ap.add_argument("--save-dir", type=Path, help="save the fine-tuned model here")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--lr", type=float, default=TrainConfig.learning_rate)
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--label-smoothing", type=float, default=TrainConfig.label_smoothing)
    ap.add_argument("--layer-lr-decay", type=float, default=TrainConfig.layer_lr_decay)
    ap.add_argument(
        "--low-agreement-weight",
        type=float,
        default=TrainConfig.low_agreement_weight,
        help="loss weight of 50 %%-agreement sentences (linear to 1.0 at 100 %%)",
    )
    ap.add_argument("--teachers", type=int, default=TrainConfig.teachers)
    ap.add_argument("--distill-alpha", type=float, default=TrainConfig.distill_alpha)
    ap.add_argument("--distill-temperature", type=float, default=TrainConfig.distill_temperature)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for throughput")
    ap.add_argument(
        "--train-threads", type=int, help="torch threads for fine-tuning (default: --threads)"
    )
    ap.add_argument("--limit", type=int, help="use only the first N training sentences")
    ap.add_argument(
        "--validation-only",
        action="store_true",
        help="score the validation split only (selection), never the test labels",
    )
    ap.add_argument("--min-sentences", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    if not args.data.exists():
        print(f"labelled data not found: {args.data}", file=sys.stderr)
        return 2
    set_threads(args.threads)
    cfg = TrainConfig(
        epochs=args.epochs,
        learning_rate=args.lr,
        seed=args.seed,
        threads=args.train_threads or args.threads,
        label_smoothing=args.label_smoothing,
        layer_lr_decay=args.layer_lr_decay,
        low_agreement_weight=args.low_agreement_weight,
        teachers=args.teachers,
        distill_alpha=args.distill_alpha,
        distill_temperature=args.distill_temperature,
    )
    # the split, recipe and agreement weights of `sentinance sentiment train` (one function)
    inputs = prepare_training(load_labelled(args.data), cfg, train_limit=args.limit)
    split = inputs.split
    train = split.train
    out: dict = {
        "data": str(args.data),
        "n_train": train.height,
        "n_val": split.val.height,
        "n_test": split.test.height,
        "threads": args.threads,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    folder = args.model_dir
    if args.model_dir:
        fp32 = load_transformer(
            args.model_dir, threads=args.threads, quantize=False, runtime="torch"
        )
        out["model_dir"] = str(args.model_dir)
        out["int8_kept"] = bool(read_metadata(args.model_dir).get("quantize", False))
    else:
        result = fine_tune(
            **inputs.fine_tune_args(), log=lambda m: print(m, file=sys.stderr, flush=True)
        )
        fp32 = result.model
        out.update(
            fine_tune_seconds=round(result.train_seconds, 1),
            best_epoch=result.best_epoch,
            history=result.history,
            int8_kept=result.quantize,
            quantization=result.quantization,
            temperature=result.temperature,
            teachers=result.teachers,
            config=cfg.to_params(),
        )
        folder = args.save_dir or Path(tempfile.mkdtemp(prefix="sentinance-bench-sentiment-"))
        save_model(result, folder)  # also writes the ONNX export of the fp32 weights
        if args.save_dir:
            out["model_dir"] = str(args.save_dir)
    set_threads(args.threads)
    fp32.threads = args.threads
    int8 = fp32.quantize()
    # the same fp32 weights on ONNX Runtime (exported on first load when the folder lacks it)
    onnx = load_transformer(folder, threads=args.threads, quantize=False, runtime="onnx")
    # int8 on ONNX Runtime (ml.sentiment_transformer.quantize_onnx), quantized in a temporary
    # folder so that a measured model folder is not changed
    qdir = Path(tempfile.mkdtemp(prefix="sentinance-bench-int8-"))
    fp32.model.save_pretrained(qdir)
    fp32.tokenizer.save_pretrained(qdir)
    onnx_int8 = int8_model(onnx, qdir)
    assert onnx_int8.onnx_path is not None and onnx_int8.runtime == "onnx-int8"
    out["onnx_int8_mb"] = round(onnx_int8.onnx_path.stat().st_size / 1e6, 1)
    out["onnx_fp32_mb"] = round(Path(folder).joinpath(ONNX_FILE).stat().st_size / 1e6, 1)
    # what load_transformer serves: int8 (on the runtime its decision measured) when
    # fine-tuning kept it, else fp32 on ONNX Runtime
    transformers = {
        "transformer_fp32": fp32,
        "transformer_onnx": onnx,
        "transformer_int8": int8,
        "transformer_onnx_int8": onnx_int8,
    }
    served_runtime = load_transformer(folder, threads=args.threads).runtime
    out["served"] = next(n for n, m in transformers.items() if m.runtime == served_runtime)
    vader = VaderModel()
    models: dict[str, SentimentModel] = {**transformers, "vader": vader}
    # validation first: the split the int8 decision may use (the rule of fine_tune)
    vt, vl = split.val["text"].to_list(), split.val["label"].to_list()
    val = evaluate_models(models, vt, vl)["models"]
    out["validation"] = {
        name: {k: round(m[k], 4) for k in ("accuracy", "macro_f1")} for name, m in val.items()
    }
    floor = val["transformer_fp32"]["accuracy"] - TrainConfig.max_quantization_loss
    out["int8_rule_on_validation"] = {
        name: ("kept" if val[name]["accuracy"] >= floor else "dropped")
        for name in ("transformer_int8", "transformer_onnx_int8")
    }
    texts, labels = split.test["text"].to_list(), split.test["label"].to_list()
    if not args.validation_only:
        report = evaluate_models(models, texts, labels)
        report.pop("_predictions")
        out["test"] = {
            name: {k: round(m[k], 4) for k in ("accuracy", "macro_f1")}
            | {"confusion": m["confusion"]}
            for name, m in report["models"].items()
        }
        out["mcnemar"] = report["mcnemar"]
        # ECE (15 bins) of the served runtime on the test rows, before / after its temperature
        served = transformers[out["served"]]
        out["calibration"] = calibration_report(served.logits(texts), labels, served.temperature)
    # timing only reads the test sentences' text (as before), never their labels

    reps = max(1, -(-args.min_sentences // len(texts)))
    bench = (texts * reps)[: max(args.min_sentences, len(texts))]
    for model in transformers.values():
        model.max_length = 64
    out["throughput_sentences_per_s"] = {
        **throughput(models, bench, args.repeats, {n: 64 for n in models if n != "vader"}),
        "sentences": len(bench),
        "max_length": 64,
        "batch_size": 64,
    }
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    doc = json.dumps(out, indent=1)
    print(doc)
    if args.out:
        args.out.write_text(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
