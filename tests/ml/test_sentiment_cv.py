"""Cross-validation folds never touch the test split, cover every development row once and
keep the label mix; scores split the all-agree rows out; the summary is mean and sd; the int8
choice is decided on the paired fold differences."""

from __future__ import annotations

import polars as pl
import pytest

from ml.sentiment_cv import (
    cv_folds,
    development_rows,
    inner_split,
    int8_decision,
    paired_difference,
    recipe_difference,
    subset_scores,
    summarize,
    variant_scores,
)
from ml.sentiment_eval import split_labelled


def _labelled(n_per_label: int = 40) -> pl.DataFrame:
    rows = []
    for label in ("negative", "neutral", "positive"):
        for i in range(n_per_label):
            rows.append((f"{label} sentence {i}", label, 100.0 if i % 2 else 50.0))
    return pl.DataFrame(rows, schema=["text", "label", "max_agreement"], orient="row")


def test_development_rows_exclude_the_recipes_test_split():
    data = _labelled()
    dev = development_rows(data)
    test = split_labelled(data).test
    assert set(dev["text"]).isdisjoint(set(test["text"]))
    assert dev.height + test.height == data.height


def test_folds_partition_the_development_rows_and_keep_the_label_mix():
    dev = development_rows(_labelled())
    folds = cv_folds(dev, k=4, seed=3)
    held = [set(h["text"]) for _, h in folds]
    # every row held out exactly once, never also in its own fold's fitting rows
    assert sum(len(h) for h in held) == dev.height
    assert set().union(*held) == set(dev["text"])
    for (fit, h), texts in zip(folds, held, strict=True):
        assert texts.isdisjoint(set(fit["text"]))
        counts = h.group_by("label").len()["len"].to_list()
        assert max(counts) - min(counts) <= 1  # stratified: 8 of each label, give or take one
    # seeded: the same folds again, other folds with another seed
    again = cv_folds(dev, k=4, seed=3)
    assert [set(h["text"]) for _, h in again] == held
    assert [set(h["text"]) for _, h in cv_folds(dev, k=4, seed=4)] != held


def test_folds_refuse_too_few_rows_or_folds():
    with pytest.raises(ValueError, match="at least 2 folds"):
        cv_folds(_labelled(), k=1)
    with pytest.raises(ValueError, match="too few for 5 folds"):
        cv_folds(_labelled(n_per_label=3), k=5)


def test_inner_split_holds_an_eighth_per_label():
    fit, _ = cv_folds(development_rows(_labelled(80)), k=5)[0]
    train, val = inner_split(fit, seed=1)
    assert set(train["text"]).isdisjoint(set(val["text"]))
    assert train.height + val.height == fit.height
    share = val.height / fit.height
    assert 0.10 < share < 0.15
    assert set(val["label"]) == {"negative", "neutral", "positive"}


def test_subset_scores_split_out_the_all_agree_rows():
    truth = ["positive", "negative", "neutral", "neutral"]
    pred = ["positive", "neutral", "neutral", "positive"]
    agree = [100.0, 50.0, 100.0, 66.0]
    s = subset_scores(truth, pred, agree)
    assert s["accuracy"] == pytest.approx(0.5)
    # the all-agree rows are the first and third: both right
    assert s["allagree_accuracy"] == pytest.approx(1.0) and s["allagree_n"] == 2.0
    assert "allagree_accuracy" not in subset_scores(truth, pred, None)


def test_summary_is_mean_and_sample_sd_over_runs():
    runs = [{"scores": {"accuracy": a, "n": 10.0}} for a in (0.80, 0.84, 0.88)]
    s = summarize(runs)
    assert s["accuracy"]["mean"] == pytest.approx(0.84)
    assert s["accuracy"]["sd"] == pytest.approx(0.04)
    assert "n" not in s


class _FixedLogits:
    """A model stand-in: fixed logits per text, with a temperature."""

    def __init__(self, logits: dict[str, list[float]], temperature: float = 1.0) -> None:
        self._logits, self.temperature = logits, temperature

    def logits(self, texts):
        import numpy as np

        return np.array([self._logits[t] for t in texts], dtype=float)


def test_variant_scores_take_labels_from_the_logits_and_report_ece():
    held = pl.DataFrame(
        {"text": ["a", "b", "c", "d"], "label": ["negative", "neutral", "positive", "positive"]}
    )
    # LABELS order is negative, neutral, positive; "d" is wrong (predicted neutral)
    model = _FixedLogits(
        {"a": [3, 0, 0], "b": [0, 3, 0], "c": [0, 0, 3], "d": [0, 2, 1]}, temperature=1.0
    )
    s = variant_scores(model, held, None)
    assert s["accuracy"] == pytest.approx(0.75)
    assert 0.0 < s["ece"] < 1.0
    # a sharper temperature makes the confident-but-wrong row cost more calibration
    sharp = variant_scores(_FixedLogits(model._logits, temperature=0.2), held, None)
    assert sharp["accuracy"] == s["accuracy"] and sharp["ece"] != s["ece"]


def _run(fp32: float, int8: float, quantized: bool = True) -> dict:
    return {
        "quantized": quantized,
        "variants": {
            "fp32": {"accuracy": fp32, "macro_f1": fp32 - 0.02},
            "int8": {"accuracy": int8, "macro_f1": int8 - 0.03},
        },
    }


def test_int8_is_decided_on_the_mean_paired_loss_over_folds():
    small_loss = [_run(0.83, 0.825), _run(0.81, 0.80), _run(0.85, 0.846, quantized=False)]
    d = int8_decision(small_loss, max_loss=0.01)
    assert d["decided"] and d["keep_int8"]
    assert d["accuracy_difference"]["mean"] == pytest.approx(-0.019 / 3)
    assert d["kept_by_validation_rule"] == 2
    # one fold losing 5 points pulls the mean past the one-point rule
    big_loss = [*small_loss, _run(0.84, 0.79)]
    assert not int8_decision(big_loss, max_loss=0.01)["keep_int8"]
    assert paired_difference(big_loss, "macro_f1")["min"] == pytest.approx(-0.06)


def test_int8_decision_says_when_nothing_was_paired():
    d = int8_decision([{"scores": {"accuracy": 0.8}}], max_loss=0.01)
    assert d == {"decided": False, "reason": "no run scored both fp32 and int8"}


def test_two_recipes_are_compared_on_the_runs_they_share():
    def runs(scores):
        return [{"fold": f, "seed": 7, "scores": {"macro_f1": v}} for f, v in enumerate(scores)]

    a, b = runs([0.80, 0.82, 0.84]), runs([0.79, 0.80, 0.84, 0.99])  # b has an extra fold
    d = recipe_difference(a, b)
    assert d["runs"] == 3.0
    assert d["mean"] == pytest.approx(0.01)
    assert d["se"] == pytest.approx(d["sd"] / 3**0.5)
    assert recipe_difference(a, runs([])) == {}
