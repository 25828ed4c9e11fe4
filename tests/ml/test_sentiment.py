"""ml.sentiment: the interface and the VADER baseline."""

from __future__ import annotations

from ml.sentiment import LABELS, SentimentModel, SentimentPrediction, VaderModel


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


def test_batching_does_not_change_results_and_interface_holds() -> None:
    model = VaderModel()
    texts = [f"prices {w} today" for w in ("soar", "plunge", "hold", "surge", "collapse")] * 7
    assert model.predict(texts, batch_size=3) == model.predict(texts, batch_size=100)
    assert isinstance(model, SentimentModel)
    assert model.name == "vader" and model.version.startswith("vaderSentiment-3.")
    assert {p.label for p in model.predict(texts)} <= set(LABELS)
