"""Data health: row counts, quality scores, candle completeness per market and timeframe,
freshness per source, quarantine, materializations."""

from __future__ import annotations

import streamlit as st

from streamlit_app import data
from streamlit_app.views import service

FRESHNESS_SQL = """
select 'trades' as dataset, exchange, source, count(*) as rows, max(ts) as latest_record,
       max(ingested_at) as last_ingested
from raw.trades group by exchange, source
union all
select 'candles', exchange, source, count(*), max(ts), max(ingested_at)
from raw.candles group by exchange, source
union all
select 'news', publisher, source, count(*), max(published), max(ingested_at)
from raw.news group by publisher, source
order by dataset, exchange
"""

QUARANTINE_SUMMARY_SQL = """
select 'trades' as dataset, "check", reason, count(*) as rows, max(quarantined_at) as latest
from quarantine.trades group by "check", reason
union all
select 'candles', "check", reason, count(*), max(quarantined_at)
from quarantine.candles group by "check", reason
union all
select 'news', "check", reason, count(*), max(quarantined_at)
from quarantine.news group by "check", reason
order by rows desc
"""

# one query per quarantine table: the table name comes from data.QUARANTINE_TABLES (a constant)
SAMPLE_SQL = """
select "check", reason, source, run_id, quarantined_at, payload
from {table}
where (?::varchar is null or "check" = ?)
order by quarantined_at desc
limit 20
"""


def render() -> None:
    st.title("Data health")
    service.render_section()  # the service: components, jobs, freshness, stream, checks, disk
    quality = data.quality_scores()
    counts = data.table_counts()

    c1, c2, c3 = st.columns(3)
    overall = data.overall_quality()
    c1.metric("Quality score", "—" if overall is None else f"{overall:.2f} %")
    c2.metric("Quarantined records", int(quality["quarantined"].sum()) if len(quality) else 0)
    c3.metric("Empty or missing tables", int((counts["status"] != "ok").sum()))

    left, right = st.columns(2)
    with left:
        st.subheader("Row counts")
        st.dataframe(counts, hide_index=True, width="stretch", height=420)
    with right:
        st.subheader("Quality by dataset")
        st.dataframe(
            quality,
            hide_index=True,
            width="stretch",
            column_config={
                "quality_pct": st.column_config.NumberColumn("Quality %", format="%.3f")
            },
        )
        st.subheader("Last materializations")
        mats = data.last_materializations()
        if mats.empty:
            st.caption("No Dagster materializations recorded in this home.")
        else:
            st.dataframe(mats, hide_index=True, width="stretch", height=260)

    render_completeness()

    st.subheader("Freshness per source")
    st.dataframe(data.query(FRESHNESS_SQL), hide_index=True, width="stretch")

    st.subheader("Quarantine")
    summary = data.query(QUARANTINE_SUMMARY_SQL)
    if summary.empty:
        st.success("No record has been quarantined: every received record passed the checks.")
        return
    st.dataframe(summary, hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    dataset = c1.selectbox("Samples from", list(data.QUARANTINE_TABLES), key="health_dataset")
    checks = summary.loc[summary["dataset"] == dataset, "check"].dropna().unique().tolist()
    check = c2.selectbox("Check", ["All", *checks], key="health_check")
    chosen = None if check == "All" else check
    sql = SAMPLE_SQL.format(table=data.QUARANTINE_TABLES[dataset])
    samples = data.query(sql, (chosen, chosen))
    if samples.empty:
        st.caption("No quarantined samples for this selection.")
    else:
        st.dataframe(samples, hide_index=True, width="stretch")


COMPLETENESS_HELP = (
    "Bars expected between each series' first and last bar, and what became of them: "
    "**missing** (no trades, no exchange candle: never filled with made-up prices), "
    "**filled** (a minute without clean trades took the exchange's candle), **maintenance** "
    "(a run of flat zero-volume bars), **implausible** (broken prices), **duplicates** "
    "(exchange candles delivered twice with different values). Maintenance and implausible "
    "bars are left out of roll-ups, indicators and returns; indicators restart after a gap "
    "(**indicator gap rows**: rows still warming up after one)."
)


def render_completeness() -> None:
    st.subheader("Completeness per market and timeframe")
    table = data.candle_completeness()
    if table is None:
        st.caption(
            "The candle completeness table is not in this warehouse yet: run `make demo` "
            "(or `sentinance demo --full-refresh` for a warehouse built by an older version)."
        )
        return
    if table.empty:
        st.caption("No candles yet: nothing to measure.")
        return
    flagged = table["maintenance_bars"] + table["implausible_bars"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Series (market x timeframe)", len(table))
    c2.metric("Missing bars", int(table["missing_bars"].sum()))
    c3.metric("Flagged bars", int(flagged.sum()), help="maintenance + implausible")
    c4.metric("Filled from exchange", int(table["filled_bars"].sum()))
    timeframes = ["All", *dict.fromkeys(table["timeframe"])]
    choice = st.selectbox("Timeframe", timeframes, key="health_completeness_timeframe")
    shown = table if choice == "All" else table[table["timeframe"] == choice]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            "completeness_pct": st.column_config.ProgressColumn(
                "Complete %", min_value=0.0, max_value=100.0, format="%.2f"
            ),
            "first_bar_ts": st.column_config.DatetimeColumn("First bar"),
            "last_bar_ts": st.column_config.DatetimeColumn("Last bar"),
        },
    )
    st.caption(COMPLETENESS_HELP)
