"""The News & sentiment page shows each scored headline's calibrated confidence (Streamlit
AppTest, no browser): the transformer's probability of its label, empty for VADER; and a read
side whose lake predates the column still renders, with the column empty.

The home is made by hand in a second: a published warehouse with two news items, each scored by
VADER and by a transformer, and just the tables the page reads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from sentinance_assets.lib import lake, warehouse
from sentinance_assets.lib.schemas import NEWS_SENTIMENT

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
SCORES = [
    # news_id, model, model_version, label, score, confidence
    ("n1", "vader", "vaderSentiment-3.3.2", "positive", 0.62, None),
    ("n1", "transformer", "minilm-ft-test", "positive", 0.71, 0.874),
    ("n2", "vader", "vaderSentiment-3.3.2", "neutral", 0.0, None),
    ("n2", "transformer", "minilm-ft-test", "negative", -0.40, 0.552),
]


def _scores() -> pl.DataFrame:
    cols = ["news_id", "model", "model_version", "label", "score", "confidence"]
    df = pl.DataFrame(SCORES, schema=cols, orient="row").with_columns(scored_at=pl.lit(T0))
    return NEWS_SENTIMENT.conform(df)


def build_home(home: Path) -> None:
    """Scores in the lake, the lake views, and the staging/mart tables the page joins."""
    lake_dir = home / "lake"
    lake.write_partition(lake_dir, NEWS_SENTIMENT, _scores(), part="scores")
    with warehouse.write_connection(home / "warehouse.duckdb") as conn:
        warehouse.register_lake_views(conn, lake_dir)
        conn.execute(
            "create table staging.stg_news (news_id varchar, published timestamptz, publisher "
            "varchar, title varchar, summary varchar, assets varchar)"
        )
        conn.executemany(
            "insert into staging.stg_news values (?, ?, 'test', ?, null, 'BTC')",
            [("n1", T0, "Bitcoin ETF approved"), ("n2", T0, "Exchange halts withdrawals")],
        )
        conn.execute("create table marts.candles as select 'BTC' as base")
        conn.execute(
            "create table marts.daily_market as select 'BTC' as base, ?::date as day, "
            "1.5 as return_pct",
            [date(2026, 11, 10)],
        )
        conn.execute(
            "create table marts.news_sentiment_daily as select 'BTC' as base, ?::date as day, "
            "2::bigint as news_count, 2::bigint as scored_count, 0.1 as mean_score, "
            "0.5 as share_positive, 0.5 as share_negative",
            [date(2026, 11, 10)],
        )
    warehouse.publish(home / "warehouse.duckdb", home / "warehouse.read.duckdb")


def make_lake_old_shape(home: Path) -> None:
    """What a release before the ``confidence`` column left behind: score files and the empty
    placeholder without it (the published views read the lake's files as they are)."""
    folder = lake.dataset_dir(home / "lake", NEWS_SENTIMENT)
    old = _scores().drop("confidence")
    lake.atomic_write_parquet(old, folder / "scores.parquet")
    lake.atomic_write_parquet(old.clear(), folder / lake.PLACEHOLDER)


def _news_page() -> None:
    import streamlit as st

    st.cache_resource.clear()  # settings
    st.cache_data.clear()  # queries: every test has its own home
    from streamlit_app.views import news

    news.render()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SENTINANCE_HOME", str(home))
    monkeypatch.delenv("SENTINANCE_SENTIMENT_MODEL", raising=False)
    build_home(home)
    return home


def _items(at: AppTest):
    assert not at.exception, at.exception
    assert not at.warning, [w.value for w in at.warning]
    return at.dataframe[0].value


def test_items_show_the_transformers_confidence_and_none_for_vader(home) -> None:
    at = AppTest.from_function(_news_page).run()
    items = _items(at)
    assert "confidence" in items.columns
    by = {(r.title, r.model): r.confidence for r in items.itertuples()}
    assert by[("Bitcoin ETF approved", "transformer")] == pytest.approx(0.874)
    assert by[("Exchange halts withdrawals", "transformer")] == pytest.approx(0.552)
    assert all(by[(t, "vader")] != by[(t, "vader")] for t in ("Bitcoin ETF approved",))  # NaN
    assert items.loc[items["model"] == "vader", "confidence"].isna().all()
    captions = " ".join(c.value for c in at.caption)
    assert "Confidence: calibrated probability of the label" in captions
    assert "Empty for VADER" in captions


def test_a_read_side_that_predates_the_column_still_renders(home) -> None:
    make_lake_old_shape(home)
    at = AppTest.from_function(_news_page).run()
    items = _items(at)
    assert len(items) == 4 and items["confidence"].isna().all()
    assert sorted(items["label"]) == ["negative", "neutral", "positive", "positive"]
