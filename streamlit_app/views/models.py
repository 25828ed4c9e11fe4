"""Models: champion vs challenger, the serving forecasters and their skill against baselines,
evaluation against baselines, drift, training times."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from sentinance_assets.lib import sentiment_status
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


# The latest forecaster evaluation (newest run_id), pooled over symbols ("ALL").
LATEST_EVAL_SQL = """
with latest as (
    select run_id from ml.forecast_evaluation
    order by evaluated_at desc, run_id desc limit 1
)
select e.run_id, e.model_version, e.horizon, e.model, e.metric, e.value, e.n, e.evaluated_at
from ml.forecast_evaluation as e join latest using (run_id)
where e.symbol = 'ALL'
"""

# What serves now: every market's latest forecast origin, one row per target and horizon.
SERVING_SQL = """
select symbol, exchange, origin_ts, target, horizon, coalesce(model, 'lstm') as model,
       model_version, reason, coverage_80, coverage_95, created_at
from ml.forecasts
qualify origin_ts = max(origin_ts) over (partition by symbol, exchange)
    and row_number() over (
        partition by symbol, exchange, origin_ts, target, horizon order by created_at desc
    ) = 1
order by symbol, exchange, target, try_cast(rtrim(horizon, 'h') as integer), horizon
"""

# Evaluation metrics per target: a realized-volatility metric is the return metric's name with
# a ``vol_`` prefix (``vol_qlike``, ``vol_skill:har``); below, names are without the prefix.
TARGETS = {"log_return": "", "realized_vol": "vol_"}
LOSS = {"log_return": "rmse", "realized_vol": "qlike"}  # the loss each target is judged on
INTERVAL_METRICS = ("coverage_80", "coverage_95", "width_80", "width_95")


def _horizon_order(h: object) -> tuple[int, str]:
    text = str(h)
    return (int(text[:-1]) if text.endswith("h") and text[:-1].isdigit() else 10**6, text)


def metric_target(metric: str) -> str:
    """The target a metric of ``ml.forecast_evaluation`` measures (``vol_*``: the volatility)."""
    return "realized_vol" if metric.startswith("vol_") else "log_return"


def loss_table(ev: pd.DataFrame) -> pd.DataFrame:
    """Per target, horizon and model: the loss (rmse / qlike) and its n, interval coverage
    (percent) and width (the target's log units), and for returns the net basis points per
    trade of sign trading."""
    rows = []
    for (target, horizon, model), g in ev.groupby(["target", "horizon", "model"]):
        by = dict(zip(g["name"], g["value"], strict=False))
        loss = LOSS[str(target)]
        if loss not in by and not any(m in by for m in INTERVAL_METRICS):
            continue  # e.g. the lstm_vs_champion rows: skill only
        n = g.loc[g["name"] == loss, "n"]
        row = {
            "target": target,
            "horizon": horizon,
            "model": model,
            "loss": loss,
            "value": by.get(loss),
            "n": int(n.iloc[0]) if len(n) and pd.notna(n.iloc[0]) else None,
        }
        for m in INTERVAL_METRICS:
            v = by.get(m)
            row[m] = 100 * v if m.startswith("coverage") and v is not None else v
        row["net_bp"] = by.get("net_bp")
        rows.append(row)
    columns = ["target", "horizon", "model", "loss", "value", "n", *INTERVAL_METRICS, "net_bp"]
    return _sorted(pd.DataFrame(rows, columns=columns))


def skill_table(ev: pd.DataFrame, serving: dict[tuple[str, str], set[str]]) -> pd.DataFrame:
    """Skill of the LSTM and of the serving model against every other candidate, per target
    and horizon: ``skill`` (> 0: better than that baseline) and the Diebold-Mariano p-value."""
    rows = []
    for (target, horizon, model), g in ev.groupby(["target", "horizon", "model"]):
        serves = str(model) in serving.get((str(target), str(horizon)), set())
        if model != "lstm" and not serves:
            continue
        by = dict(zip(g["name"], g["value"], strict=False))
        n = dict(zip(g["name"], g["n"], strict=False))
        role = " · ".join(r for r, yes in (("serving", serves), ("lstm", model == "lstm")) if yes)
        for name, skill in by.items():
            if not name.startswith("skill:"):
                continue
            against = name.removeprefix("skill:")
            rows.append(
                {
                    "target": target,
                    "horizon": horizon,
                    "model": model,
                    "role": role,
                    "against": against,
                    "skill": skill,
                    "dm_pvalue": by.get(f"dm_pvalue:{against}"),
                    "n": n.get(name),
                }
            )
    out = pd.DataFrame(
        rows,
        columns=["target", "horizon", "model", "role", "against", "skill", "dm_pvalue", "n"],
    )
    return _sorted(out, "against")


def _sorted(df: pd.DataFrame, *extra: str) -> pd.DataFrame:
    if df.empty:
        return df
    return df.sort_values(
        ["target", "horizon", "model", *extra],
        key=lambda s: s.map(_horizon_order) if s.name == "horizon" else s,
    ).reset_index(drop=True)


def _skill_section() -> None:
    st.subheader("Serving forecasters: skill against baselines")
    ev = data.query(LATEST_EVAL_SQL)
    serving_now = data.query(SERVING_SQL)
    if ev.empty:
        st.caption("No forecaster evaluation yet.")
    else:
        ev = ev.assign(target=ev["metric"].map(metric_target))
        ev = ev.assign(
            name=[
                m.removeprefix(TARGETS[t]) for m, t in zip(ev["metric"], ev["target"], strict=True)
            ]
        )
        first = ev.iloc[0]
        version = str(first["model_version"])
        st.caption(
            f"Latest evaluation: run {first['run_id']}, version {version}, "
            f"{str(ev['evaluated_at'].max())[:16]} UTC; walk-forward hold-out pooled over "
            "symbols. Loss: RMSE of the log return, QLIKE of the realized volatility. Skill = "
            "1 − loss(model) / loss(baseline) (QLIKE: the mean normalized ratio); > 0 beats the "
            "baseline. DM p: two-sided Diebold-Mariano test of equal loss. Coverage: share of "
            "hold-out outcomes inside the interval (percent); width in log units."
        )
        mine = serving_now[serving_now["model_version"].astype(str) == version]
        source = mine if not mine.empty else serving_now
        serving: dict[tuple[str, str], set[str]] = {}
        for r in source.itertuples():
            serving.setdefault((str(r.target), str(r.horizon)), set()).add(str(r.model))
        skills = skill_table(ev, serving)
        if skills.empty:
            st.caption("This run measured no skill against baselines.")
        else:
            st.dataframe(
                skills,
                hide_index=True,
                width="stretch",
                column_config={
                    "skill": st.column_config.NumberColumn(format="%+.3f"),
                    "dm_pvalue": st.column_config.NumberColumn("DM p", format="%.3f"),
                },
            )
        st.dataframe(
            loss_table(ev),
            hide_index=True,
            width="stretch",
            column_config={
                "value": st.column_config.NumberColumn(format="%.5g"),
                "coverage_80": st.column_config.NumberColumn(format="%.0f %%"),
                "coverage_95": st.column_config.NumberColumn(format="%.0f %%"),
                "width_80": st.column_config.NumberColumn(format="%.4g"),
                "width_95": st.column_config.NumberColumn(format="%.4g"),
            },
        )
    st.markdown("**Serving now**")
    if serving_now.empty:
        st.caption("No forecasts written yet.")
        return
    st.dataframe(
        serving_now.assign(
            coverage_80=100 * serving_now["coverage_80"],
            coverage_95=100 * serving_now["coverage_95"],
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "coverage_80": st.column_config.NumberColumn(format="%.0f %%"),
            "coverage_95": st.column_config.NumberColumn(format="%.0f %%"),
            "origin_ts": st.column_config.DatetimeColumn("Origin (UTC)"),
        },
    )


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


def _sentiment_metrics_section() -> None:
    """The sentiment transformer's held-out metrics per registered version, next to VADER on
    the same rows: accuracy, macro-F1, McNemar's test vs VADER, temperature and ECE."""
    st.subheader("Sentiment classifier: held-out test vs VADER")
    status = sentiment_status.serving_status(data.settings())
    rows = sentiment_status.sentiment_versions(data.settings().mlflow_db)
    if not rows:
        st.info(f"{status['message']}\n\n{status.get('hint', '')}".strip())
        return
    st.caption(
        f"{status['message']} Per registered version, on its untouched test split: the "
        "transformer's accuracy and macro-F1, VADER's on the same rows, McNemar's test "
        "(b = rows only the transformer gets right, c = only VADER; exact two-sided p), the "
        "temperature fitted on validation and the expected calibration error (15 confidence "
        "bins) before and after it. Empty: not recorded by that version's run."
    )
    fmt = st.column_config.NumberColumn
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={
            "created_at": st.column_config.DatetimeColumn("Trained (UTC)"),
            **{
                c: fmt(format="%.3f")
                for c in (
                    "test_accuracy",
                    "test_macro_f1",
                    "vader_accuracy",
                    "vader_macro_f1",
                    "temperature",
                    "ece_before",
                    "ece_after",
                )
            },
            "mcnemar_b": fmt("McNemar b", format="%d"),
            "mcnemar_c": fmt("McNemar c", format="%d"),
            "mcnemar_p": fmt("McNemar p", format="%.2g"),
        },
    )


def render() -> None:
    st.title("Models")
    _registry_section()
    _skill_section()
    _evaluation_section()
    st.subheader("Forecast runs")
    runs = data.query(FORECAST_RUNS_SQL)
    if runs.empty:
        st.caption("No forecasts written yet.")
    else:
        st.dataframe(runs, hide_index=True, width="stretch")
    _drift_section()
    _sentiment_metrics_section()
    st.subheader("Sentiment models")
    sm = data.query(SENTIMENT_MODELS_SQL)
    if sm.empty:
        st.caption("No news has been scored yet.")
    else:
        st.dataframe(sm, hide_index=True, width="stretch")
