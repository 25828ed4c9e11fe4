"""Asset: one asset in one screen — candles, indicators, forecast, sentiment, alerts, news."""

from __future__ import annotations

import math

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
LEVELS = (95, 80)  # forecast interval levels, outer band first
TARGET_LABELS = {"log_return": "return", "realized_vol": "volatility"}
FORECAST_TABLE_COLUMNS = [
    "target",
    "horizon",
    "model",
    "version",
    "forecast",
    "low 95",
    "low 80",
    "high 80",
    "high 95",
    "price",
    "price low 95",
    "price high 95",
    "coverage 80",
    "coverage 95",
    "reason",
]

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

# The latest forecast origin of one market, both targets (log_return, realized_vol), one row
# per target and horizon (the newest run's). Rows written before model selection have no
# model: the LSTM wrote them. Their intervals and coverages are null: no band is drawn.
FORECAST_SQL = """
with latest as (
    select max(origin_ts) as origin_ts from ml.forecasts
    where symbol = ? and exchange = ?
)
select f.origin_ts, f.target, f.horizon, f.prediction,
       f.lower_80, f.upper_80, f.lower_95, f.upper_95,
       coalesce(f.model, 'lstm') as model, f.model_version, f.reason,
       f.coverage_80, f.coverage_95, f.created_at
from ml.forecasts as f, latest
where f.symbol = ? and f.exchange = ? and f.origin_ts = latest.origin_ts
qualify row_number() over (partition by f.target, f.horizon order by f.created_at desc) = 1
order by f.target, try_cast(rtrim(f.horizon, 'h') as integer), f.horizon
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
        # the stored intervals, outer (95 %) band first so the 80 % band is drawn over it; a
        # horizon without an interval has none (only the origin left: no band at all)
        for level, fill in ((95, "rgba(30,136,229,0.15)"), (80, "rgba(30,136,229,0.3)")):
            band = forecast.dropna(subset=[f"lower_{level}", f"upper_{level}"])
            if len(band) < 2:
                continue
            fig.add_trace(
                go.Scatter(
                    x=band["ts"],
                    y=band[f"upper_{level}"],
                    mode="lines",
                    line=dict(width=0),
                    showlegend=False,
                    hoverinfo="skip",
                    name=f"Forecast {level}% upper",
                ),
                row=1,
                col=1,
            )
            fig.add_trace(
                go.Scatter(
                    x=band["ts"],
                    y=band[f"lower_{level}"],
                    mode="lines",
                    line=dict(width=0),
                    fill="tonexty",
                    fillcolor=fill,
                    name=f"Forecast {level}% band",
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


def _finite(value: object) -> float | None:
    """``value`` as a finite float; None for null, NaN, +-inf and non-numbers."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _exp_price(p0: float | None, log_value: object) -> float | None:
    """``p0 * exp(log_value)``: a log return from the origin close as a price."""
    x = _finite(log_value)
    if p0 is None or x is None:
        return None
    try:
        return p0 * math.exp(x)
    except OverflowError:
        return None


def version_label(version: object) -> str:
    """A registered version as the app names it: ``v3`` (a non-numeric version as it is)."""
    text = "" if bool(pd.isna(version)) else str(version)
    return f"v{text}" if text.isdigit() else text


def model_label(fc: pd.DataFrame) -> str | None:
    """The serving model(s) and version of a forecast, e.g. ``har · lstm v3``; None without one."""
    if fc.empty:
        return None
    models = sorted(fc["model"].dropna().astype(str).unique())
    versions = sorted({version_label(v) for v in fc["model_version"]} - {""})
    return " ".join(p for p in (" · ".join(models), " · ".join(versions)) if p) or None


def _interval(row: pd.Series, level: int) -> tuple[float, float] | None:
    lo, hi = _finite(row[f"lower_{level}"]), _finite(row[f"upper_{level}"])
    return (lo, hi) if lo is not None and hi is not None else None


def forecast_path(fc: pd.DataFrame, p0: float | None) -> pd.DataFrame | None:
    """The log-return forecast as a price path from the origin close ``p0``: ``price = p0 *
    exp(prediction)``, and each stored interval as ``p0 * exp(lower_L) .. p0 * exp(upper_L)``
    (NaN where the row has no interval: no band there). None without a close or a horizon."""
    if p0 is None or fc.empty:
        return None
    origin = fc["origin_ts"].iloc[0]
    rows: list[dict[str, object]] = [
        {"ts": origin, "horizon": "now", "price": p0}
        | {f"{side}_{level}": p0 for level in LEVELS for side in ("lower", "upper")}
    ]
    for _, f in fc[fc["target"] == "log_return"].iterrows():
        hours = HORIZON_HOURS.get(str(f["horizon"]))
        price = _exp_price(p0, f["prediction"])
        if hours is None or price is None:
            continue
        row: dict[str, object] = {
            "ts": origin + pd.Timedelta(hours=hours),
            "horizon": f["horizon"],
            "price": price,
        }
        for level in LEVELS:
            band = _interval(f, level)
            row[f"lower_{level}"] = _exp_price(p0, band[0]) if band else None
            row[f"upper_{level}"] = _exp_price(p0, band[1]) if band else None
        rows.append(row)
    if len(rows) < 2:
        return None
    columns = ["ts", "horizon", "price", "lower_95", "lower_80", "upper_80", "upper_95"]
    out = pd.DataFrame(rows, columns=columns).sort_values("ts")
    return out.astype({c: float for c in columns[2:]})


