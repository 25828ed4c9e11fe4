"""Asset: one asset in one screen — candles, indicators, forecast, sentiment, alerts, news."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from streamlit_app import data

TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d"]
# bars shown per timeframe (about three days of 1m is too many points for a browser chart)
BAR_LIMIT = {"1m": 720, "5m": 600, "15m": 500, "1h": 500, "4h": 400, "1d": 365}
OVERLAYS = {
    "SMA 20": "sma_20",
    "SMA 50": "sma_50",
    "EMA 20": "ema_20",
    "EMA 50": "ema_50",
}
HORIZON_HOURS = {"1h": 1, "4h": 4, "24h": 24}

CANDLES_SQL = """
select * from (
    select c.ts, c.open, c.high, c.low, c.close, c.volume,
           i.sma_20, i.sma_50, i.ema_20, i.ema_50, i.bb_upper, i.bb_middle, i.bb_lower,
           i.rsi_14, i.macd, i.macd_signal, i.macd_hist
    from marts.candles as c
    left join marts.indicators as i
        on i.exchange = c.exchange and i.symbol = c.symbol
        and i.timeframe = c.timeframe and i.ts = c.ts
    where c.exchange = ? and c.symbol = ? and c.timeframe = ?
    order by c.ts desc
    limit ?
) order by ts
"""

ALERTS_SQL = """
select event_time, type, severity, exchange, value, threshold, message
from alerts.alert_feed
where symbol = ? and event_time between ? and ?
order by event_time
"""

FORECAST_SQL = """
with latest as (
    select max(origin_ts) as origin_ts from ml.forecasts
    where symbol = ? and exchange = ? and target = 'log_return'
)
select f.origin_ts, f.horizon, f.target, f.prediction, f.model_version, f.created_at
from ml.forecasts as f, latest
where f.symbol = ? and f.exchange = ? and f.origin_ts = latest.origin_ts
  and f.target = 'log_return'
qualify row_number() over (partition by f.horizon order by f.created_at desc) = 1
"""

FORECAST_ERROR_SQL = """
select horizon, value as rmse
from ml.forecast_evaluation
where model_version = ? and metric = 'rmse' and model = 'lstm'
  and (symbol = ? or symbol = 'ALL')
