"""Cross-validated sentiment estimates: k folds x seeds on the development rows only.

    nice -n 10 .venv/bin/python benchmarks/sentiment_cv.py --out cv.json        # 5 folds, seed 7
    .venv/bin/python benchmarks/sentiment_cv.py --seeds 7,8 --out cv.json        # more seeds
    .venv/bin/python benchmarks/sentiment_cv.py --limit 300 --epochs 1 --out /tmp/cv.json  # smoke
    .venv/bin/python benchmarks/sentiment_cv.py --set layer_lr_decay=1.0 \
        --set low_agreement_weight=1.0 --out cv-a.json --compare cv.json  # recipe A - B

Data: ``../shared/data/financial_phrasebank`` beside the repository (read in place). The test
split of ``sentinance sentiment train`` (20 %, seed 7) is never read: folds are drawn from the
other 80 % (:mod:`ml.sentiment_cv`). Each fold trains the served recipe (``TrainConfig()``
unless overridden) on four fifths, with an inner validation split for the epoch choice, and is
scored on the fifth left out: on all rows and on the all-agree rows, as served and in fp32 and
int8 each (same weights), with the paired int8 - fp32 difference that decides int8 by
cross-validation (``int8_decision`` in the output).

Resumable: each finished (fold, seed) is written to ``--out`` at once, and a rerun with the same
arguments skips the runs already there (a fold takes ~10 minutes on one thread), so a killed
run loses at most the fold in progress. Prints mean +- sd over every fold and seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.sentiment_cv import (  # noqa: E402
    cv_folds,
    development_rows,
    int8_decision,
    recipe_difference,
    run_fold,
    summarize,
)
from ml.sentiment_eval import load_labelled  # noqa: E402
from ml.sentiment_transformer import TrainConfig  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "financial_phrasebank"


def _write(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)  # atomic: a kill leaves the old file or the new one


def _field(kv: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> a TrainConfig field and its value, typed like the field's default."""
    key, _, raw = kv.partition("=")
    defaults = vars(TrainConfig())
    if key not in defaults or key in ("threads", "seed"):
        raise SystemExit(f"--set {kv}: not a recipe field of TrainConfig")
    kind = type(defaults[key])
    if kind is bool:
        return key, raw.lower() in ("1", "true", "yes")
    return key, kind(raw) if defaults[key] is not None else raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", default="7", help="comma-separated training seeds")
    ap.add_argument("--fold-seed", type=int, default=7, help="seed of the fold assignment")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another recipe: a TrainConfig field, e.g. --set layer_lr_decay=1.0 (repeatable)",
    )
    ap.add_argument("--limit", type=int, default=None, help="first N development rows (smoke)")
    ap.add_argument("--out", type=Path, required=True, help="JSON results (resumed if present)")
    ap.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="another recipe's --out on the same folds: print the paired difference (this - it)",
    )
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: {args.data} is absent (the shared data folder)")
        return 0
    overrides: dict[str, Any] = dict(_field(kv) for kv in args.set)
    if args.epochs:
        overrides["epochs"] = args.epochs
    config = TrainConfig(threads=args.threads, **overrides)
    seeds = [int(s) for s in args.seeds.split(",")]
    dev = development_rows(load_labelled(args.data))
    if args.limit:
        dev = dev.sample(n=min(args.limit, dev.height), seed=args.fold_seed)
    folds = cv_folds(dev, k=args.folds, seed=args.fold_seed)
    setup = {
        "data": str(args.data),
        "development_rows": dev.height,
        "folds": args.folds,
        "fold_seed": args.fold_seed,
        "limit": args.limit,
        "config": {k: v for k, v in vars(config).items() if k != "threads"},
        "scored": "served, fp32 and int8 on every fold",
    }
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    if doc and doc.get("setup") != setup:
        raise SystemExit(f"{args.out} holds runs of another setup; use a new --out")
    doc = {"setup": setup, "runs": doc.get("runs", [])}
    done = {(r["fold"], r["seed"]) for r in doc["runs"]}
    todo = [(f, s) for s in seeds for f in range(args.folds) if (f, s) not in done]
    print(
        f"{dev.height} development rows, {args.folds} folds x seeds {seeds}: "
        f"{len(todo)} runs to go ({len(done)} already in {args.out})",
        flush=True,
    )
    for i, (f, seed) in enumerate(todo, 1):
        fit, held_out = folds[f]
        t0 = time.time()
        run = run_fold(fit, held_out, config, seed, log=lambda m: print(f"  {m}", flush=True))
        run["fold"] = f
        doc["runs"].append(run)
        _write(args.out, doc)
        sc = run["scores"]
        print(
            f"[{i}/{len(todo)}] fold {f} seed {seed}: accuracy {sc['accuracy']:.3f}, "
            f"macro-F1 {sc['macro_f1']:.3f}"
            + (
                f"; all-agree {sc['allagree_accuracy']:.3f} / {sc['allagree_macro_f1']:.3f}"
                if "allagree_accuracy" in sc
                else ""
            )
            + f" ({time.time() - t0:.0f} s)",
            flush=True,
        )
    runs = doc["runs"]
    doc["summary"] = summarize(runs)
    doc["variants"] = {
        v: summarize([{"scores": r["variants"][v]} for r in runs if v in r.get("variants", {})])
        for v in ("fp32", "int8")
    }
    doc["int8_decision"] = int8_decision(runs, config.max_quantization_loss)
    _write(args.out, doc)
    print(f"\nover {len(runs)} runs (folds x seeds), mean +- sd:")
    for name, summary in [("served", doc["summary"])] + list(doc["variants"].items()):
        print(f"  {name}:")
        for key, v in summary.items():
            print(
                f"    {key:<20} {v['mean']:.3f} +- {v['sd']:.3f}"
                f"  (min {v['min']:.3f}, max {v['max']:.3f})"
            )
    d = doc["int8_decision"]
    if d["decided"]:
        acc, f1 = d["accuracy_difference"], d["macro_f1_difference"]
        print(
            f"int8 - fp32, paired over {d['runs']} runs: accuracy {acc['mean']:+.4f} +- "
            f"{acc['sd']:.4f}, macro-F1 {f1['mean']:+.4f} +- {f1['sd']:.4f}; "
            f"{'keep' if d['keep_int8'] else 'drop'} int8 (rule: loss <= {d['max_loss']:.2f}); "
            f"the validation rule kept it in {d['kept_by_validation_rule']} of {d['runs']}"
        )
    if args.compare is not None:
        other = json.loads(args.compare.read_text())
        if other["setup"]["folds"] != args.folds or other["setup"]["fold_seed"] != args.fold_seed:
            raise SystemExit(f"{args.compare} used other folds")
        print(f"this recipe - {args.compare}, paired over the same (fold, seed) runs:")
        for key in ("accuracy", "macro_f1", "allagree_accuracy", "allagree_macro_f1", "ece"):
            d = recipe_difference(runs, other["runs"], key)
            if d:
                print(
                    f"  {key:<20} {d['mean']:+.4f} (sd {d['sd']:.4f}, "
                    f"standard error {d['se']:.4f}, {d['runs']:.0f} runs)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
