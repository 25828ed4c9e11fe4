"""The app's service views (Streamlit AppTest, no browser): the "live / stale since ..." line
every page shows, and the System health section of the Data health page, read from the same
report as ``sentinance status``."""

from __future__ import annotations

import os
import time

import pytest
from streamlit.testing.v1 import AppTest

from streamlit_app.views.service import indicator_text


def _indicator() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()  # the settings are a cached resource
    from streamlit_app.views import service

    service.render_indicator()


def _section() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()  # the settings are a cached resource
    from streamlit_app.views import service

    service.render_section()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SENTINANCE_REFRESH_MINUTES", "1")
    return tmp_path / "home"


def _publish(home, age_s: float) -> None:
    """A published warehouse last refreshed ``age_s`` seconds ago."""
    from sentinance_assets.settings import Settings

    path = Settings.from_env().read_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_indicator_text_says_live_stale_or_offline() -> None:
    live = indicator_text({"state": "live", "refreshed_at": None})
    assert live.startswith(":green[● live]") and "refreshed never" in live
    stale = indicator_text(
        {"state": "stale", "since": "2026-12-03T10:00:00+00:00", "refreshed_at": None}
    )
    assert ":red[● stale since 2026-12-03 10:00:00 UTC]" in stale
    offline = indicator_text({"state": "offline", "source": "replay", "refreshed_at": None})
    assert offline.startswith(":gray[● offline (replay)]")


def test_the_header_follows_the_marts_freshness(home, monkeypatch) -> None:
    monkeypatch.setenv("SENTINANCE_SOURCE", "live")
    _publish(home, age_s=10)
    at = AppTest.from_function(_indicator, default_timeout=60).run()
    assert not at.exception
    assert "● live" in at.caption[0].value and " s ago" in at.caption[0].value
    _publish(home, age_s=3600)  # past 2 refresh intervals (1 min) + 5 min: stale
    at = AppTest.from_function(_indicator, default_timeout=60).run()
    assert "● stale since" in at.caption[0].value
    monkeypatch.setenv("SENTINANCE_SOURCE", "simulated")
    at = AppTest.from_function(_indicator, default_timeout=60).run()
    assert "offline (simulated)" in at.caption[0].value


def test_system_health_of_a_stopped_service_renders(home) -> None:
    at = AppTest.from_function(_section, default_timeout=60).run()
    assert not at.exception
    assert at.subheader[0].value == "System health"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Service"] == "stopped"
    assert metrics["Stream lag"] == "—"
    assert metrics["Components up"].startswith("0 / ")
    assert any("Failed checks" in c.value for c in at.caption)
