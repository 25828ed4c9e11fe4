"""Sentinance analyst app: prices and alerts from the published warehouse (read-only).

Reads the published copy of the warehouse, never the file dbt writes, so it keeps working
while Dagster materializes or the watch loop writes alerts.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import plotly.express as px
import streamlit as st

from sentinance_assets.lib.warehouse import WarehouseNotBuiltError, reading
from sentinance_assets.settings import Settings

st.set_page_config(page_title="Sentinance", layout="wide")
SETTINGS = Settings.from_env()


@st.cache_data(ttl=30, show_spinner=False)
def query(sql: str, params: tuple = ()) -> pd.DataFrame:
    with reading(SETTINGS.read_path) as conn:
        return conn.execute(sql, list(params)).df()


def main() -> None:
    st.title("Sentinance")
    try:
        bases = query("select distinct base from marts.candles order by 1")["base"].tolist()
    except (WarehouseNotBuiltError, duckdb.Error):
        st.info(
            "The warehouse is empty. Fill it with `make demo` (offline, about 3 minutes), "
            "then reload this page."
        )
        return
    if not bases:
        st.info("No candles yet. Run `make demo` to materialize the graph.")
        return
    base = st.sidebar.selectbox("Asset", bases)
    timeframe = st.sidebar.selectbox("Timeframe", ["1h", "15m", "1d"], index=0)

    candles = query(
        "select exchange, symbol, ts, close, volume from marts.candles "
        "where base = ? and timeframe = ? order by ts",
        (base, timeframe),
    )
    st.subheader(f"{base} close by venue ({timeframe})")
    if candles.empty:
        st.write("No candles for this selection.")
    else:
        fig = px.line(candles, x="ts", y="close", color="symbol", line_group="exchange",
                      hover_data=["exchange"])
        fig.update_layout(height=380, margin=dict(l=0, r=0, t=10, b=0))
        st.plotly_chart(fig, use_container_width=True)

    st.subheader("Latest alerts")
    alerts = query(
        "select event_time, type, severity, exchange, symbol, message from alerts.alerts "
        "where split_part(symbol, '/', 1) = ? order by event_time desc limit 200",
        (base,),
    )
    st.dataframe(alerts, use_container_width=True, hide_index=True)
    st.caption("Analytics for research, not financial advice.")


main()
