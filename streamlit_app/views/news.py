"""News & sentiment: scored news items and daily sentiment against returns."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from sentinance_assets.lib import sentiment_status
from streamlit_app import data

LABELS = ["positive", "neutral", "negative"]
CONFIDENCE_HELP = (
    "Calibrated probability of the label (the transformer's temperature-scaled softmax; "
    "0.33 = a coin toss between three labels, 1 = certain), calibrated on financial "
    "sentences: on crypto headlines it runs high (docs/sentiment.md). Empty for VADER: its "
    "score is not a probability."
)

# {confidence}: ``s.confidence``, or a typed NULL on a read side that predates the column
# (:func:`streamlit_app.data.news_confidence_sql`); never user input
ITEMS_SQL = """
select n.published, n.assets, n.publisher, n.title, n.summary,
       s.model, s.model_version, s.label, s.score, {confidence}
from staging.stg_news as n
left join ml.news_sentiment as s on s.news_id = n.news_id
where (?::varchar is null or list_contains(string_split(coalesce(n.assets, ''), ','), ?))
  and (len(?::varchar[]) = 0 or list_contains(?::varchar[], s.label))
  and (len(?::varchar[]) = 0 or list_contains(?::varchar[], s.model))
  and (?::varchar is null or n.title ilike ? or n.summary ilike ?)
order by n.published desc nulls last, s.model
limit 500
"""

DAILY_SQL = """
with returns as (
    select base, day, avg(return_pct) as return_pct
    from marts.daily_market
    group by base, day
)
select coalesce(s.base, r.base) as base, coalesce(s.day, r.day) as day,
       s.news_count, s.mean_score, s.share_positive, s.share_negative, r.return_pct
from marts.news_sentiment_daily as s
full outer join returns as r on r.base = s.base and r.day = s.day
where coalesce(s.base, r.base) = ?
order by day
"""

ALL_DAILY_SQL = """
with returns as (
    select base, day, avg(return_pct) as return_pct
    from marts.daily_market group by base, day
)
select s.base, s.day, s.mean_score, s.news_count, r.return_pct
from marts.news_sentiment_daily as s
inner join returns as r on r.base = s.base and r.day = s.day
where s.mean_score is not null
"""


def serving_notice() -> None:
    """Which model scores the news: VADER (with its held-out accuracy, below the majority
    class, and the command that trains the transformer) or the trained/configured model."""
    status = sentiment_status.serving_status(data.settings())
    if status["kind"] == "vader":
        st.info(f"{status['message']}\n\n{status['hint']}")
    else:
        st.caption(status["message"])


def render() -> None:
    st.title("News & sentiment")
    serving_notice()
    bases = data.bases()
    c1, c2, c3, c4 = st.columns([1, 2, 2, 2])
    asset = c1.selectbox("Asset", ["All", *bases], key="news_asset")
    labels = c2.multiselect("Label", LABELS, key="news_label")
    models = c3.multiselect(
        "Model", data.distinct_values("ml.news_sentiment.model"), key="news_model"
    )
    text = c4.text_input("Search titles and summaries", key="news_text").strip()

    base = None if asset == "All" else asset
    pattern = f"%{text}%" if text else None
    items = data.query(
        ITEMS_SQL.format(confidence=data.news_confidence_sql("s")),
        (base, base, labels, labels, models, models, pattern, pattern, pattern),
    )
    st.subheader(f"News items ({len(items)})")
    if items.empty:
        st.info("No news items match these filters.")
    else:
        # st.dataframe shows every value as plain text: feed content is never rendered as HTML
        st.dataframe(
            items,
            hide_index=True,
            width="stretch",
            height=360,
            column_config={
                "published": st.column_config.DatetimeColumn("Published (UTC)"),
                "score": st.column_config.NumberColumn("Score", format="%.3f"),
                "confidence": st.column_config.NumberColumn(
                    "Confidence",
                    format="%.2f",
                    help=CONFIDENCE_HELP,
                ),
                "title": st.column_config.TextColumn("Title", width="large"),
            },
        )
        st.caption(f"Confidence: {CONFIDENCE_HELP[0].lower()}{CONFIDENCE_HELP[1:]}")

    st.subheader("Daily sentiment vs returns")
    chosen = base or (bases[0] if bases else None)
    if chosen is None:
        return
    if base is None:
        chosen = st.selectbox("Asset for the timeline", bases, key="news_timeline_asset")
    daily = data.query(DAILY_SQL, (chosen,))
    if daily.empty:
        st.caption(f"No daily data for {chosen}.")
    else:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(
            go.Bar(
                x=daily["day"],
                y=daily["return_pct"],
                name="Return % (avg venue)",
                marker_color="#90caf9",
            ),
            secondary_y=False,
        )
        fig.add_trace(
            go.Scatter(
                x=daily["day"],
                y=daily["mean_score"],
                name="Mean sentiment",
                mode="lines+markers",
                line=dict(color="#e65100"),
            ),
            secondary_y=True,
        )
        fig.update_yaxes(title_text="return %", secondary_y=False)
        fig.update_yaxes(title_text="sentiment", range=[-1, 1], secondary_y=True)
        fig.update_layout(
            height=320, margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h")
        )
        st.plotly_chart(fig, width="stretch")

    pooled = data.query(ALL_DAILY_SQL)
    if len(pooled) >= 3:
        corr = pooled["mean_score"].corr(pooled["return_pct"])
        st.caption(
            f"Across all assets: {len(pooled)} asset-days with scored news; Pearson correlation "
            f"of mean sentiment with same-day return = {corr:.2f} (descriptive, not a signal)."
        )
        sfig = px.scatter(
            pooled,
            x="mean_score",
            y="return_pct",
            color="base",
            size="news_count",
            labels={"mean_score": "mean sentiment", "return_pct": "return %"},
        )
        sfig.update_layout(height=300, margin=dict(l=0, r=0, t=10, b=0))
        st.plotly_chart(sfig, width="stretch")
    else:
        st.caption("Too few asset-days with scored news to compare sentiment with returns.")
