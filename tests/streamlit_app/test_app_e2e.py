"""The analyst app in a real browser (Playwright + Debian Chromium) over a demo warehouse.

Every page is visited, the filters and the symbol picker are driven, visible content is
asserted against the warehouse, and any exception text fails the test. Screenshots go to
``test-artifacts/streamlit_app/``.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from tests.streamlit_app.conftest import (
    BIN,
    HOSTILE_TITLE,
    REPO,
    demo_env,
    start_app,
    stop_app,
)

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
).expect

FOOTER = "not financial advice"
FORBIDDEN = ("Traceback", "Error", "Exception", "Could not set lock", "could not answer")

# url path -> texts that must be visible once the page has rendered
PAGES: dict[str, tuple[str, ...]] = {
    "": ("Markets", "Assets", "Top movers (24h)", "Quality score", "BTC", "ETH"),
    "asset": ("Asset", "Last close", "Forecast", "Sentiment timeline", "Latest news on BTC"),
    "alerts": ("Alerts", "Alerts shown", "Whale log", "Spread tracker", "Volume spikes"),
    "news": ("News & sentiment", "News items", "Daily sentiment vs returns"),
    "models": ("Models", "Forecast evaluation against baselines", "Drift", "Sentiment models"),
    "health": (
        "Data health",
        "Row counts",
        "Freshness per source",
        "Quarantine",
        "Last materializations",
    ),
}


def sql(home: Path, query: str, params: list | None = None) -> list[tuple]:
    conn = duckdb.connect(str(home / "warehouse.read.duckdb"), read_only=True)
    try:
        return conn.execute(query, params or []).fetchall()
    finally:
        conn.close()


def wait_rendered(page) -> None:
    """The footer renders after the page body; then wait until no script run is in progress."""
    page.get_by_text(FOOTER).wait_for()
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000
    )


def wait_charts(page) -> None:
    """Every plotly chart on the page has drawn its SVG (charts render after the script)."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                 .every(c => c.querySelector('.main-svg'))""",
        timeout=30_000,
    )


def open_page(page, app, path: str) -> None:
    page.goto(f"{app.url}/{path}")
    wait_rendered(page)
    wait_charts(page)


def assert_clean(page) -> str:
    text = page.inner_text("body")
    for word in FORBIDDEN:
        assert word not in text, f"page shows {word!r}:\n{text[:3000]}"
    assert page.get_by_test_id("stException").count() == 0
    return text


def metric(page, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has_text=label).first
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox or multiselect labelled ``label``."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def wait_texts(page, texts: tuple[str, ...], shot: Path, timeout_ms: int = 30_000) -> str:
    """Wait until every text is in the page body; on timeout save a screenshot and fail with
    what the page showed. (Render speed is measured by benchmarks/app_render.py; under load a
    chart-heavy page can finish its script run after the footer is first drawn.)"""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        body = assert_clean(page)
        missing = [t for t in texts if t not in body]
        if not missing:
            return body
        if time.monotonic() > deadline:
            page.screenshot(path=str(shot), full_page=True)
            raise AssertionError(f"{missing} not visible (screenshot {shot.name}):\n{body[:3000]}")
        page.wait_for_timeout(250)


def test_every_page_renders_with_content(app, page, artifacts):
    for path, texts in PAGES.items():
        open_page(page, app, path)
        wait_texts(page, texts, artifacts / f"missing_{path or 'markets'}.png")
        page.screenshot(path=str(artifacts / f"page_{path or 'markets'}.png"), full_page=True)
    # the sidebar navigation reaches every page
    open_page(page, app, "")
    for title in ("Asset", "Alerts", "News & sentiment", "Models", "Data health"):
        page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
        page.get_by_role("heading", name=title).first.wait_for()
        wait_rendered(page)
        assert_clean(page)


