"""ml.sentiment and ml.sentiment_eval: interface, VADER, data splits, metrics, McNemar."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ml.sentiment import LABELS, SentimentModel, SentimentPrediction, VaderModel
from ml.sentiment_eval import (
    classification_metrics,
    dedupe,
    heldout_digest,
    load_labelled,
    mcnemar,
    split_labelled,
)
from tests.conftest import shared_data


def test_vader_labels_obvious_sentences() -> None:
    model = VaderModel()
    texts = [
        "Bitcoin rallies to a record high as investors cheer a great, wonderful week.",
        "Exchange hacked, users lose everything in a terrible, devastating crash.",
        "The exchange publishes its quarterly report on Tuesday.",
    ]
    preds = model.predict(texts)
    assert [p.label for p in preds] == ["positive", "negative", "neutral"]
    assert preds[0].score > 0.5 and preds[1].score < -0.5 and preds[2].score == 0.0
    assert all(isinstance(p, SentimentPrediction) and -1 <= p.score <= 1 for p in preds)


def test_missing_and_blank_text_is_neutral_and_order_is_kept() -> None:
    model = VaderModel()
    texts = [None, "", "   ", "Great gains!", None]
    preds = model.predict(texts, batch_size=2)
    assert len(preds) == len(texts)
    assert [p.label for p in preds] == ["neutral", "neutral", "neutral", "positive", "neutral"]
    assert preds[0] == SentimentPrediction("neutral", 0.0)


def test_classification_metrics_by_hand() -> None:
    y = ["positive", "positive", "neutral", "neutral", "negative", "negative"]
    p = ["positive", "neutral", "neutral", "neutral", "positive", "negative"]
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["n"] == 6
    assert m["precision_positive"] == pytest.approx(0.5) and m["recall_positive"] == 0.5
    assert m["precision_neutral"] == pytest.approx(2 / 3) and m["recall_neutral"] == 1.0
    assert m["precision_negative"] == 1.0 and m["recall_negative"] == 0.5
    f1 = [0.5, 0.8, 2 / 3]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["confusion"]["negative"] == {"negative": 1, "neutral": 0, "positive": 1}
    assert m["confusion"]["positive"] == {"negative": 0, "neutral": 1, "positive": 1}


def test_mcnemar_exact_binomial_on_discordant_pairs() -> None:
    y = ["positive"] * 10
    a = ["positive"] * 10
    b = ["negative"] * 6 + ["positive"] * 4  # A right / B wrong on 6 rows, never the reverse
    t = mcnemar(y, a, b)
    assert (t["b"], t["c"]) == (6, 0)
    assert t["p_value"] == pytest.approx(2 * 0.5**6)
    assert t["statistic"] == pytest.approx((6 - 1) ** 2 / 6)
    assert mcnemar(y, a, a) == {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0}
    sym = mcnemar(y, ["negative"] * 3 + ["positive"] * 7, ["positive"] * 7 + ["negative"] * 3)
    assert (sym["b"], sym["c"]) == (3, 3) and sym["p_value"] == pytest.approx(1.0)


def test_split_is_seeded_stratified_and_leak_free() -> None:
    rows = [
        (f"sentence {label} {i}", label)
        for label, n in zip(LABELS, (20, 50, 30), strict=True)
        for i in range(n)
    ]
    rows += [("sentence neutral 0", "neutral"), ("sentence neutral 0", "positive")]  # duplicates
    df = pl.DataFrame(rows, schema=["text", "label"], orient="row")
    s1, s2 = split_labelled(df, seed=3), split_labelled(df, seed=3)
    assert s1.test.equals(s2.test) and s1.train.equals(s2.train)
    assert not split_labelled(df, seed=4).test.equals(s1.test)
    sets = [set(x["text"]) for x in (s1.train, s1.val, s1.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(len(x) for x in sets) == 100  # one row per unique text
    assert dict(s1.test.group_by("label").len().iter_rows()) == {
        "negative": 4,
        "neutral": 10,
        "positive": 6,
    }
    # the majority label wins for a duplicated text
    everything = pl.concat([s1.train, s1.val, s1.test])
    assert everything.filter(pl.col("text") == "sentence neutral 0")["label"].item() == "neutral"
    assert heldout_digest(["a", "b"], ["neutral", "positive"]) == heldout_digest(
        ["b", "a"], ["positive", "neutral"]
    )


def test_load_labelled_validates(tmp_path: Path) -> None:
    ok = tmp_path / "ok.csv"
    ok.write_text('sentence,label\n" Profit rose ",Positive\n,neutral\n')
    df = load_labelled(ok)
    assert df.rows() == [("Profit rose", "positive")]
    bad = tmp_path / "bad.csv"
    bad.write_text("text,sentiment\nx,positive\n")
    with pytest.raises(ValueError, match="need columns"):
        load_labelled(bad)


def test_agreement_column_is_kept_and_deduped_to_its_maximum(tmp_path: Path) -> None:
    f = tmp_path / "pb.csv"
    f.write_text(
        "sentence,label,max_agreement\n"
        "profit rose,positive,50\nprofit rose,positive,100\nsales fell,negative,75\n"
    )
    df = load_labelled(f)
    assert df.columns == ["text", "label", "max_agreement"]
    assert dedupe(df).rows() == [
        ("profit rose", "positive", 100.0),
        ("sales fell", "negative", 75.0),
    ]
    # a file without the column loads as before (text, label only)
    plain = tmp_path / "plain.csv"
    plain.write_text("text,label\nprofit rose,positive\n")
    assert load_labelled(plain).columns == ["text", "label"]


def test_phrasebank_split_and_vader_baseline() -> None:
    data = load_labelled(shared_data("financial_phrasebank"))
    assert data.height == 3873
    assert set(data["max_agreement"].unique().to_list()) == {50.0, 66.0, 75.0, 100.0}
    split = split_labelled(data)
    assert split.test.height + split.val.height + split.train.height == dedupe(data).height
    assert not set(split.test["text"]) & set(split.train["text"])
    preds = [p.label for p in VaderModel().predict(split.test["text"].to_list())]
    m = classification_metrics(split.test["label"].to_list(), preds)
    # VADER is a general-purpose lexicon: far from the transformer on financial text
    assert 0.4 < m["accuracy"] < 0.7 and m["macro_f1"] < 0.65


def test_batching_does_not_change_results_and_interface_holds() -> None:
    model = VaderModel()
    texts = [f"prices {w} today" for w in ("soar", "plunge", "hold", "surge", "collapse")] * 7
    assert model.predict(texts, batch_size=3) == model.predict(texts, batch_size=100)
    assert isinstance(model, SentimentModel)
    assert model.name == "vader" and model.version.startswith("vaderSentiment-3.")
    assert {p.label for p in model.predict(texts)} <= set(LABELS)
