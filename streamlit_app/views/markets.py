"""Markets: every asset with price, 24h change, volume, spread, sentiment and latest alert."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from streamlit_app import data

OVERVIEW_SQL = """
with latest_alert as (
    select split_part(symbol, '/', 1) as base, type, severity, event_time, message
    from alerts.alert_feed
    qualify row_number() over (
        partition by split_part(symbol, '/', 1) order by event_time desc, alert_id
    ) = 1
)
select
    o.base,
    o.last_price_usd,
    o.change_24h_pct,
    o.volume_24h_usd,
    o.max_abs_spread_pct_24h,
    o.sentiment_mean_score,
    o.sentiment_news_count,
    o.venue_count,
    o.as_of,
    a.type as latest_alert,
    a.severity as alert_severity,
    a.event_time as alert_time
from marts.asset_overview as o
left join latest_alert as a on a.base = o.base
order by o.volume_24h_usd desc nulls last, o.base
"""

MARKETS_SQL = """
select exchange, symbol, day, close, return_pct, volume, quote_volume, trade_count
from marts.daily_market
qualify row_number() over (partition by exchange, symbol order by day desc) = 1
order by symbol, exchange
"""

FRESHNESS_SQL = """
select
    (select max(ts) from marts.candles) as last_candle,  -- any timeframe: hourly-only too
    (select max(ingested_at) from raw.trades) as last_trade_ingest,
    (select max(ingested_at) from raw.news) as last_news_ingest,
    (select max(detected_at) from alerts.alert_feed) as last_alert
"""


def _age(ts: pd.Timestamp | None) -> str:
    if ts is None or pd.isna(ts):
        return "never"
    delta = pd.Timestamp.now(tz="UTC") - pd.Timestamp(ts)
    seconds = max(delta.total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def render() -> None:
    st.title("Markets")
    overview = data.query(OVERVIEW_SQL)
    fresh = data.query(FRESHNESS_SQL).iloc[0]
    quality = data.overall_quality()

    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Assets", len(overview))
    as_of = fresh["last_candle"]
    c2.metric(
        "Latest candle (UTC)",
        "—" if pd.isna(as_of) else pd.Timestamp(as_of).strftime("%Y-%m-%d %H:%M"),
        help=f"Market data age: {_age(as_of)}",
    )
    c3.metric("Last ingest", _age(fresh["last_trade_ingest"]))
    c4.metric(
        "Quality score",
        "—" if quality is None else f"{quality:.2f} %",
        help="Share of received records that passed the ingest checks.",
    )

    if overview.empty:
        st.info("No asset overview yet: the marts have not been built.")
        return

    st.subheader("Assets")
    st.dataframe(
        overview,
        hide_index=True,
        width="stretch",
        column_config={
            "base": "Asset",
            "last_price_usd": st.column_config.NumberColumn("Price (USD)", format="%.4f"),
            "change_24h_pct": st.column_config.NumberColumn("24h change %", format="%.2f"),
            "volume_24h_usd": st.column_config.NumberColumn("24h volume (USD)", format="%.0f"),
            "max_abs_spread_pct_24h": st.column_config.NumberColumn(
                "Max venue spread %", format="%.4f"
            ),
            "sentiment_mean_score": st.column_config.NumberColumn("Sentiment", format="%.2f"),
            "sentiment_news_count": "News (day)",
            "venue_count": "Venues",
            "as_of": st.column_config.DatetimeColumn("As of (UTC)"),
            "latest_alert": "Latest alert",
            "alert_severity": "Severity",
            "alert_time": st.column_config.DatetimeColumn("Alert time (UTC)"),
        },
    )

    left, right = st.columns(2)
    with left:
        st.subheader("Top movers (24h)")
        movers = overview.dropna(subset=["change_24h_pct"]).copy()
        if movers.empty:
            st.write("No 24h change available.")
        else:
            movers = movers.reindex(
                movers["change_24h_pct"].abs().sort_values(ascending=False).index
            ).head(10)
            movers["direction"] = movers["change_24h_pct"].map(lambda v: "up" if v >= 0 else "down")
            fig = px.bar(
                movers,
                x="base",
                y="change_24h_pct",
                color="direction",
                color_discrete_map={"up": "#2e7d32", "down": "#c62828"},
                labels={"change_24h_pct": "24h change %", "base": "Asset"},
            )
            fig.update_layout(height=320, margin=dict(l=0, r=0, t=10, b=0), showlegend=False)
            st.plotly_chart(fig, width="stretch")
    with right:
        st.subheader("24h volume (USD)")
        fig = px.bar(
            overview,
            x="base",
            y="volume_24h_usd",
            labels={"volume_24h_usd": "USD", "base": "Asset"},
        )
        fig.update_layout(height=320, margin=dict(l=0, r=0, t=10, b=0))
        st.plotly_chart(fig, width="stretch")

    st.subheader("Markets by venue (latest day)")
    st.dataframe(data.query(MARKETS_SQL), hide_index=True, width="stretch")

    st.caption(
        f"Freshness — news ingest: {_age(fresh['last_news_ingest'])}; "
        f"last alert detected: {_age(fresh['last_alert'])}."
    )