def test_markets_page_matches_the_warehouse(app, page):
    open_page(page, app, "")
    n_assets = sql(app.home, "select count(*) from marts.asset_overview")[0][0]
    assert metric(page, "Assets") == str(n_assets)
    assert metric(page, "Quality score").endswith("%")
    page.locator(".js-plotly-plot").nth(1).wait_for()


def test_symbol_picker_and_chart_options(app, page, artifacts):
    open_page(page, app, "asset")
    page.locator(".js-plotly-plot").first.wait_for()
    pick(page, "Asset", "ETH")
    market_box = page.get_by_role("combobox", name="Market")
    expect(market_box).to_have_value(re.compile(r"^ETH/"))
    page.get_by_text("Latest news on ETH").wait_for()
    wait_rendered(page)
    assert_clean(page)
    # the last close shown is the last 1h close of the chosen market in the warehouse
    market = market_box.input_value()
    symbol, exchange = re.search(r"(ETH/\w+) · (\w+)", market).groups()
    last_close = sql(
        app.home,
        "select close from marts.candles where exchange = ? and symbol = ? and timeframe = '1h' "
        "order by ts desc limit 1",
        [exchange, symbol],
    )[0][0]
    assert metric(page, "Last close") == f"{last_close:,.4f}"

    pick(page, "Timeframe", "15m")
    wait_rendered(page)
    last_15m = sql(
        app.home,
        "select close from marts.candles where exchange = ? and symbol = ? and timeframe = '15m' "
        "order by ts desc limit 1",
        [exchange, symbol],
    )[0][0]
    page.get_by_test_id("stMetricValue").filter(has_text=f"{last_15m:,.4f}").first.wait_for()

    # chart options: drop the RSI and MACD panes -> their subplot titles disappear
    chart = page.locator(".js-plotly-plot").first
    assert chart.get_by_text("RSI 14").count() >= 1
    page.get_by_text("Chart options").click()
    page.get_by_text("RSI pane").click()
    page.get_by_text("MACD pane").click()
    wait_rendered(page)
    page.wait_for_function(
        "() => !document.querySelector('.js-plotly-plot')?.textContent.includes('RSI 14')"
    )
    assert_clean(page)
    page.screenshot(path=str(artifacts / "asset_eth_15m.png"), full_page=True)


def test_alert_filters(app, page, artifacts):
    open_page(page, app, "alerts")
    total = sql(app.home, "select count(*) from alerts.alert_feed")[0][0]
    assert total > 0, "the demo produced no alerts"
    assert metric(page, "Alerts shown") == str(min(total, 1000))

    pick(page, "Severity", "critical")
    page.keyboard.press("Escape")
    critical = sql(app.home, "select count(*) from alerts.alert_feed where severity = 'critical'")
    expected = str(min(critical[0][0], 1000))
    page.get_by_test_id("stMetric").filter(has_text="Alerts shown").get_by_text(
        expected, exact=True
    ).wait_for()
    assert metric(page, "Critical") == expected

    symbol = sql(app.home, "select min(symbol) from alerts.alert_feed where severity = 'critical'")
    pick(page, "Symbol", symbol[0][0])
    page.keyboard.press("Escape")
    both = sql(
        app.home,
        "select count(*) from alerts.alert_feed where severity = 'critical' and symbol = ?",
        [symbol[0][0]],
    )[0][0]
    page.get_by_test_id("stMetric").filter(has_text="Alerts shown").get_by_text(
        str(both), exact=True
    ).wait_for()

    page.get_by_role("tab", name="Spread tracker").click()
    page.get_by_role("tabpanel").locator(".js-plotly-plot").first.wait_for()
    assert_clean(page)
    page.screenshot(path=str(artifacts / "alerts_filtered.png"), full_page=True)


