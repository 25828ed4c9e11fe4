"""The Backtests page and the Alerts page's delivery log and rule versions (Streamlit AppTest,
no browser): they read what ``sentinance backtest``, the deliverer and batch detection wrote."""

from __future__ import annotations

import json
from datetime import date

import pytest
from streamlit.testing.v1 import AppTest

from sentinance_assets.lib.detection.backtest import RuleSet, run_backtest, save_report
from sentinance_assets.lib.detection.rules_file import default_rules, load_rules
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.simulator import MarketSimulator


def _backtests_page() -> None:
    import streamlit as st

    st.cache_resource.clear()
    from streamlit_app.views import backtests

    backtests.render()


def _delivery_tabs() -> None:
    import streamlit as st

    st.cache_resource.clear()
    from streamlit_app.views import alerts

    alerts._deliveries()
    alerts._rule_versions()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_backtests_page_shows_reports_side_by_side(home):
    empty = AppTest.from_function(_backtests_page, default_timeout=60).run()
    assert not empty.exception
    assert "No backtest yet" in empty.info[0].value
    sim = MarketSimulator(markets_for(("binance", "coinbase"), ("BTC",)), seed=9, trade_rate=4.0)
    day = sim.day(date(2026, 11, 11))
    strict = load_rules(text="[whale]\nusd = 400_000\n")
    for sets in ([RuleSet("default", default_rules())], [RuleSet("strict", strict)]):
        save_report(run_backtest(day.trades, sets, labels=day.events), home)
    at = AppTest.from_function(_backtests_page, default_timeout=60).run()
    assert not at.exception
    assert len(at.multiselect[0].value) == 2  # the last two by default
    assert {s.value for s in at.subheader} == {"default", "strict"}
    labels = [m.label for m in at.metric]
    assert labels.count("Alerts per day") == 2
    table = at.dataframe[0].value
    assert set(table["run"].str.split(" · ").str[0]) == {"default", "strict"}
    assert "|ret| lift 15m" in table.columns


def test_delivery_log_and_rule_versions_tabs(home):
    log = home / "delivery" / "log.jsonl"
    log.parent.mkdir(parents=True)
    rows = [
        {"at": "2026-11-11T10:00:00Z", "channel": "desk", "status": s, "alerts": 1}
        for s in ("retried", "delivered", "suppressed")
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    compare = home / "lake" / "alerts" / "rule_sets" / "compare-aaa-bbb.json"
    compare.parent.mkdir(parents=True)
    compare.write_text(
        json.dumps(
            {
                "old_version": "aaa",
                "new_version": "bbb",
                "added": 1,
                "removed": 4,
                "changed": 2,
                "unchanged": 10,
                "by_day": {"2026-11-11": {}},
            }
        )
    )
    at = AppTest.from_function(_delivery_tabs, default_timeout=60).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Delivered"] == "1" and metrics["Retried"] == "1"
    assert metrics["Suppressed"] == "1" and metrics["Dead lettered"] == "0"
    versions = at.dataframe[1].value
    assert versions.iloc[0]["removed"] == 4 and versions.iloc[0]["new"] == "bbb"
