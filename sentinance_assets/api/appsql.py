"""The analyst app's SQL that the API reuses, so the app and the API cannot disagree.

The statements live in ``streamlit_app/views`` beside the pages that render them (the asset
overview and markets by venue, a market's latest forecasts with their stored intervals, and
the close at their origin). Those modules import Streamlit, whose cache decorators log "No
runtime found" once each outside a Streamlit server; that logger is quieted before they are
imported.
"""

from __future__ import annotations

import logging

import streamlit  # noqa: F401 - creates the logger quieted below

logging.getLogger("streamlit.runtime.caching.cache_data_api").setLevel(logging.ERROR)

from streamlit_app.views.asset import (  # noqa: E402
    FORECAST_SQL,
    HORIZON_HOURS,
    ORIGIN_CLOSE_SQL,
)
from streamlit_app.views.markets import MARKETS_SQL, OVERVIEW_SQL  # noqa: E402

__all__ = [
    "FORECAST_SQL",
    "HORIZON_HOURS",
    "MARKETS_SQL",
    "ORIGIN_CLOSE_SQL",
    "OVERVIEW_SQL",
]