def test_news_filters_and_text_only_rendering(app, page, artifacts):
    open_page(page, app, "news")
    total = sql(
        app.home,
        "select count(*) from staging.stg_news n left join ml.news_sentiment s using (news_id)",
    )[0][0]
    page.get_by_role("heading", name=f"News items ({total})").wait_for()

    box = page.get_by_label("Search titles and summaries")
    box.fill("Hostile headline")
    box.press("Enter")
    page.get_by_role("heading", name="News items (1)").wait_for()
    wait_rendered(page)
    # the title's HTML was not interpreted: no <b>/<img>/<script> from the feed, no script ran
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("b", has_text="Hostile headline").count() == 0
    assert page.locator('img[src="x"]').count() == 0
    assert_clean(page)
    page.screenshot(path=str(artifacts / "news_search.png"), full_page=True)

    box.fill("")
    box.press("Enter")
    pick(page, "Label", "positive")
    page.keyboard.press("Escape")
    positive = sql(app.home, "select count(*) from ml.news_sentiment where label = 'positive'")[0][
        0
    ]
    page.get_by_role("heading", name=f"News items ({positive})").wait_for()
    assert_clean(page)
    assert HOSTILE_TITLE not in page.inner_text("body")


def test_missing_warehouse_gets_a_friendly_page(empty_home, page, artifacts, tmp_path):
    app = start_app(empty_home, tmp_path / "empty.log")
    try:
        page.goto(app.url)
        page.get_by_text("has not been built yet").wait_for()
        wait_rendered(page)
        body = assert_clean(page)
        assert "make demo" in body
        page.screenshot(path=str(artifacts / "missing_warehouse.png"))
    finally:
        stop_app(app)
    assert not (empty_home / "warehouse.duckdb").exists(), "the app created a warehouse"
    assert not (empty_home / "warehouse.read.duckdb").exists()


@pytest.mark.timeout(900)
def test_pages_keep_working_while_a_materialization_and_the_watch_loop_write(app, page, artifacts):
    """A second `sentinance demo` materializes into the same home (dbt rewrites and republishes
    the warehouse) and `sentinance watch` writes alert files, while every page is loaded."""
    read = app.home / "warehouse.read.duckdb"
    published_before = read.stat().st_ino
    started = time.time()
    demo_log = (artifacts / "concurrent_demo.log").open("w")
    watch_log = (artifacts / "concurrent_watch.log").open("w")
    env = demo_env(app.home)
    writers = {
        "demo": subprocess.Popen(
            [str(BIN / "sentinance"), "demo"],
            cwd=REPO,
            env=env,
            stdout=demo_log,
            stderr=subprocess.STDOUT,
        ),
        "watch": subprocess.Popen(
            [
                str(BIN / "sentinance"),
                "watch",
                "--speed",
                "0",
                "--duration",
                "40",
                "--quiet",
                "--name",
                "e2e",
            ],
            cwd=REPO,
            env=env,
            stdout=watch_log,
            stderr=subprocess.STDOUT,
        ),
    }
    loads = 0
    try:
        while True:
            for path in PAGES:
                open_page(page, app, path)
                assert_clean(page)
                loads += 1
            if all(w.poll() is not None for w in writers.values()):
                break
            time.sleep(0.5)
    finally:
        for w in writers.values():
            if w.poll() is None:
                w.terminate()
                w.wait(timeout=30)
        demo_log.close()
        watch_log.close()
    for name, w in writers.items():
        log = (artifacts / f"concurrent_{name}.log").read_text()[-2000:]
        assert w.returncode == 0, f"concurrent {name} failed:\n{log}"
    # both writers really wrote while the pages were being loaded
    assert read.stat().st_ino != published_before, "the concurrent demo never republished"
    watch_files = list((app.home / "lake" / "alerts" / "alerts" / "watch-e2e").rglob("*.parquet"))
    assert any(p.stat().st_mtime > started for p in watch_files), "the watch loop wrote nothing"
    assert loads >= 2 * len(PAGES)
    page.screenshot(path=str(artifacts / "after_concurrent_demo.png"), full_page=True)
