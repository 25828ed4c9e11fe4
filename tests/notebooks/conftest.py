"""The notebooks run against the same session demo warehouse as the browser tests."""

from tests.streamlit_app.conftest import demo_warehouse  # noqa: F401  (a shared fixture)
