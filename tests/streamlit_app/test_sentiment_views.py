"""Which model scores the news, on the News & sentiment page, the Models page and in the
``sentinance demo`` summary (Streamlit AppTest, no browser; no model is loaded)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from streamlit.testing.v1 import AppTest

from sentinance_assets.lib import sentiment_status
from sentinance_assets.settings import Settings

CHAMPION = {
    "name": "sentinance-sentiment",
    "version": "3",
    "aliases": ["champion"],
    "serving": True,
    "status": "READY",
    "created_at": datetime(2026, 11, 1, tzinfo=UTC),
    "run_id": "r3",
    "decision": "promoted",
    "reason": "no champion yet",
    "metrics": {
        "test_accuracy": 0.877,
        "test_macro_f1": 0.854,
        "vader_test_accuracy": 0.565,
        "vader_test_macro_f1": 0.492,
        "mcnemar_transformer_vs_vader_b": 287.0,
        "mcnemar_transformer_vs_vader_c": 45.0,
        "mcnemar_transformer_vs_vader_p_value": 3e-44,
        "temperature": 1.4,
        "test_ece_before": 0.061,
        "test_ece_after": 0.021,
    },
}


def _news_notice() -> None:
    import streamlit as st

    st.cache_resource.clear()  # the settings are a cached resource
    from streamlit_app.views import news

    news.serving_notice()


def _models_section() -> None:
    import streamlit as st

    st.cache_resource.clear()
    from streamlit_app.views import models

    models._sentiment_metrics_section()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SENTINANCE_SENTIMENT_MODEL", raising=False)
    return tmp_path / "home"


def test_fresh_home_says_vader_its_accuracy_and_the_train_command(home) -> None:
    status = sentiment_status.serving_status(Settings.from_env())
    assert status["kind"] == "vader" and "0.565" in status["message"]
    assert "below always answering 'neutral'" in status["message"]
    lines = sentiment_status.summary_lines(Settings.from_env())
    assert any("sentinance sentiment train --data" in line for line in lines)
    at = AppTest.from_function(_news_notice).run()
    assert not at.exception
    text = at.info[0].value
    assert "VADER" in text and "0.565" in text
    assert "sentinance sentiment train --data ../shared/data/financial_phrasebank" in text
    at = AppTest.from_function(_models_section).run()
    assert not at.exception and "VADER" in at.info[0].value


def test_a_trained_champion_is_named_with_its_metrics(home, monkeypatch) -> None:
    forecaster = {**CHAMPION, "name": "sentinance-forecaster", "metrics": {}}
    monkeypatch.setattr(sentiment_status.registry, "versions", lambda db: [forecaster, CHAMPION])
    status = sentiment_status.serving_status(Settings.from_env())
    assert status["kind"] == "champion" and status["version"] == "3"
    assert "sentinance-sentiment v3" in status["message"] and "ECE 0.021" in status["message"]
    assert len(sentiment_status.summary_lines(Settings.from_env())) == 2  # no training hint
    at = AppTest.from_function(_news_notice).run()
    assert not at.exception and not at.info
    assert "sentinance-sentiment v3" in at.caption[0].value
    at = AppTest.from_function(_models_section).run()
    assert not at.exception
    table = at.dataframe[0].value
    row = table.iloc[0]
    assert list(table["version"]) == ["3"]
    assert (row["test_accuracy"], row["vader_accuracy"]) == (0.877, 0.565)
    assert (row["mcnemar_b"], row["mcnemar_c"], row["ece_after"]) == (287.0, 45.0, 0.021)


def test_a_configured_model_is_named(home, monkeypatch) -> None:
    monkeypatch.setenv("SENTINANCE_SENTIMENT_MODEL", "ProsusAI/finbert")
    status = sentiment_status.serving_status(Settings.from_env())
    assert status["kind"] == "configured" and "ProsusAI/finbert" in status["message"]
