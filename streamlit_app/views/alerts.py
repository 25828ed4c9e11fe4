"""Alerts: a live-refreshing feed with filters, the whale log, spread and volume-spike charts,
the delivery log (what reached people's channels) and the rule-version comparisons.

``?exchange=...&symbol=...`` (the link in every delivered message) preselects the market."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from sentinance_assets.lib.detection.delivery import read_delivery_log
from sentinance_assets.lib.detection.versions import comparisons
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


def _linked(param: str, options: list[str]) -> list[str]:
    """The market a message's link names (``?symbol=BTC/USDT&exchange=binance``), if known."""
    value = st.query_params.get(param)
    return [value] if value in options else []


def _filters() -> tuple[tuple, str]:
    c1, c2, c3, c4, c5 = st.columns(5)
    types = c1.multiselect("Type", data.distinct_values("alerts.alerts.type"), key="al_type")
    symbol_options = data.distinct_values("alerts.alerts.symbol")
    symbols = c2.multiselect(
        "Symbol", symbol_options, default=_linked("symbol", symbol_options), key="al_symbol"
    )
    exchange_options = data.distinct_values("alerts.alerts.exchange")
    exchanges = c3.multiselect(
        "Exchange",
        exchange_options,
        default=_linked("exchange", exchange_options),
        key="al_exchange",
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

    tab_whale, tab_spread, tab_spike, tab_delivery, tab_rules = st.tabs(
        ["Whale log", "Spread tracker", "Volume spikes", "Deliveries", "Rule versions"]
    )
    with tab_delivery:
        _deliveries()
    with tab_rules:
        _rule_versions()
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


STATUS_HELP = (
    "delivered: the channel accepted the message · retried: an attempt failed, another follows "
    "· dead_lettered: given up (see delivery/dead-letter.jsonl) · suppressed: a repeat of a "
    "condition already notified · stale: too old to send · interrupted: the sender stopped "
    "mid-send (not re-sent)"
)


def _deliveries() -> None:
    log = read_delivery_log(data.settings().home).to_pandas()
    if log.empty:
        st.caption(
            "Nothing delivered yet: configure channels (SENTINANCE_ALERT_CHANNELS or the rules "
            "file's [[delivery.channels]], docs/alerts.md)."
        )
        return
    counts = log["status"].value_counts()
    m = st.columns(4)
    for col, status in zip(m, ("delivered", "retried", "dead_lettered", "suppressed"), strict=True):
        col.metric(status.replace("_", " ").capitalize(), int(counts.get(status, 0)))
    st.caption(STATUS_HELP)
    st.dataframe(log, hide_index=True, width="stretch", height=320)


def _rule_versions() -> None:
    found = comparisons(data.settings().lake_dir)
    if not found:
        st.caption(
            "No rule change yet: when batch detection runs with other rules, the new alerts are "
            "written beside the old ones and compared here."
        )
        return
    table = pd.DataFrame(
        [
            {
                "old": c["old_version"],
                "new": c["new_version"],
                "added": c["added"],
                "removed": c["removed"],
                "changed": c["changed"],
                "unchanged": c["unchanged"],
                "days": len(c.get("by_day", {})),
                "file": c["file"],
            }
            for c in found
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
