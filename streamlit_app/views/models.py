"""Models: champion vs challenger, evaluation against baselines, drift, training times."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from streamlit_app import data

EVAL_SQL = """
select model_version, model, symbol, horizon, metric, value, n, evaluated_at, run_id
from ml.forecast_evaluation
order by evaluated_at desc, model_version, symbol, horizon, metric, model
limit 5000
"""

VERSIONS_SQL = """
select model_version, min(evaluated_at) as first_evaluated, max(evaluated_at) as last_evaluated,
       count(distinct run_id) as runs
from ml.forecast_evaluation
where model = 'lstm'
group by model_version
order by last_evaluated desc
"""

DRIFT_SQL = """
select checked_at, model, share_drifted, drifted_features, n_features, dataset_drift,
       reference_rows, current_rows, run_id
from ml.drift order by checked_at desc limit 500
"""

SENTIMENT_MODELS_SQL = """
select model, model_version, count(*) as items_scored, min(scored_at) as first_scored,
       max(scored_at) as last_scored,
       avg(case when label = 'positive' then 1 else 0 end) as share_positive,
       avg(case when label = 'negative' then 1 else 0 end) as share_negative
from ml.news_sentiment
group by model, model_version
order by last_scored desc
"""

FORECAST_RUNS_SQL = """
select model_version, count(*) as forecasts, max(created_at) as last_forecast,
       max(origin_ts) as latest_origin
from ml.forecasts group by model_version order by last_forecast desc
"""


def _registry_section() -> None:
    reg = data.model_registry()
    st.subheader("Registry: champion and challengers")
    if reg.empty:
        st.caption("No registered model versions yet (the MLflow registry is empty or absent).")
        return
    reg = reg.assign(
        role=reg["aliases"]
        .fillna("")
        .map(lambda a: "champion" if "champion" in a.split(",") else "challenger")
    )
    st.dataframe(
        reg[["name", "version", "role", "aliases", "created_at", "run_id"]],
        hide_index=True,
        width="stretch",
        column_config={"created_at": st.column_config.DatetimeColumn("Trained (UTC)")},
    )


def _evaluation_section() -> None:
    st.subheader("Forecast evaluation against baselines")
    ev = data.query(EVAL_SQL)
    if ev.empty:
        st.info(
            "No forecast evaluations yet: the forecaster has not been trained in this "
            "warehouse. Materialize the ML assets (`make demo`) and reload."
        )
        return
    versions = data.query(VERSIONS_SQL)
    st.dataframe(versions, hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    metric = c1.selectbox("Metric", sorted(ev["metric"].unique()), key="models_metric")
    version = c2.selectbox(
        "Model version", sorted(ev["model_version"].unique(), reverse=True), key="models_version"
    )
    sel = ev[(ev["metric"] == metric) & (ev["model_version"] == version)]
    pivot = sel.pivot_table(
        index=["symbol", "horizon"], columns="model", values="value", aggfunc="mean"
    ).reset_index()
    st.dataframe(pivot, hide_index=True, width="stretch")
    if not sel.empty:
        fig = px.bar(
            sel,
            x="horizon",
            y="value",
            color="model",
            barmode="group",
            facet_col="symbol",
            labels={"value": metric},
        )
        fig.update_layout(height=320, margin=dict(l=0, r=0, t=30, b=0))
        st.plotly_chart(fig, width="stretch")


def _drift_section() -> None:
    st.subheader("Drift")
    drift = data.query(DRIFT_SQL)
    if drift.empty:
        st.caption("No drift checks have run yet.")
        return
    last = drift.iloc[0]
    m1, m2, m3 = st.columns(3)
    m1.metric("Last check (UTC)", str(last["checked_at"])[:19])
    m2.metric("Share of features drifted", f"{100 * float(last['share_drifted']):.0f} %")
    m3.metric("Dataset drift", "yes" if bool(last["dataset_drift"]) else "no")
    fig = px.line(
        drift.sort_values("checked_at"),
        x="checked_at",
        y="share_drifted",
        color="model",
        markers=True,
        labels={"share_drifted": "share drifted"},
    )
    fig.update_layout(height=280, margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig, width="stretch")
    st.dataframe(drift, hide_index=True, width="stretch")


def render() -> None:
    st.title("Models")
    _registry_section()
    _evaluation_section()
    st.subheader("Forecast runs")
    runs = data.query(FORECAST_RUNS_SQL)
    if runs.empty:
        st.caption("No forecasts written yet.")
    else:
        st.dataframe(runs, hide_index=True, width="stretch")
    _drift_section()
    st.subheader("Sentiment models")
    sm = data.query(SENTIMENT_MODELS_SQL)
    if sm.empty:
        st.caption("No news has been scored yet.")
    else:
        st.dataframe(sm, hide_index=True, width="stretch")
