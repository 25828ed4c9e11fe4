"""Transformer sentiment: loading, tuned inference, seeded fine-tuning.

Everything runs on a tiny random BERT (hidden size 32, one layer) with a tokenizer built
offline from a handful of words, on a tiny self-made data set: no hub, no downloaded weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from ml.sentiment import LABELS, SentimentModel, SentimentPrediction
from ml.sentiment_transformer import (
    METADATA_FILE,
    ONNX_FILE,
    ONNX_INT8_FILE,
    TrainConfig,
    TransformerSentimentModel,
    _param_groups,
    agreement_weights,
    fine_tune,
    int8_model,
    load_transformer,
    save_model,
    weights_digest,
)

# One cue word decides the label; subjects and filler words are shared by all classes.
POSITIVE = ["rose", "grew", "jumped", "improved"]
NEGATIVE = ["fell", "dropped", "widened", "slumped"]
NEUTRAL = ["was published", "is listed", "holds meeting"]
SUBJECTS = ["profit", "sales", "the loss", "shares"]
FILLER = ["in", "the", "quarter", "year", "this", "last", "said", "today"]


def tiny_dataset(n_rep: int = 6, seed: int = 0) -> pl.DataFrame:
    """Sentences whose label is decided by a few cue words, padded with neutral filler."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, cues in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        for cue in cues:
            for _ in range(n_rep):
                subject = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
                fill = " ".join(rng.choice(FILLER, size=int(rng.integers(0, 6))))
                rows.append({"text": f"{subject} {cue} {fill}".strip(), "label": label})
    return pl.DataFrame(rows)


def tiny_vocab() -> dict[str, int]:
    words = sorted(
        {w for s in POSITIVE + NEGATIVE + NEUTRAL + SUBJECTS + FILLER for w in s.split()}
    )
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return {t: i for i, t in enumerate(special + words)}


def make_tiny_model(path: Path, id2label: dict[int, str] | None = None, seed: int = 0) -> Path:
    """Save a random one-layer BERT classifier and an offline-built tokenizer to ``path``."""
    torch.manual_seed(seed)
    vocab = tiny_vocab()
    id2label = id2label or dict(enumerate(LABELS))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    BertTokenizerFast(vocab=vocab).save_pretrained(path)
    return path


# plain fine-tuning (no teachers, whatever the production defaults are)
TINY_TRAIN = TrainConfig(
    epochs=8,
    batch_size=4,
    learning_rate=3e-3,
    max_length=32,
    threads=1,
    teachers=0,
    distill_alpha=0.0,
    label_smoothing=0.0,
    layer_lr_decay=1.0,
    low_agreement_weight=1.0,
)


def test_finbert_label_order_comes_from_the_checkpoint(tmp_path: Path) -> None:
    # FinBERT's head is ordered positive, negative, neutral; force output 0 to win.
    path = make_tiny_model(tmp_path / "finbert", {0: "positive", 1: "negative", 2: "neutral"})
    model = BertForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    model.save_pretrained(path)
    loaded = load_transformer(path, local_files_only=True)
    assert isinstance(loaded, SentimentModel)
    preds = loaded.predict(["profit rose", "the loss widened"])
    assert [p.label for p in preds] == ["positive", "positive"]
    assert all(0.9 < p.score <= 1.0 for p in preds)
    assert loaded.version == "finbert"  # folder name when no metadata


def test_checkpoint_without_sentiment_labels_is_rejected(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / "other", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ValueError, match="positive/neutral/negative"):
        load_transformer(path)


def test_onnx_runtime_gives_torch_probabilities_at_every_batch_shape(
    tiny_model_dir: Path,
) -> None:
    """The fp32 export for ONNX Runtime is the same model: same probabilities as torch for
    texts of many lengths, batched so that every batch pads differently (a mask traced as a
    constant of the export's example batch would break exactly this)."""
    texts = [None, *tiny_dataset(1)["text"].to_list(), "", "profit"]
    torch_model = load_transformer(tiny_model_dir, threads=1, runtime="torch")
    served = load_transformer(tiny_model_dir, threads=1)  # auto: a folder in fp32 -> onnx
    assert (torch_model.runtime, served.runtime) == ("torch", "onnx")
    assert (tiny_model_dir / ONNX_FILE).is_file()
    want = torch_model.probabilities(texts, batch_size=64)
    for batch_size in (1, 3, 64):
        got = served.probabilities(texts, batch_size=batch_size)
        np.testing.assert_allclose(got, want, atol=1e-5)
    for a, b in zip(served.predict(texts), torch_model.predict(texts), strict=True):
        assert a.label == b.label and a.score == pytest.approx(b.score, abs=1e-5)


