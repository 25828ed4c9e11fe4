"""Backtests: the last ``sentinance backtest`` reports side by side, with charts.

Reads the JSON reports saved under ``<home>/backtests/`` (read side only: the page never runs a
backtest). Pick reports; each rule set of each report becomes one column of the comparison:
alerts and messages per day, precision/recall and delay where labels were given, and the
forward-move lift after alerts (is the alert informative?).
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from sentinance_assets.lib.detection.backtest import load_reports
from streamlit_app import data

HOW_TO = (
    "No backtest yet. Run one, e.g.\n\n"
    "```\nsentinance backtest --trades trades.parquet --rules a.toml --rules b.toml "
    "--labels events.csv\n```\n\nIt is saved for this page (see docs/alerts.md)."
)


def _label(report: dict) -> str:
    names = " vs ".join(f"{rs['name']} ({rs['version']})" for rs in report["rule_sets"])
    return f"{report['created'][:16].replace('T', ' ')} · {names}"


def _rows(reports: list[dict]) -> pd.DataFrame:
    rows = []
    for rep in reports:
        for rs in rep["rule_sets"]:
            column = f"{rs['name']} · {rep['created'][5:16].replace('T', ' ')}"
            for r in rs["by_type"]:
                row = {
                    "run": column,
                    "type": r["type"],
                    "alerts": r["alerts"],
                    "alerts/day": r["per_day"],
                    "per market/day": r["per_market_day"],
                    "messages": r["messages"],
                    "folded": r["suppressed"],
                    "precision": r["precision"],
                    "recall": r["recall"],
                    "delay p50 (s)": r.get("delay_median_s"),
                }
                for h, f in r["forward"].items():
                    row[f"|ret| lift {h}m"] = f.get("lift_abs_ret")
                    row[f"vol lift {h}m"] = f.get("lift_vol")
                    row[f"p {h}m"] = f.get("p_value")
                rows.append(row)
    return pd.DataFrame(rows)


def render() -> None:
    st.title("Backtests")
    reports = load_reports(data.settings().home, limit=30)
    if not reports:
        st.info(HOW_TO)
        return
    labels = {_label(r): r for r in reports}
    chosen = st.multiselect(
        "Reports (newest first)", list(labels), default=list(labels)[:2], key="bt_reports"
    )
    picked = [labels[c] for c in chosen]
    if not picked:
        st.caption("Pick at least one report.")
        return
    cols = st.columns(sum(len(r["rule_sets"]) for r in picked))
    i = 0
    for rep in picked:
        inp = rep["input"]
        for rs in rep["rule_sets"]:
            t = rs["totals"]
            with cols[i]:
                st.subheader(rs["name"])
                st.caption(
                    f"version {rs['version']} · {inp['markets']} markets, {inp['days']:.2f} days"
                )
                st.metric("Alerts per day", f"{t['alerts_per_day']:.1f}")
                st.metric("Messages per day (after grouping)", f"{t['messages_per_day']:.1f}")
                st.metric("Alerts per market and day", f"{t['alerts_per_market_day'] or 0:.2f}")
            i += 1
    table = _rows(picked)
    st.dataframe(table, hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    with c1:
        fig = px.bar(
            table,
            x="type",
            y="alerts/day",
            color="run",
            barmode="group",
            title="Alerts per day by type",
        )
        fig.update_layout(height=340, margin=dict(l=0, r=0, t=40, b=0))
        st.plotly_chart(fig, width="stretch")
    with c2:
        lifts = [c for c in table.columns if c.startswith("|ret| lift")]
        long = table.melt(id_vars=["run", "type"], value_vars=lifts, var_name="horizon")
        long["horizon"] = long["horizon"].str.removeprefix("|ret| lift ")
        fig = px.bar(
            long.dropna(),
            x="type",
            y="value",
            color="run",
            barmode="group",
            facet_col="horizon",
            title="Move after alerts / usual move (1 = uninformative)",
        )
        fig.add_hline(y=1.0, line_dash="dot")
        fig.update_layout(height=340, margin=dict(l=0, r=0, t=60, b=0))
        st.plotly_chart(fig, width="stretch")
    for d in [d for rep in picked for d in rep.get("diff", [])]:
        st.subheader(f"{d['b']} against {d['a']}")
        st.caption(
            f"messages per day {d['messages_per_day_a']:.1f} → {d['messages_per_day_b']:.1f}"
        )
        st.dataframe(pd.DataFrame(d["by_type"]), hide_index=True, width="stretch")