def _pct(value: object) -> str:
    x = _finite(value)
    return "—" if x is None else f"{100 * x:.2f} %"


def horizon_line(row: pd.Series, p0: float | None) -> str:
    """One horizon in words: serving model and version, the forecast, each interval and the
    share of hold-out outcomes it covered, e.g. ``1h: har v3 — 60,012.0000, 80 % interval
    59,800.0000 – 60,200.0000 (covered 78 % of hold-out outcomes), 95 % interval ... (covered
    94 %)``. A log return is shown as a price when the origin close is known, else in percent
    (as is a realized volatility)."""
    as_price = row["target"] == "log_return" and p0 is not None

    def show(log_value: object) -> str:
        if as_price:
            price = _exp_price(p0, log_value)
            return "—" if price is None else f"{price:,.4f}"
        return _pct(log_value)

    parts: list[str] = []
    said = False  # "of hold-out outcomes" once, after the first measured coverage
    for level in (80, 95):
        band = _interval(row, level)
        if band is None:
            continue
        covered = _finite(row[f"coverage_{level}"])
        if covered is None:
            measured = "coverage not measured"
        else:
            measured = f"covered {100 * covered:.0f} %" + ("" if said else " of hold-out outcomes")
            said = True
        parts.append(f"{level} % interval {show(band[0])} – {show(band[1])} ({measured})")
    intervals = ", ".join(parts) if parts else "no interval stored"
    who = " ".join(p for p in (str(row["model"]), version_label(row["model_version"])) if p)
    return f"{row['horizon']}: {who} — {show(row['prediction'])}, {intervals}"


def _pct_value(value: object) -> float | None:
    x = _finite(value)
    return None if x is None else 100 * x


def forecast_table(fc: pd.DataFrame, p0: float | None) -> pd.DataFrame:
    """Every forecast of the origin (both targets) for the page's table: values in percent of
    log units, the return's implied prices, the measured coverages (percent) and the reason."""
    rows = []
    for _, f in fc.iterrows():
        p = p0 if f["target"] == "log_return" else None  # a volatility has no price
        rows.append(
            {
                "target": TARGET_LABELS.get(str(f["target"]), str(f["target"])),
                "horizon": f["horizon"],
                "model": f["model"],
                "version": version_label(f["model_version"]),
                "forecast": _pct_value(f["prediction"]),
                "low 95": _pct_value(f["lower_95"]),
                "low 80": _pct_value(f["lower_80"]),
                "high 80": _pct_value(f["upper_80"]),
                "high 95": _pct_value(f["upper_95"]),
                "price": _exp_price(p, f["prediction"]),
                "price low 95": _exp_price(p, f["lower_95"]),
                "price high 95": _exp_price(p, f["upper_95"]),
                "coverage 80": _pct_value(f["coverage_80"]),
                "coverage 95": _pct_value(f["coverage_95"]),
                "reason": f["reason"],
            }
        )
    return pd.DataFrame(rows, columns=FORECAST_TABLE_COLUMNS)


def _forecasts(exchange: str, symbol: str) -> tuple[pd.DataFrame, float | None]:
    """The market's latest forecasts (both targets) and the close at their origin."""
    fc = data.query(FORECAST_SQL, (symbol, exchange, symbol, exchange))
    if fc.empty:
        return fc, None
    close = data.query(ORIGIN_CLOSE_SQL, (exchange, symbol, fc["origin_ts"].iloc[0]))
    return fc, (_finite(close["close"].iloc[0]) if not close.empty else None)


def _forecast_section(fc: pd.DataFrame, p0: float | None) -> None:
    st.subheader("Forecast")
    if fc.empty:
        st.caption(
            "No forecast for this market yet (the forecaster has not run, or this market is "
            "not one it serves)."
        )
        return
    st.caption(
        f"Origin {str(fc['origin_ts'].iloc[0])[:16]} UTC. For each target and horizon the "
        "model that won the walk-forward hold-out serves. Its 80 % and 95 % intervals are "
        "split-conformal; their coverage is the share of hold-out outcomes that fell inside. "
        "The chart draws the return's intervals as price bands, p0 × exp(bound) from the "
        "origin close. Returns and volatilities are in log units, shown in percent."
    )
    lines = []
    for target, title in (
        ("log_return", "Price" if p0 is not None else "Log return"),
        ("realized_vol", "Realized volatility"),
    ):
        sel = fc[fc["target"] == target]
        if not sel.empty:
            lines += [f"**{title}**", ""] + [f"- {horizon_line(r, p0)}" for _, r in sel.iterrows()]
            lines.append("")
    st.markdown("\n".join(lines))
    pct = st.column_config.NumberColumn(format="%.3f %%")
    price = st.column_config.NumberColumn(format="%.4f")
    covered = st.column_config.NumberColumn(format="%.0f %%")
    st.dataframe(
        forecast_table(fc, p0),
        hide_index=True,
        width="stretch",
        column_config={
            **{c: pct for c in ("forecast", "low 95", "low 80", "high 80", "high 95")},
            **{c: price for c in ("price", "price low 95", "price high 95")},
            "coverage 80": covered,
            "coverage 95": covered,
        },
    )


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
    fc, p0 = _forecasts(exchange, symbol)
    forecast = forecast_path(fc, p0)

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
    m4.metric("Forecast model", model_label(fc) or "none yet")

    fig = _price_figure(candles, overlays, bollinger, show_rsi, show_macd, alerts, forecast)
    st.plotly_chart(fig, width="stretch")

    _forecast_section(fc, p0)

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
