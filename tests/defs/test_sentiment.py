"""Sentiment assets: scoring only new items per model version, drift check, training asset."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sentinance_assets.definitions import defs
from sentinance_assets.defs.ml.sentiment import news_sentiment, sentiment_drift
from sentinance_assets.defs.ml.sentiment_training import (
    SENTIMENT_CLASSIFIER_KEY,
    sentiment_classifier,
)
from sentinance_assets.defs.resources import mlflow_store
from sentinance_assets.defs.skips import skips_in
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import DRIFT, NEWS_SENTIMENT, RAW_NEWS
from tests.ml.test_sentiment_transformer import make_tiny_model, tiny_dataset

T0 = datetime(2026, 11, 10, tzinfo=UTC)


def write_news(settings, items: list[tuple[str, str | None, datetime]], part: str = "p") -> None:
    rows = [
        {
            "news_id": f"{part}-{i}",
            "title": title,
            "summary": summary,
            "link": f"https://example.test/{part}/{i}",
            "published": ts,
            "published_missing": False,
            "publisher": "test",
            "assets": "BTC",
            "source": "simulated",
            "ingested_at": ts,
        }
        for i, (title, summary, ts) in enumerate(items)
    ]
    lake.write_partition(settings.lake_dir, RAW_NEWS, pl.DataFrame(rows), part=part)


def _materialize(asset, settings) -> dg.ExecuteInProcessResult:
    resources = {"settings": settings, "mlflow_store": mlflow_store(settings)}
    return dg.materialize([asset], resources=resources, raise_on_error=True)


def test_vader_by_default_and_only_new_items_are_scored(tiny_settings):
    write_news(
        tiny_settings,
        [
            ("Bitcoin soars to a wonderful record", None, T0),
            ("Exchange hacked in a terrible crash", "Users lose funds.", T0),
            ("ETF decision due on Tuesday", "", T0),
        ],
    )
    res = _materialize(news_sentiment, tiny_settings)
    meta = res.asset_materializations_for_node("ml__news_sentiment")[0].metadata
    assert meta["newly_scored"].value == 3 and meta["model"].value.startswith("vader:")
    scores = lake.read_dataset(tiny_settings.lake_dir, NEWS_SENTIMENT).sort("news_id")
    assert scores["label"].to_list() == ["positive", "negative", "neutral"]
    write_news(tiny_settings, [("Prices surge on great news", None, T0)], part="q")
    res = _materialize(news_sentiment, tiny_settings)
    meta = res.asset_materializations_for_node("ml__news_sentiment")[0].metadata
    assert meta["newly_scored"].value == 1 and meta["total"].value == 4


def test_configured_transformer_rescores_everything_with_its_version(tiny_settings, tmp_path):
    write_news(tiny_settings, [(f"profit rose {i}", None, T0) for i in range(5)])
    _materialize(news_sentiment, tiny_settings)
    model_dir = make_tiny_model(tmp_path / "finbert-like")
    settings = tiny_settings.replace(sentiment_model=str(model_dir))
    res = _materialize(news_sentiment, settings)
    meta = res.asset_materializations_for_node("ml__news_sentiment")[0].metadata
    assert meta["newly_scored"].value == 5 and meta["model"].value == "transformer:finbert-like"
    scores = lake.read_dataset(tiny_settings.lake_dir, NEWS_SENTIMENT)
    assert scores.group_by("model").len().sort("model")["len"].to_list() == [5, 5]


TEMPLATES = [
    ("Company reports quarterly results", "Good profit."),
    ("Token listed on a new exchange", None),
    ("Miners sell part of their holdings", "Prices fall slightly after a weak week."),
    ("Regulator publishes guidance", "Analysts call it a great step for the market."),
]


def _news_days(n_ref: int, n_cur: int, shifted: str | None = None) -> list[tuple]:
    """``n_ref`` items over days 0-2 and ``n_cur`` on day 3 cycling the same templates; with
    ``shifted``, the day-3 items all carry that text instead."""
    ref = [(*TEMPLATES[i % 4], T0 + timedelta(minutes=20 * i)) for i in range(n_ref)]
    start = T0 + timedelta(days=3)
    cur = [
        ((shifted, shifted) if shifted else TEMPLATES[i % 4]) + (start + timedelta(minutes=10 * i),)
        for i in range(n_cur)
    ]
    return ref + cur


def test_drift_check_flags_a_shift_in_scores_and_text(tiny_settings):
    long_bad = "Terrible devastating crash wipes out investors in a horrible collapse " * 3
    write_news(tiny_settings, _news_days(60, 40, long_bad))
    _materialize(news_sentiment, tiny_settings)
    res = _materialize(sentiment_drift, tiny_settings)
    check = _check_results(res)["sentiment_drift_below_limit"]
    assert not check.passed and _check_results(res)["enough_input"].passed
    row = lake.read_dataset(tiny_settings.lake_dir, DRIFT).row(0, named=True)
    assert row["model"].startswith("sentiment/vader:") and row["dataset_drift"]
    assert (row["reference_rows"], row["current_rows"]) == (60, 40) and row["n_features"] == 4


def _check_results(res: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in res.get_asset_check_evaluations()}


def test_drift_check_passes_without_shift_and_skips_on_too_little_data(tiny_settings):
    res = _materialize(sentiment_drift, tiny_settings)  # nothing scored yet
    assert skips_in(res.all_events) == [("ml/sentiment_drift", "no sentiment scores yet")]
    write_news(tiny_settings, _news_days(5, 3))
    _materialize(news_sentiment, tiny_settings)
    res = _materialize(sentiment_drift, tiny_settings)
    ((asset, reason),) = skips_in(res.all_events)
    assert asset == "ml/sentiment_drift"
    assert "reference sample has 5 rows, fewer than the 30" in reason
    checks = _check_results(res)
    assert set(checks) == {"enough_input", "sentiment_drift_below_limit"}
    for check in checks.values():
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["skipped"].value == reason
    assert lake.read_dataset(tiny_settings.lake_dir, DRIFT).is_empty()  # nothing measured
    write_news(tiny_settings, _news_days(60, 40), part="more")  # more of the same: no shift
    _materialize(news_sentiment, tiny_settings)
    res = _materialize(sentiment_drift, tiny_settings)
    assert all(c.passed for c in res.get_asset_check_evaluations())
    assert skips_in(res.all_events) == []


def test_training_asset_skips_without_data_and_is_scheduled(tiny_settings):
    res = _materialize(sentiment_classifier, tiny_settings)
    assert res.success and not res.asset_materializations_for_node("ml__sentiment_classifier")
    (check,) = res.get_asset_check_evaluations()
    assert check.check_name == "enough_input" and not check.passed
    assert "SENTINANCE_SENTIMENT_DATA is not set" in check.metadata["skipped"].value
    d = defs()
    assert d.resolve_job_def("sentiment_training_job").asset_layer.executable_asset_keys == {
        SENTIMENT_CLASSIFIER_KEY
    }
    sched = d.resolve_schedule_def("sentiment_weekly_schedule")
    assert sched.default_status == dg.DefaultScheduleStatus.STOPPED
    assert sched.cron_schedule == "0 3 * * 0"


def test_training_asset_skips_on_too_few_sentences_per_label(tiny_settings, tmp_path):
    data = tmp_path / "labelled.csv"
    tiny_dataset(6).filter(pl.col("label") != "neutral").vstack(
        tiny_dataset(6).filter(pl.col("label") == "neutral").head(4)
    ).write_csv(data)
    res = _materialize(sentiment_classifier, tiny_settings.replace(sentiment_data=Path(data)))
    ((asset, reason),) = skips_in(res.all_events)
    assert asset == "ml/sentiment_classifier"
    assert "needs 10 distinct sentences per label" in reason and "4 neutral" in reason
    meta = res.asset_materializations_for_node("ml__sentiment_classifier")[0].metadata
    assert meta["needs"].value == "10 labelled sentences per label"
    assert not res.get_asset_check_evaluations()[0].passed
    assert not mlflow_store(tiny_settings).exists()  # nothing was trained or logged


def test_training_asset_trains_registers_and_news_switches_to_the_champion(
    tiny_settings, tmp_path, monkeypatch
):
    import ml.sentiment_transformer as st

    data = tmp_path / "labelled.csv"
    tiny_dataset(6).write_csv(data)
    base = make_tiny_model(tmp_path / "tiny")
    small = functools.partial(
        st.TrainConfig,
        base_model=str(base),
        epochs=2,
        batch_size=4,
        learning_rate=3e-3,
        max_length=32,
        threads=1,
    )
    monkeypatch.setattr(st, "TrainConfig", small)
    settings = tiny_settings.replace(sentiment_data=Path(data))
    res = _materialize(sentiment_classifier, settings)
    meta = res.asset_materializations_for_node("ml__sentiment_classifier")[0].metadata
    assert meta["registered_version"].value == "1" and meta["promoted"].value is True
    assert res.get_asset_check_evaluations()[0].passed
    assert 0 <= meta["test_macro_f1"].value <= 1 and "transformer_vs_vader" in meta["mcnemar"].value
    write_news(settings, [("profit rose", None, T0), ("sales fell", None, T0)])
    res = _materialize(news_sentiment, settings)
    model = res.asset_materializations_for_node("ml__news_sentiment")[0].metadata["model"].value
    assert model.startswith("transformer:v1-minilm-ft-")


# ---- the calibrated confidence of each scored headline ---------------------------------------


def test_vader_rows_store_no_confidence_and_a_transformer_its_calibrated_probability(
    tiny_settings, tmp_path
):
    from ml.sentiment_transformer import load_transformer, read_metadata

    titles = ["profit rose sharply", "sales fell", ""]
    write_news(tiny_settings, [(t, None, T0) for t in titles])
    _materialize(news_sentiment, tiny_settings)
    scores = lake.read_dataset(tiny_settings.lake_dir, NEWS_SENTIMENT)
    assert scores["confidence"].dtype == pl.Float64
    assert scores["confidence"].null_count() == 3  # VADER: no probability, none made up
    # a transformer with a temperature: the stored confidence is the calibrated top probability
    model_dir = make_tiny_model(tmp_path / "calibrated")
    meta_file = model_dir / "sentinance_model.json"
    meta_file.write_text('{"version": "tiny-t2", "temperature": 2.0}')
    assert read_metadata(model_dir)["temperature"] == 2.0
    settings = tiny_settings.replace(sentiment_model=str(model_dir))
    _materialize(news_sentiment, settings)
    scores = lake.read_dataset(tiny_settings.lake_dir, NEWS_SENTIMENT)
    mine = scores.filter(pl.col("model_version") == "tiny-t2").sort("news_id")
    model = load_transformer(model_dir)
    probs = model.probabilities(titles)
    expected = [float(probs[0].max()), float(probs[1].max()), None]  # blank text: no confidence
    got = mine["confidence"].to_list()
    assert got[2] is None and got[:2] == pytest.approx(expected[:2], abs=1e-6)
    assert all(1 / 3 <= c <= 1 for c in got[:2])
    assert mine["label"].to_list()[:2] == [model.predict(titles)[i].label for i in (0, 1)]


def test_scores_written_before_the_column_read_as_null_and_the_view_gets_it(tiny_settings):
    from sentinance_assets.lib import warehouse

    old_shape = {c: t for c, t in NEWS_SENTIMENT.columns.items() if c != "confidence"}
    folder = lake.dataset_dir(tiny_settings.lake_dir, NEWS_SENTIMENT)
    old = pl.DataFrame(
        {
            "news_id": ["old-1"],
            "model": ["vader"],
            "model_version": ["vaderSentiment-3.3.2"],
            "label": ["positive"],
            "score": [0.5],
            "scored_at": [T0],
        },
        schema=old_shape,
    )
    lake.atomic_write_parquet(old, folder / "scores.parquet")  # an older release's files
    lake.atomic_write_parquet(pl.DataFrame(schema=old_shape), folder / lake.PLACEHOLDER)
    read = lake.read_dataset(tiny_settings.lake_dir, NEWS_SENTIMENT)
    assert read.columns == list(NEWS_SENTIMENT.columns) and read["confidence"].to_list() == [None]
    # the scorer keeps the old row (null confidence) beside its own
    write_news(tiny_settings, [("Prices surge on great news", None, T0)])
    _materialize(news_sentiment, tiny_settings)
    stored = pl.read_parquet(folder / "scores.parquet")
    assert "confidence" in stored.columns and stored.height == 2
    # the warehouse step rewrites the old placeholder; the view then has the column
    with warehouse.write_connection(tiny_settings.home / "w.duckdb") as conn:
        warehouse.register_lake_views(conn, tiny_settings.lake_dir)
        assert "confidence" in pl.read_parquet_schema(folder / lake.PLACEHOLDER)
        rows = conn.execute(
            "select news_id, confidence from ml.news_sentiment order by news_id"
        ).fetchall()
    assert rows == [("old-1", None), ("p-0", None)]