qualify row_number() over (partition by horizon order by evaluated_at desc) = 1
"""

ORIGIN_CLOSE_SQL = """
select close from marts.candles
where exchange = ? and symbol = ? and timeframe in ('1m', '1h') and ts <= ?
order by ts desc, timeframe = '1m' desc limit 1  -- 1m where the market has it, else hourly
"""

SENTIMENT_SQL = """
select day, news_count, scored_count, mean_score, share_positive, share_negative
from marts.news_sentiment_daily where base = ? order by day
"""

NEWS_SQL = """
select n.published, n.publisher, n.title, n.summary, s.label, s.score, s.model, s.model_version
from staging.stg_news as n
left join (
    select * from ml.news_sentiment
    qualify row_number() over (partition by news_id order by scored_at desc) = 1
) as s on s.news_id = n.news_id
where list_contains(string_split(coalesce(n.assets, ''), ','), ?)
order by n.published desc nulls last
limit 25
"""


def _price_figure(
    df: pd.DataFrame,
    overlays: list[str],
    bollinger: bool,
    show_rsi: bool,
    show_macd: bool,
    alerts: pd.DataFrame,
    forecast: pd.DataFrame | None,
) -> go.Figure:
    rows = 2 + int(show_rsi) + int(show_macd)
    heights = [0.55, 0.15] + [0.15] * (rows - 2)
    titles = (
        ["Price", "Volume"] + (["RSI 14"] if show_rsi else []) + (["MACD"] if show_macd else [])
    )
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        row_heights=heights,
        subplot_titles=titles,
    )
    fig.add_trace(
        go.Candlestick(
            x=df["ts"],
            open=df["open"],
            high=df["high"],
            low=df["low"],
            close=df["close"],
            name="OHLC",
        ),
        row=1,
        col=1,
    )
    for label in overlays:
        col = OVERLAYS[label]
        fig.add_trace(
            go.Scatter(x=df["ts"], y=df[col], name=label, mode="lines", line=dict(width=1)),
            row=1,
            col=1,
        )
    if bollinger:
        fig.add_trace(
            go.Scatter(
                x=df["ts"],
                y=df["bb_upper"],
                name="BB upper",
                mode="lines",
                line=dict(width=1, dash="dot", color="gray"),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=df["ts"],
                y=df["bb_lower"],
                name="BB lower",
                mode="lines",
                line=dict(width=1, dash="dot", color="gray"),
                fill="tonexty",
                fillcolor="rgba(128,128,128,0.08)",
            ),
            row=1,
            col=1,
        )
    if not alerts.empty:
        placed = pd.merge_asof(
            alerts.sort_values("event_time"),
            df[["ts", "high"]].sort_values("ts"),
            left_on="event_time",
            right_on="ts",
            direction="backward",
        ).dropna(subset=["high"])
        if not placed.empty:
            fig.add_trace(
                go.Scatter(
                    x=placed["event_time"],
                    y=placed["high"] * 1.002,
                    mode="markers",
                    name="Alerts",
                    marker=dict(symbol="triangle-down", size=10, color="#d84315"),
                    text=placed["type"] + " (" + placed["severity"] + ")",
                    hovertemplate="%{x}<br>%{text}<extra></extra>",
                ),
                row=1,
                col=1,
            )
    if forecast is not None and not forecast.empty:
        fig.add_trace(
            go.Scatter(
                x=forecast["ts"],
                y=forecast["upper"],
                mode="lines",
                line=dict(width=0),
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=forecast["ts"],
                y=forecast["lower"],
                mode="lines",
                line=dict(width=0),
                fill="tonexty",
                fillcolor="rgba(30,136,229,0.2)",
                name="Forecast 95% band",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=forecast["ts"],
                y=forecast["price"],
                mode="lines+markers",
                name="Forecast",
                line=dict(color="#1e88e5", dash="dash"),
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Bar(x=df["ts"], y=df["volume"], name="Volume", marker_color="#90a4ae"), row=2, col=1
    )
    r = 3
    if show_rsi:
        fig.add_trace(
            go.Scatter(x=df["ts"], y=df["rsi_14"], name="RSI 14", mode="lines"), row=r, col=1
        )
        for level in (30, 70):
            fig.add_hline(y=level, line=dict(dash="dot", color="gray", width=1), row=r, col=1)
        r += 1
    if show_macd:
        fig.add_trace(
            go.Bar(x=df["ts"], y=df["macd_hist"], name="MACD hist", marker_color="#b0bec5"),
            row=r,
            col=1,
        )
        fig.add_trace(go.Scatter(x=df["ts"], y=df["macd"], name="MACD", mode="lines"), row=r, col=1)
        fig.add_trace(
            go.Scatter(x=df["ts"], y=df["macd_signal"], name="Signal", mode="lines"), row=r, col=1
        )
    fig.update_layout(
        height=420 + 140 * (rows - 1),
        margin=dict(l=0, r=0, t=30, b=0),
        xaxis_rangeslider_visible=False,
        legend=dict(orientation="h", y=1.06),
    )
    return fig


def _forecast_path(exchange: str, symbol: str) -> tuple[pd.DataFrame | None, str | None]:
    fc = data.query(FORECAST_SQL, (symbol, exchange, symbol, exchange))
    if fc.empty:
        return None, None
    origin = fc["origin_ts"].iloc[0]
    version = str(fc["model_version"].iloc[0])
    base_close = data.query(ORIGIN_CLOSE_SQL, (exchange, symbol, origin))
    if base_close.empty:
        return None, version
    p0 = float(base_close["close"].iloc[0])
    errors = data.query(FORECAST_ERROR_SQL, (version, symbol))
    rmse = dict(zip(errors["horizon"], errors["rmse"], strict=False))
    rows = [{"ts": origin, "price": p0, "lower": p0, "upper": p0, "horizon": "now"}]
    for _, f in fc.iterrows():
        hours = HORIZON_HOURS.get(str(f["horizon"]))
        if hours is None:
            continue
        pred = float(f["prediction"])
        sigma = float(rmse.get(f["horizon"], np.nan))
        band = 1.96 * sigma if np.isfinite(sigma) else 0.0
        rows.append(
            {
                "ts": origin + pd.Timedelta(hours=hours),
                "price": p0 * np.exp(pred),
                "lower": p0 * np.exp(pred - band),
                "upper": p0 * np.exp(pred + band),
                "horizon": f["horizon"],
            }
        )
    out = pd.DataFrame(rows).sort_values("ts")
    return (out if len(out) > 1 else None), version


def render() -> None:
    st.title("Asset")
    bases = data.bases()
    if not bases:
        st.info("No candles yet: run `make demo`.")
        return
    default_base = st.session_state.get("asset_base", bases[0])
    c1, c2, c3 = st.columns([1, 2, 1])
    base = c1.selectbox(
        "Asset",
        bases,
        index=bases.index(default_base) if default_base in bases else 0,
        key="asset_base",
    )
    markets = data.markets_for(base)
    labels = [f"{r.symbol} · {r.exchange}" for r in markets.itertuples()]
    if not labels:
        st.info(f"No markets for {base}.")
        return
    choice = c2.selectbox("Market", labels, key="asset_market")
    row = markets.iloc[labels.index(choice) if choice in labels else 0]
    exchange, symbol = str(row["exchange"]), str(row["symbol"])
    timeframe = c3.selectbox(
        "Timeframe", TIMEFRAMES, index=TIMEFRAMES.index("1h"), key="asset_timeframe"
    )

    with st.expander("Chart options", expanded=False):
        o1, o2 = st.columns([3, 2])
        overlays = o1.multiselect(
            "Overlays", list(OVERLAYS), default=["SMA 20", "EMA 50"], key="asset_overlays"
        )
        bollinger = o2.checkbox("Bollinger bands", value=True, key="asset_bb")
        show_rsi = o2.checkbox("RSI pane", value=True, key="asset_rsi")
        show_macd = o2.checkbox("MACD pane", value=True, key="asset_macd")

    candles = data.query(CANDLES_SQL, (exchange, symbol, timeframe, BAR_LIMIT[timeframe]))
    if candles.empty:
        st.info(f"No {timeframe} candles for {symbol} on {exchange}.")
        return
    start, end = candles["ts"].min(), candles["ts"].max()
    alerts = data.query(ALERTS_SQL, (symbol, start, end))
    alerts = (
        alerts[alerts["exchange"].isna() | (alerts["exchange"] == exchange)]
        if len(alerts)
        else alerts
    )
    forecast, version = _forecast_path(exchange, symbol)

    last = candles.iloc[-1]
    first = candles.iloc[0]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(
        "Last close",
        f"{last['close']:,.4f}",
        f"{100 * (last['close'] / first['open'] - 1):+.2f} % over view",
    )
    m2.metric("RSI 14", "—" if pd.isna(last["rsi_14"]) else f"{last['rsi_14']:.1f}")
    m3.metric("Alerts in view", len(alerts))
    m4.metric("Forecast model", version or "none yet")

    fig = _price_figure(candles, overlays, bollinger, show_rsi, show_macd, alerts, forecast)
    st.plotly_chart(fig, width="stretch")

    st.subheader("Forecast")
    if forecast is None:
        st.caption(
            "No forecast for this market yet (the forecaster has not run, or this market is "
            "not one it serves)."
        )
    else:
        st.caption(
            f"Model version {version}; band = ±1.96 × hold-out RMSE of the log return "
            "(no band when the evaluation has no RMSE for a horizon)."
        )
        st.dataframe(forecast, hide_index=True, width="stretch")

    left, right = st.columns(2)
    with left:
        st.subheader("Sentiment timeline")
        sent = data.query(SENTIMENT_SQL, (base,))
        if sent.empty:
            st.caption(f"No news mentioning {base}.")
        else:
            sfig = make_subplots(specs=[[{"secondary_y": True}]])
            sfig.add_trace(
                go.Bar(
                    x=sent["day"], y=sent["news_count"], name="News items", marker_color="#cfd8dc"
                ),
                secondary_y=True,
            )
            sfig.add_trace(
                go.Scatter(
                    x=sent["day"], y=sent["mean_score"], name="Mean score", mode="lines+markers"
                ),
                secondary_y=False,
            )
            sfig.update_yaxes(title_text="score", range=[-1, 1], secondary_y=False)
            sfig.update_yaxes(title_text="items", secondary_y=True)
            sfig.update_layout(
                height=300, margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h")
            )
            st.plotly_chart(sfig, width="stretch")
    with right:
        st.subheader("Alerts in view")
        st.dataframe(
            alerts.sort_values("event_time", ascending=False),
            hide_index=True,
            width="stretch",
            height=300,
        )

    st.subheader(f"Latest news on {base}")
    news = data.query(NEWS_SQL, (base,))
    if news.empty:
        st.caption("No news items.")
    else:
        # st.dataframe renders cell values as text: titles and summaries are never HTML
        st.dataframe(
            news,
            hide_index=True,
            width="stretch",
            column_config={
                "score": st.column_config.NumberColumn("Score", format="%.2f"),
                "published": st.column_config.DatetimeColumn("Published (UTC)"),
            },
        )
