"""The service's own health in the app: the global "live / stale since ..." indicator in every
page's header, and the System health section of the Data health page (the same report as
``sentinance status``: components, jobs, freshness, watch loop, failed checks, disk).

Read only: supervisord's status socket, the Dagster instance's run and event storage, the
published warehouse and the home's files; nothing here writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from sentinance_assets.lib.operations.status import collect, live_indicator
from streamlit_app import data


@st.cache_data(ttl=10, show_spinner=False)
def indicator() -> dict[str, Any]:
    return live_indicator(data.settings())


@st.cache_data(ttl=15, show_spinner=False)
def report() -> dict[str, Any]:
    return collect(data.settings())


def _ago(iso: str | None) -> str:
    if not iso:
        return "never"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def indicator_text(state: dict[str, Any]) -> str:
    """One line: ``:green[● live]``, ``:red[● stale since ...]`` or the offline source."""
    refreshed = f"marts refreshed {_ago(state.get('refreshed_at'))}"
    if state["state"] == "live":
        return f":green[● live] · {refreshed}"
    if state["state"] == "stale":
        since = state.get("since")
        when = f"since {since.replace('T', ' ').replace('+00:00', ' UTC')}" if since else ""
        return f":red[● stale {when}] · {refreshed}".replace("  ", " ")
    return f":gray[● offline ({state.get('source')})] · {refreshed}"


def render_indicator() -> None:
    """The header line every page shows."""
    try:
        st.caption(indicator_text(indicator()))
    except Exception:  # noqa: BLE001 - the indicator must never break a page
        st.caption(":gray[● status unknown]")


def render_section() -> None:
    """System health: components, jobs, freshness, watch loop, failed checks, disk."""
    st.subheader("System health")
    try:
        r = report()
    except Exception as exc:  # noqa: BLE001 - say why, never a stack trace
        st.warning(f"The service status could not be read: {type(exc).__name__}")
        return
    svc = r["service"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Service", "serving" if svc.get("serving") else "stopped")
    up = sum(1 for c in r["components"] if c["up"])
    c2.metric("Components up", f"{up} / {len(r['components'])}")
    watch = r.get("watch") or {}
    lag = watch.get("lag_s")
    c3.metric("Stream lag", "—" if lag is None else f"{lag:,.1f} s")
    rate = watch.get("trades_per_s")
    c4.metric("Stream throughput", "—" if rate is None else f"{rate:,.1f} trades/s")
    left, right = st.columns(2)
    with left:
        st.caption("Components")
        st.dataframe(
            pd.DataFrame(r["components"])[["name", "state", "uptime_s", "restarts", "crashes"]]
            if r["components"]
            else pd.DataFrame(),
            hide_index=True,
            width="stretch",
        )
        st.caption("Jobs (last successful run)")
        st.dataframe(pd.DataFrame(r["jobs"]), hide_index=True, width="stretch")
    with right:
        st.caption("Freshness (seconds since the last materialization, and the limit)")
        st.dataframe(pd.DataFrame(r["freshness"]), hide_index=True, width="stretch")
        failed = r["failed_checks"]
        if failed:
            st.caption("Failed checks")
            st.dataframe(pd.DataFrame(failed), hide_index=True, width="stretch")
        else:
            st.caption("Failed checks: none")
    disk = pd.DataFrame(r["disk"])
    if not disk.empty:
        disk["MB"] = (disk["bytes"] / 1e6).round(1)
        st.caption("Disk per zone")
        st.dataframe(disk[["zone", "MB"]], hide_index=True, width="stretch")
