"""Alerts: a live-refreshing feed with filters, the whale log, spread and volume-spike charts."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from streamlit_app import data

WINDOWS = {"Last hour": 1, "Last 6 hours": 6, "Last 24 hours": 24, "Last 7 days": 168, "All": None}

FEED_SQL = """
with bounds as (select max(event_time) as latest from alerts.alert_feed)
select a.event_time, a.type, a.severity, a.exchange, a.symbol, a.value, a.threshold,
       a.message, a.detected_at, a.alert_id
from alerts.alert_feed as a, bounds
where (len(?::varchar[]) = 0 or list_contains(?::varchar[], a.type))
  and (len(?::varchar[]) = 0 or list_contains(?::varchar[], a.symbol))
  and (len(?::varchar[]) = 0 or list_contains(?::varchar[], a.exchange))
  and (len(?::varchar[]) = 0 or list_contains(?::varchar[], a.severity))
  and (?::bigint is null or a.event_time >= bounds.latest - to_hours(?::bigint))
order by a.event_time desc, a.alert_id
limit 1000
"""

WHALE_SQL = """
select event_time, exchange, symbol, severity, value as trade_usd, threshold, message, details
from alerts.alert_feed where type = 'whale'
order by event_time desc limit 200
"""

SPREAD_SQL = """
select window_start, exchange_a || ' vs ' || exchange_b as pair, spread_pct
from marts.spreads where base = ?
order by window_start desc limit 5000
"""

SPIKE_SQL = """
select event_time, exchange, symbol, severity, value, threshold,
       value / nullif(threshold, 0) as ratio
from alerts.alert_feed where type = 'volume_spike'
order by event_time
"""


def _filters() -> tuple[tuple, str]:
    c1, c2, c3, c4, c5 = st.columns(5)
    types = c1.multiselect("Type", data.distinct_values("alerts.alerts.type"), key="al_type")
    symbols = c2.multiselect(
        "Symbol", data.distinct_values("alerts.alerts.symbol"), key="al_symbol"
    )
    exchanges = c3.multiselect(
        "Exchange", data.distinct_values("alerts.alerts.exchange"), key="al_exchange"
    )
    severities = c4.multiselect(
        "Severity", data.distinct_values("alerts.alerts.severity"), key="al_severity"
    )
    window = c5.selectbox("Time", list(WINDOWS), index=len(WINDOWS) - 1, key="al_window")
    hours = WINDOWS[window]
    params = (
        types,
        types,
        symbols,
        symbols,
        exchanges,
        exchanges,
        severities,
        severities,
        hours,
        hours,
    )
    return params, window


def _feed(params: tuple, window: str) -> None:
    feed = data.query_live(FEED_SQL, params)
    m1, m2, m3 = st.columns(3)
    m1.metric("Alerts shown", len(feed))
    m2.metric("Critical", int((feed["severity"] == "critical").sum()) if len(feed) else 0)
    m3.metric(
        "Latest event (UTC)",
        "—"
        if feed.empty
        else pd.Timestamp(feed["event_time"].iloc[0]).strftime("%Y-%m-%d %H:%M:%S"),
    )
    if feed.empty:
        st.info("No alerts match these filters.")
        return
    st.caption(f"Time window relative to the latest alert: {window}. Newest first.")
    st.dataframe(
        feed,
        hide_index=True,
        width="stretch",
        height=380,
        column_config={
            "event_time": st.column_config.DatetimeColumn("Event (UTC)"),
            "detected_at": st.column_config.DatetimeColumn("Detected (UTC)"),
            "value": st.column_config.NumberColumn(format="%.4f"),
            "threshold": st.column_config.NumberColumn(format="%.4f"),
        },
    )


def render() -> None:
    st.title("Alerts")
    live = st.toggle("Live refresh (every 5 s)", value=True, key="al_live")
    params, window = _filters()

    if live:
        st.fragment(run_every=5)(_feed)(params, window)
    else:
        _feed(params, window)

    tab_whale, tab_spread, tab_spike = st.tabs(["Whale log", "Spread tracker", "Volume spikes"])
    with tab_whale:
        whales = data.query(WHALE_SQL)
        if whales.empty:
            st.caption("No whale trades detected.")
        else:
            st.dataframe(whales, hide_index=True, width="stretch")
    with tab_spread:
        bases = data.bases()
        base = st.selectbox("Asset", bases, key="al_spread_base")
        spreads = data.query(SPREAD_SQL, (base,))
        if spreads.empty:
            st.caption(f"No cross-venue spreads for {base} (it trades on one venue only?).")
        else:
            fig = px.line(
                spreads.sort_values("window_start"),
                x="window_start",
                y="spread_pct",
                color="pair",
                labels={"spread_pct": "spread %", "window_start": ""},
            )
            fig.update_layout(height=340, margin=dict(l=0, r=0, t=10, b=0))
            st.plotly_chart(fig, width="stretch")
    with tab_spike:
        spikes = data.query(SPIKE_SQL)
        if spikes.empty:
            st.caption("No volume spikes detected.")
        else:
            fig = px.scatter(
                spikes,
                x="event_time",
                y="ratio",
                color="symbol",
                symbol="exchange",
                hover_data=["severity", "value", "threshold"],
                labels={"ratio": "volume / threshold", "event_time": ""},
            )
            fig.update_layout(height=340, margin=dict(l=0, r=0, t=10, b=0))
            st.plotly_chart(fig, width="stretch")
