"""Temperature scaling and expected calibration error (ml.sentiment_eval), and the
temperature travelling with a saved model (ml.sentiment_transformer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml.sentiment_eval import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    nll,
    softmax,
)
from ml.sentiment_transformer import (
    METADATA_FILE,
    TrainConfig,
    TransformerSentimentModel,
    fine_tune,
    load_transformer,
    save_model,
)
from tests.ml.test_sentiment_transformer import TINY_TRAIN, tiny_dataset


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_scaling_recovers_a_known_temperature(true_t: float) -> None:
    # labels drawn from softmax(z / T*): the NLL-optimal temperature of the logits z is T*
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(20_000, 3))
    p = softmax(z, true_t)
    y = np.array([rng.choice(3, p=row) for row in p])
    t = fit_temperature(z, y)
    assert t == pytest.approx(true_t, rel=0.05)
    assert nll(z, y, t) <= min(nll(z, y, 1.0), nll(z, y, true_t)) + 1e-9


def test_ece_by_hand() -> None:
    # 15 equal-width bins; confidences 0.95, 0.95 (bin 15), 0.55 (bin 9), 0.40 (bin 6)
    probs = np.array(
        [
            [0.95, 0.03, 0.02],  # right
            [0.02, 0.03, 0.95],  # wrong
            [0.55, 0.25, 0.20],  # right
            [0.30, 0.40, 0.30],  # wrong
        ]
    )
    y = [0, 0, 0, 0]
    # bin 15: acc 0.5, conf 0.95 -> 2/4 * 0.45; bin 9: 1/4 * |1 - 0.55|; bin 6: 1/4 * |0 - 0.4|
    expected = 0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.40
    assert expected_calibration_error(probs, y) == pytest.approx(expected)
    # a perfectly confident, always right model is perfectly calibrated
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0
    with pytest.raises(ValueError):
        expected_calibration_error(np.zeros((0, 3)), [])


def test_calibration_report_keeps_labels_and_lowers_nll() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(scale=4.0, size=(3000, 3))  # over-confident logits: true T = 3
    y = np.array([rng.choice(3, p=row) for row in softmax(z, 3.0)])
    labels = [("negative", "neutral", "positive")[i] for i in y]
    t = fit_temperature(z, y)
    rep = calibration_report(z, labels, t)
    assert rep["temperature"] == t and t > 1
    assert rep["nll_after"] < rep["nll_before"] and rep["ece_after"] < rep["ece_before"]
    assert (softmax(z, t).argmax(1) == softmax(z).argmax(1)).all()  # labels never change


def test_temperature_is_fitted_saved_and_applied_by_every_runtime(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tiny_dataset()
    val = tiny_dataset(2, seed=1)
    cfg = TrainConfig(**{**TINY_TRAIN.to_params(), "base_model": str(tiny_model_dir), "epochs": 1})
    result = fine_tune(
        data["text"].to_list(),
        data["label"].to_list(),
        val["text"].to_list(),
        val["label"].to_list(),
        config=cfg,
    )
    assert result.temperature > 0 and result.model.temperature == result.temperature
    assert result.calibration["val_nll_after"] <= result.calibration["val_nll_before"] + 1e-9
    result.quantize = False
    out = save_model(result, tmp_path / "saved")
    assert json.loads((out / METADATA_FILE).read_text())["temperature"] == result.temperature

    texts = val["text"].to_list()
    want = result.model.probabilities(texts)
    for runtime in ("torch", "onnx"):
        loaded = load_transformer(out, threads=1, runtime=runtime)
        assert loaded.temperature == result.temperature, runtime
        np.testing.assert_allclose(loaded.probabilities(texts), want, atol=1e-5)
        raw = loaded.logits(texts)
        np.testing.assert_allclose(softmax(raw, result.temperature), want, atol=1e-5)
        preds = loaded.predict([*texts[:3], None])
        for pred, row in zip(preds[:3], want[:3], strict=True):
            assert pred.confidence == pytest.approx(row.max(), abs=1e-5)
        assert preds[-1].confidence is None  # blank text is not scored
    int8 = load_transformer(out, threads=1, quantize=True)
    assert int8.quantized and int8.temperature == result.temperature
    # an old folder without a temperature serves uncalibrated (T = 1)
    meta = json.loads((out / METADATA_FILE).read_text())
    del meta["temperature"]
    (out / METADATA_FILE).write_text(json.dumps(meta))
    assert load_transformer(out, threads=1, runtime="torch").temperature == 1.0


def test_a_temperature_must_be_positive(tiny_model_dir: Path) -> None:
    loaded = load_transformer(tiny_model_dir, threads=1, runtime="torch")
    with pytest.raises(ValueError, match="temperature"):
        TransformerSentimentModel(loaded.model, loaded.tokenizer, temperature=0.0)
