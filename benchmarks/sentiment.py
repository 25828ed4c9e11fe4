"""Sentiment benchmark: held-out Financial PhraseBank quality, CPU throughput, fine-tuning time.

    nice -n 10 .venv/bin/python benchmarks/sentiment.py                 # fine-tune, then measure
    .venv/bin/python benchmarks/sentiment.py --model-dir DIR            # measure a saved model
    .venv/bin/python benchmarks/sentiment.py --limit 300 --epochs 1     # quick smoke run

Data: ``../shared/data/financial_phrasebank`` beside the repository (CC BY-NC-SA, read in
place, never copied). The split is the one ``sentinance sentiment train`` uses (by unique
sentence, stratified, seed 7): 70 % train, 10 % validation (epoch choice, int8 decision),
20 % test, untouched until the end. Both models are scored on the same test rows, with
McNemar's test between them.

Throughput: sentences per second over the test sentences (repeated to at least
``--min-sentences``), max length 64, ``--threads`` threads (2), batches of 64 sorted by
length, best of ``--repeats`` timings, for the fp32 weights on torch and on ONNX Runtime (the
served runtime) and for int8 on torch. Prints one JSON document (and writes it with ``--out``).
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

from ml.sentiment import VaderModel  # noqa: E402
from ml.sentiment_eval import calibration_report, load_labelled  # noqa: E402
from ml.sentiment_lifecycle import evaluate_models, prepare_training  # noqa: E402
from ml.sentiment_transformer import (  # noqa: E402
    TrainConfig,
    fine_tune,
    load_transformer,
    read_metadata,
    save_model,
    set_threads,
)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "financial_phrasebank"


def throughput(model, texts: list[str], repeats: int, **kw) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(texts, **kw)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best


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
        fp32 = load_transformer(args.model_dir, threads=args.threads, runtime="torch")
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
    vader = VaderModel()
    texts, labels = split.test["text"].to_list(), split.test["label"].to_list()
    report = evaluate_models(
        {
            "transformer_fp32": fp32,
            "transformer_onnx": onnx,
            "transformer_int8": int8,
            "vader": vader,
        },
        texts,
        labels,
    )
    report.pop("_predictions")
    out["test"] = {
        name: {k: round(m[k], 4) for k in ("accuracy", "macro_f1")} | {"confusion": m["confusion"]}
        for name, m in report["models"].items()
    }
    out["mcnemar"] = report["mcnemar"]
    # ECE (15 bins) of the served runtime on the test rows, before / after its temperature
    served = int8 if out.get("int8_kept") else onnx
    out["calibration"] = calibration_report(served.logits(texts), labels, served.temperature)
    # what load_transformer serves: int8 when fine-tuning kept it, else fp32 on ONNX Runtime
    out["served"] = "transformer_int8" if out.get("int8_kept") else "transformer_onnx"

    reps = max(1, -(-args.min_sentences // len(texts)))
    bench = (texts * reps)[: max(args.min_sentences, len(texts))]
    fp32.max_length = int8.max_length = onnx.max_length = 64
    out["throughput_sentences_per_s"] = {
        "transformer_fp32": round(throughput(fp32, bench, args.repeats, batch_size=64), 1),
        "transformer_onnx": round(throughput(onnx, bench, args.repeats, batch_size=64), 1),
        "transformer_int8": round(throughput(int8, bench, args.repeats, batch_size=64), 1),
        "vader": round(throughput(vader, bench, args.repeats), 1),
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