def test_runtime_choices_are_checked(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="runtime"):
        load_transformer(tiny_model_dir, runtime="tensorrt")
    assert load_transformer(tiny_model_dir, quantize=True).runtime == "onnx-int8"
    assert (tiny_model_dir / ONNX_INT8_FILE).is_file()
    assert load_transformer(tiny_model_dir, runtime="onnx", quantize=True).runtime == "onnx-int8"
    assert load_transformer(tiny_model_dir, runtime="torch", quantize=True).runtime == "torch-int8"


def test_int8_on_onnx_runtime_is_the_fp32_model_within_quantization_error(
    tiny_model_dir: Path,
) -> None:
    """ONNX Runtime int8 (the fused export, weights int8 per channel) keeps the interface, the
    input order, blank handling and the temperature, and stays close to fp32."""
    texts = [None, *tiny_dataset(1)["text"].to_list(), "", "profit"]
    fp32 = load_transformer(tiny_model_dir, threads=1, runtime="torch")
    fp32.temperature = 0.8
    q = int8_model(fp32)
    assert q.runtime == "onnx-int8" and q.quantized and q.temperature == 0.8
    assert not (tiny_model_dir / ONNX_INT8_FILE).exists()  # quantized in a temporary folder
    want = fp32.probabilities(texts)
    for batch_size in (1, 3, 64):  # activations are quantized per batch: close, not equal
        got = q.probabilities(texts, batch_size=batch_size)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(got, want, atol=0.05)
    preds = q.predict(texts)
    assert preds[0] == preds[-2] == SentimentPrediction("neutral", 0.0)
    # the one int8 decision of fine_tune: measured on, and saved for, ONNX Runtime int8
    data = tiny_dataset()
    cfg = TrainConfig(
        **{**TINY_TRAIN.to_params(), "base_model": str(tiny_model_dir), "epochs": 2}
        | {"max_quantization_loss": 1.0}  # keep int8 whatever it costs on this tiny model
    )
    result = fine_tune(*(data[c].to_list() for c in ("text", "label", "text", "label")), cfg)
    assert result.quantize and result.int8_runtime == "onnx"
    served = result.serving()
    assert served.runtime == "onnx-int8" and served.temperature == result.temperature
    out = save_model(result, tiny_model_dir.parent / "saved")
    assert (out / ONNX_FILE).is_file() and (out / ONNX_INT8_FILE).is_file()
    assert json.loads((out / METADATA_FILE).read_text())["int8_runtime"] == "onnx"
    loaded = load_transformer(out, threads=1)
    assert loaded.runtime == "onnx-int8" and loaded.temperature == result.temperature
    texts = data["text"].to_list()
    np.testing.assert_allclose(loaded.probabilities(texts), served.probabilities(texts), atol=1e-6)
    # a folder whose int8 was decided on torch (no int8_runtime recorded) is served on torch
    meta = json.loads((out / METADATA_FILE).read_text())
    del meta["int8_runtime"]
    (out / METADATA_FILE).write_text(json.dumps(meta))
    assert load_transformer(out, threads=1).runtime == "torch-int8"


