"""First render time of every page of the analyst app, measured in a real browser.

Starts ``streamlit run streamlit_app/app.py`` on a free 127.0.0.1 port over an existing home
(``SENTINANCE_HOME``; build one with ``make demo``), drives Debian's Chromium through Playwright
and prints, per page:

* ``cold``: a fresh browser context opens the page's URL (HTML, JS bundle, websocket, script
  run) until the page body, its footer and its charts are drawn;
* ``nav``: the analyst clicks the page in the sidebar of an open app until the new page is
  fully rendered (no stale element, no script run in progress).

The first pass after the server starts fills Streamlit's query cache; ``--runs`` passes follow
and their median is reported against the 2-second budget.

    SENTINANCE_HOME=/tmp/app-home .venv/bin/python benchmarks/app_render.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sentinance_assets.cli import streamlit_argv

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SENTINANCE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = [
    ("", "Markets"),
    ("asset", "Asset"),
    ("alerts", "Alerts"),
    ("news", "News & sentiment"),
    ("models", "Models"),
    ("health", "Data health"),
]
BUDGET_S = 2.0
FOOTER = "not financial advice"

RENDERED_JS = """(title) => {
  const h1 = document.querySelector('h1');
  if (!h1 || h1.innerText.trim() !== title) return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  if (!document.body.innerText.includes('__FOOTER__')) return false;
  // every plotly chart container has drawn its SVG
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]');
  for (const c of charts) { if (!c.querySelector('.main-svg')) return false; }
  return true;
}""".replace("__FOOTER__", FOOTER)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        streamlit_argv("127.0.0.1", port),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("streamlit did not start")


def measure(url: str, runs: int) -> dict[str, dict[str, list[float]]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, list[float]]] = {t: {"cold": [], "nav": []} for _, t in PAGES}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for run in range(runs + 1):  # run 0 warms the server (imports, cache)
            for path, title in PAGES:
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(f"{url}/{path}")
                page.wait_for_function(RENDERED_JS, arg=title, timeout=60_000)
                if run:
                    results[title]["cold"].append(time.perf_counter() - t0)
                ctx.close()
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.goto(f"{url}/health")
            page.wait_for_function(RENDERED_JS, arg="Data health", timeout=60_000)
            for _, title in PAGES:
                t0 = time.perf_counter()
                page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                page.wait_for_function(RENDERED_JS, arg=title, timeout=60_000)
                if run:
                    results[title]["nav"].append(time.perf_counter() - t0)
            ctx.close()
        browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from sentinance_assets.settings import Settings

    settings = Settings.from_env()
    if not settings.read_path.exists():
        raise SystemExit(f"no warehouse at {settings.read_path}: run `make demo` first")
    port = free_port()
    proc = start(port)
    try:
        results = measure(f"http://127.0.0.1:{port}", args.runs)
    finally:
        proc.terminate()
        proc.wait(timeout=15)

    print(
        f"home={settings.home} runs={args.runs} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'page':<18}{'cold median s':>14}{'cold max s':>12}{'nav median s':>14}"
        f"{'nav max s':>11}  budget {BUDGET_S:.0f} s"
    )
    worst = 0.0
    for _, title in PAGES:
        cold, nav = results[title]["cold"], results[title]["nav"]
        cm, nm = statistics.median(cold), statistics.median(nav)
        worst = max(worst, cm, nm)
        ok = "ok" if max(cm, nm) <= BUDGET_S else "OVER"
        print(f"{title:<18}{cm:>14.2f}{max(cold):>12.2f}{nm:>14.2f}{max(nav):>11.2f}  {ok}")
    print(f"worst median / budget = {worst / BUDGET_S:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
