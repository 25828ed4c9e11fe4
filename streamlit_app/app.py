"""Sentinance analyst app (entry point): ``streamlit run streamlit_app/app.py``.

Multipage through ``st.navigation``: Markets, Asset, Alerts, News & sentiment, Models, Data
health. Every page reads the *published* read-only copy of the warehouse through
:mod:`streamlit_app.data`, so the app keeps working while Dagster materializes or the watch loop
writes alerts. A missing or empty warehouse gets a page that says how to fill it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run streamlit_app/app.py` puts streamlit_app/ (not the repo root) on sys.path.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from streamlit_app import data  # noqa: E402
from streamlit_app.views import (  # noqa: E402
    alerts,
    asset,
    backtests,
    health,
    markets,
    models,
    news,
    service,
)

st.set_page_config(page_title="Sentinance", page_icon=":chart_with_upwards_trend:", layout="wide")


def getting_started(state: str, detail: str) -> None:
    st.title("Sentinance")
    if state == "missing":
        st.info("The warehouse has not been built yet, so there is nothing to show.")
    elif state == "empty":
        st.info("The warehouse exists but holds no market data yet.")
    else:
        st.warning("The warehouse could not be read right now.")
    st.markdown(
        "Fill it, then reload this page:\n\n"
        "* `make demo` — an offline, simulated market (a few minutes), or\n"
        "* `sentinance demo` with `SENTINANCE_HOME` pointing at this app's home, or\n"
        "* materialize the asset graph from the Dagster UI (`make dev`)."
    )
    st.caption(detail)
    if st.button("Check again"):
        st.cache_data.clear()
        st.rerun()


def main() -> None:
    state, detail = data.warehouse_state()
    if state != "ready":
        page = st.navigation(
            [st.Page(lambda: getting_started(state, detail), title="Getting started")]
        )
    else:
        page = st.navigation(
            [
                st.Page(
                    markets.render, title="Markets", icon=":material/monitoring:", default=True
                ),
                st.Page(
                    asset.render,
                    title="Asset",
                    icon=":material/candlestick_chart:",
                    url_path="asset",
                ),
                st.Page(
                    alerts.render,
                    title="Alerts",
                    icon=":material/notifications:",
                    url_path="alerts",
                ),
                st.Page(backtests.render, title="Backtests", url_path="backtests"),
                st.Page(
                    news.render,
                    title="News & sentiment",
                    icon=":material/newspaper:",
                    url_path="news",
                ),
                st.Page(
                    models.render,
                    title="Models",
                    icon=":material/model_training:",
                    url_path="models",
                ),
                st.Page(
                    health.render,
                    title="Data health",
                    icon=":material/health_and_safety:",
                    url_path="health",
                ),
            ]
        )
    service.render_indicator()  # every page: "live" / "stale since ..." / offline
    try:
        page.run()
    except data.DataUnavailable as exc:
        st.warning(str(exc))
    st.divider()
    st.caption(data.DISCLAIMER)


main()
