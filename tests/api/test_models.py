"""``POST /v1/sentiment`` (serving model and VADER side by side) and ``GET /v1/models``."""

from __future__ import annotations

import pytest

from ml.sentiment import VaderModel

TEXTS = [
    "Great news: Bitcoin soars and investors are happy",
    "Exchange hacked; customers fear losses",
    "",
    "The committee meets on Tuesday.",
]


def test_sentiment_scores_with_the_serving_model_and_vader(api):
    r = api.client.post("/v1/sentiment", json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    vader = VaderModel()
    # no champion registered and no model configured: VADER serves
    assert body["model"] == {"name": "vader", "version": vader.version, "source": "baseline"}
    assert body["baseline"]["name"] == "vader"
    want = vader.predict(TEXTS)
    assert [x["index"] for x in body["results"]] == list(range(len(TEXTS)))
    for got, p in zip(body["results"], want, strict=True):
        assert (got["baseline_label"], got["baseline_score"]) == (p.label, pytest.approx(p.score))
        assert got["label"] in {"negative", "neutral", "positive"} and -1 <= got["score"] <= 1
        assert got["confidence"] is None  # VADER's compound score is not a probability
    assert body["results"][0]["label"] == "positive"
    assert body["results"][1]["label"] == "negative"


def test_a_transformer_serves_its_calibrated_confidence(tiny_settings, tmp_path):
    from ml.sentiment_transformer import load_transformer
    from sentinance_assets.api.models import SentimentResponse
    from sentinance_assets.api.sentiment import SentimentService
    from tests.ml.test_sentiment_transformer import make_tiny_model

    folder = make_tiny_model(tmp_path / "tiny")
    (folder / "sentinance_model.json").write_text('{"version": "t1", "temperature": 2.0}')
    service = SentimentService(tiny_settings.replace(sentiment_model=str(folder)))
    body = service.score(["profit rose", ""])
    SentimentResponse.model_validate(body)  # the documented response shape
    model = load_transformer(folder, threads=1)
    assert model.temperature == 2.0
    want = model.probabilities(["profit rose"])[0].max()
    assert body["results"][0]["confidence"] == pytest.approx(want, abs=1e-6)
    assert body["results"][1]["confidence"] is None  # blank text is not scored


@pytest.mark.parametrize(
    "payload",
    [{}, {"texts": []}, {"texts": "one text"}, {"texts": [1, 2]}, {"texts": ["x" * 5001]}],
)
def test_sentiment_rejects_malformed_bodies(api, payload):
    r = api.client.post("/v1/sentiment", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"


def test_sentiment_rejects_non_json(api):
    r = api.client.post(
        "/v1/sentiment", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def test_models_lists_versions_serving_and_metrics(api):
    body = api.get("/v1/models").json()
    versions = {(v["name"], v["version"]): v for v in body["registered"]}
    assert set(versions) == {
        ("sentinance-forecaster", "1"),
        ("sentinance-forecaster", "2"),
        ("sentinance-sentiment", "1"),
    }
    champ = versions[("sentinance-forecaster", "2")]
    assert champ["serving"] is True and champ["aliases"] == ["champion", "latest_trained"]
    assert champ["decision"] == "promoted" and champ["reason"] == "beats every baseline"
    assert champ["metrics"] == {"lstm.mae.1h.ALL": 0.008, "lstm.rmse.1h.ALL": 0.011}
    assert versions[("sentinance-sentiment", "1")]["serving"] is False
    assert versions[("sentinance-forecaster", "1")]["serving"] is False  # not the latest trained
    assert versions[("sentinance-sentiment", "1")]["metrics"] == {"test_macro_f1": 0.8}
    assert body["forecaster_serving"] == "2"
    assert body["sentiment_serving"]["source"] == "baseline"