def test_int8_falls_back_to_torch_without_onnx_runtime(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ml.sentiment_transformer as st

    def boom(folder: Path) -> Path:
        raise RuntimeError("no quantizer here")

    monkeypatch.setattr(st, "quantize_onnx", boom)
    fp32 = load_transformer(tiny_model_dir, threads=1, runtime="torch")
    assert int8_model(fp32).runtime == "torch-int8"
    assert load_transformer(tiny_model_dir, quantize=True).runtime == "torch-int8"
    with pytest.raises(RuntimeError, match="no quantizer"):
        load_transformer(tiny_model_dir, runtime="onnx", quantize=True)


def test_a_broken_export_falls_back_to_torch_under_auto(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ml.sentiment_transformer as st

    def boom(folder: Path) -> Path:
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(st, "export_onnx", boom)
    assert load_transformer(tiny_model_dir).runtime == "torch"
    with pytest.raises(RuntimeError, match="no exporter"):
        load_transformer(tiny_model_dir, runtime="onnx")


def test_length_sorted_batches_keep_order_and_values(tiny_model_dir: Path) -> None:
    model = load_transformer(tiny_model_dir, threads=1)
    texts = [t for t in tiny_dataset(1)["text"].to_list()]
    texts = [None, *texts, "", "   "]
    one = model.probabilities(texts, batch_size=1)
    many = model.probabilities(texts, batch_size=64)
    np.testing.assert_allclose(one, many, atol=1e-5)
    np.testing.assert_allclose(one.sum(axis=1), 1.0, atol=1e-6)
    preds = model.predict(texts, batch_size=3)
    assert len(preds) == len(texts)
    assert preds[0] == preds[-1] == SentimentPrediction("neutral", 0.0)
    # each text scored alone gives the same answer as inside a sorted batch
    for i in (1, 5, 9):
        alone = model.predict([texts[i]])[0]
        assert alone.label == preds[i].label and alone.score == pytest.approx(
            preds[i].score, abs=1e-5
        )


def test_fine_tune_learns_and_is_reproducible(tiny_model_dir: Path) -> None:
    data = tiny_dataset()
    val = tiny_dataset(2, seed=1)
    cfg = TrainConfig(**{**TINY_TRAIN.to_params(), "base_model": str(tiny_model_dir)})
    args = (
        data["text"].to_list(),
        data["label"].to_list(),
        val["text"].to_list(),
        val["label"].to_list(),
    )
    a = fine_tune(*args, config=cfg)
    b = fine_tune(*args, config=cfg)
    assert weights_digest(a.model.model) == weights_digest(b.model.model)
    assert a.version == b.version and a.version.startswith("minilm-ft-")
    assert a.history[a.best_epoch - 1]["val_accuracy"] >= 0.9
    assert len(a.history) == cfg.epochs and a.train_seconds > 0
    other = fine_tune(*args, config=TrainConfig(**{**cfg.to_params(), "seed": 8}))
    assert weights_digest(other.model.model) != weights_digest(a.model.model)
    # int8 is kept only within one accuracy point on validation
    q = a.quantization
    assert a.quantize == (q["val_accuracy_int8"] >= q["val_accuracy_fp32"] - 0.01)


def test_save_load_round_trip_and_quantization(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tiny_dataset()
    cfg = TrainConfig(**{**TINY_TRAIN.to_params(), "base_model": str(tiny_model_dir), "epochs": 3})
    result = fine_tune(
        data["text"].to_list(),
        data["label"].to_list(),
        data["text"].to_list(),
        data["label"].to_list(),
        config=cfg,
    )
    result.quantize = False
    out = save_model(result, tmp_path / "saved", extra={"note": "x"})
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["version"] == result.version and meta["note"] == "x" and meta["max_length"] == 32
    assert (out / ONNX_FILE).is_file()  # a model served in fp32 is saved with its export
    loaded = load_transformer(out, threads=1, runtime="torch")
    texts = data["text"].to_list()
    assert loaded.version == result.version and not loaded.quantized
    assert loaded.predict(texts) == result.model.predict(texts)  # the same weights, bit for bit
    served = load_transformer(out, threads=1)
    assert served.runtime == "onnx" and served.version == result.version
    for a, b in zip(served.predict(texts), loaded.predict(texts), strict=True):
        assert a.label == b.label and a.score == pytest.approx(b.score, abs=1e-5)
    q = loaded.quantize()
    assert q.quantized and not isinstance(q.model.classifier, torch.nn.Linear)
    assert isinstance(loaded.model.classifier, torch.nn.Linear)  # the original is untouched
    assert {p.label for p in q.predict(texts)} <= set(LABELS)
    # metadata asking for int8 makes the loader quantize
    meta["quantize"] = True
    (out / METADATA_FILE).write_text(json.dumps(meta))
    assert load_transformer(out).quantized


def test_agreement_weights() -> None:
    assert agreement_weights([100, 75, 50, 66], 1.0, 4) is None  # unweighted
    assert agreement_weights(None, 0.5, 4) is None
    w = agreement_weights([100, 75, 50, "x", 30], 0.5, 5)
    assert w == pytest.approx([1.0, 0.75, 0.5, 1.0, 0.5])
    with pytest.raises(ValueError, match="one agreement level"):
        agreement_weights([100], 0.5, 2)


def test_layer_wise_learning_rates(tiny_model_dir: Path) -> None:
    model = BertForSequenceClassification.from_pretrained(tiny_model_dir)
    cfg = TrainConfig(learning_rate=1e-3, layer_lr_decay=0.5, weight_decay=0.01)
    lr_of = {}
    for group in _param_groups(model, cfg):
        for p in group["params"]:
            lr_of[id(p)] = (group["lr"], group["weight_decay"])
    named = dict(model.named_parameters())
    assert len(lr_of) == len(named)
    # one encoder layer: layer 0 at lr * 0.5, embeddings at lr * 0.25, head at lr
    assert lr_of[id(named["classifier.weight"])] == (pytest.approx(1e-3), 0.01)
    assert lr_of[id(named["classifier.bias"])] == (pytest.approx(1e-3), 0.0)
    q = named["bert.encoder.layer.0.attention.self.query.weight"]
    assert lr_of[id(q)] == (pytest.approx(5e-4), 0.01)
    emb = named["bert.embeddings.word_embeddings.weight"]
    assert lr_of[id(emb)][0] == pytest.approx(2.5e-4)
    flat = _param_groups(model, TrainConfig(learning_rate=1e-3, layer_lr_decay=1.0))
    assert {g["lr"] for g in flat} == {1e-3}


def test_weights_smoothing_and_distillation_change_training(tiny_model_dir: Path) -> None:
    data = tiny_dataset()
    val = tiny_dataset(2, seed=1)
    base = {**TINY_TRAIN.to_params(), "base_model": str(tiny_model_dir), "epochs": 4}
    # uncalibrated: the test compares what training learnt, not the fitted temperature
    cfg = TrainConfig(**{**base, "try_quantization": False, "calibrate": False})
    args = (data["text"].to_list(), data["label"].to_list(), val["text"].to_list())
    args = (*args, val["label"].to_list())
    plain = fine_tune(*args, config=cfg)
    # uniform weights are normalised away: the same weights as unweighted training
    doubled = fine_tune(*args, config=cfg, train_weights=[2.0] * data.height)
    assert weights_digest(doubled.model.model) == weights_digest(plain.model.model)
    uneven = [1.0 if i % 2 else 0.2 for i in range(data.height)]
    weighted = fine_tune(*args, config=cfg, train_weights=uneven)
    assert weights_digest(weighted.model.model) != weights_digest(plain.model.model)
    with pytest.raises(ValueError, match="one weight per training sentence"):
        fine_tune(*args, config=cfg, train_weights=[1.0])
    smooth_cfg = TrainConfig(**{**cfg.to_params(), "label_smoothing": 0.2})
    smooth = fine_tune(*args, config=smooth_cfg)
    assert weights_digest(smooth.model.model) != weights_digest(plain.model.model)
    # a teacher that is sure of "neutral" everywhere pulls the student towards neutral
    neutral = np.tile([0.0, 1.0, 0.0], (data.height, 1))
    distil_cfg = TrainConfig(**{**cfg.to_params(), "distill_alpha": 1.0})
    student = fine_tune(*args, config=distil_cfg, soft_labels=neutral)
    texts = val["text"].to_list()
    p_student = student.model.probabilities(texts)[:, LABELS.index("neutral")].mean()
    p_plain = plain.model.probabilities(texts)[:, LABELS.index("neutral")].mean()
    assert p_student > p_plain and p_student > 0.6
    with pytest.raises(ValueError, match="soft_labels must have shape"):
        fine_tune(*args, config=distil_cfg, soft_labels=neutral[:3])


def test_teacher_ensemble_is_distilled_into_one_model(tiny_model_dir: Path) -> None:
    data = tiny_dataset()
    val = tiny_dataset(2, seed=1)
    base = {**TINY_TRAIN.to_params(), "base_model": str(tiny_model_dir), "epochs": 4}
    base["try_quantization"] = False
    cfg = TrainConfig(**{**base, "teachers": 2, "distill_alpha": 0.5, "distill_temperature": 2})
    args = (data["text"].to_list(), data["label"].to_list(), val["text"].to_list())
    args = (*args, val["label"].to_list())
    logs: list[str] = []
    a = fine_tune(*args, config=cfg, log=logs.append)
    assert [t["seed"] for t in a.teachers[:2]] == [cfg.seed + 1, cfg.seed + 2]
    assert "ensemble_val_accuracy" in a.teachers[2]
    assert any("distilling" in line for line in logs)
    assert isinstance(a.model, TransformerSentimentModel)  # served: one model
    assert a.history[a.best_epoch - 1]["val_accuracy"] >= 0.9
    b = fine_tune(*args, config=cfg)
    assert weights_digest(a.model.model) == weights_digest(b.model.model)  # seeded end to end
    plain = fine_tune(*args, config=TrainConfig(**base))
    assert weights_digest(plain.model.model) != weights_digest(a.model.model)


def test_unknown_training_labels_are_rejected(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown labels"):
        fine_tune(
            ["a"],
            ["bullish"],
            ["b"],
            ["neutral"],
            config=TrainConfig(base_model=str(tiny_model_dir)),
        )
