"""Backtests of alert rules: timing, grouping, quality against labels, forward moves, the
difference of two rule sets, and ``sentinance backtest`` end to end."""

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from sentinance_assets.cli import main
from sentinance_assets.lib.detection.backtest import (
    RuleSet,
    decided_at,
    format_report,
    forward_evidence,
    forward_table,
    load_reports,
    minute_prices,
    read_labels,
    run_backtest,
)
from sentinance_assets.lib.detection.engine import StreamingDetector, detect_all
from sentinance_assets.lib.detection.rules import DetectorConfig
from sentinance_assets.lib.detection.rules_file import default_rules, load_rules
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.schemas import ALERTS
from sentinance_assets.lib.simulator import MarketSimulator
from tests.lib.detection.trades import replay_layout

DAY = date(2026, 11, 11)  # a pump-and-dump day


@pytest.fixture(scope="module")
def sim_day():
    sim = MarketSimulator(
        markets_for(("binance", "coinbase", "kraken"), ("BTC", "ETH")), seed=5, trade_rate=6.0
    )
    return sim.day(DAY)


def test_decided_at_is_when_the_streaming_engine_emits(sim_day):
    # stream 2.5 hours (with the day's pump-and-dump) in 1-minute steps: each alert first
    # appears at the step that decides it
    start = datetime(2026, 11, 11, 20, tzinfo=UTC)
    end = start + timedelta(minutes=150)
    trades = sim_day.trades.filter(pl.col("ts").is_between(start, end, closed="left")).sort("ts")
    det = StreamingDetector()
    seen: dict[str, datetime] = {}
    for i in range(1, 151):
        hi = start + timedelta(minutes=i)
        batch = trades.filter((pl.col("ts") >= hi - timedelta(minutes=1)) & (pl.col("ts") < hi))
        for aid in det.push(batch, hi)["alert_id"]:
            seen.setdefault(aid, hi)
    found = detect_all(trades, DetectorConfig())
    when = dict(zip(found["alert_id"], decided_at(found, DetectorConfig()), strict=True))
    windowed = found.filter((pl.col("type") != "whale") & pl.col("alert_id").is_in(list(seen)))
    assert set(windowed["type"]) >= {"volume_spike", "pump_and_dump"}
    for aid in windowed["alert_id"]:
        # the engine's frontier is the minute its newest trade is in: an alert decided at a
        # boundary is emitted by the step after that minute (a minute of feed later)
        assert seen[aid] - when[aid] == timedelta(minutes=1), aid
    whales = found.filter(pl.col("type") == "whale")
    assert all(when[a] == t for a, t in zip(whales["alert_id"], whales["event_time"], strict=True))


def test_backtest_with_labels_two_rule_sets_and_their_difference(sim_day):
    strict = load_rules(text="[volume_spike]\nz = 6.0\n[delivery]\nrepeat_interval_s = 0\n")
    report = run_backtest(
        sim_day.trades,
        [RuleSet("default", default_rules()), RuleSet("strict", strict)],
        labels=sim_day.events,
    )
    a, b = report["rule_sets"]
    rows = {r["type"]: r for r in a["by_type"]}
    assert rows["whale"]["recall"] == 1.0 and rows["whale"]["precision"] == 1.0
    assert rows["whale"]["delay_median_s"] == 0.0  # whales fire as they trade
    assert rows["volume_spike"]["delay_median_s"] >= 60.0
    assert rows["pump_and_dump"]["delay_median_s"] >= 15 * 60
    assert a["totals"]["alerts"] == sum(r["alerts"] for r in a["by_type"])
    # grouping never makes more messages than alerts; every alert is itemized or folded
    assert a["totals"]["messages"] <= a["totals"]["alerts"]
    for r in a["by_type"]:
        assert r["delivered"] + r["suppressed"] == r["alerts"]
    # per market: the messages itemizing its alerts, the spike digest (every market in one
    # message) included, so a market with delivered alerts has at least one message
    markets = [r for r in a["by_market"] if r["delivered"]]
    assert markets and all(1 <= r["messages"] <= r["delivered"] for r in markets)
    spikes = [r for r in markets if r["type"] == "volume_spike"]
    assert len(spikes) > 1  # one digest itemizes several markets: each counts it
    assert (
        sum(r["messages"] for r in spikes)
        > {r["type"]: r for r in a["by_type"]}["volume_spike"]["messages"]
    )
    assert report["input"]["markets"] == 6 and report["input"]["days"] == pytest.approx(1, 0.01)
    assert rows["whale"]["per_market_day"] == pytest.approx(rows["whale"]["alerts"] / 6, 0.02)
    # strict: fewer spikes, none folded (repeat interval 0)
    (diff,) = report["diff"]
    spikes = {r["type"]: r for r in diff["by_type"]}["volume_spike"]
    assert spikes["alerts_b"] < spikes["alerts_a"]
    assert spikes["removed"] == spikes["alerts_a"] - spikes["alerts_b"]
    assert all(r["suppressed"] == 0 for r in b["by_type"])
    # forward evidence per type and horizon; spikes here come with pumps: larger moves
    fwd = rows["volume_spike"]["forward"]["15"]
    assert fwd["n"] > 0 and fwd["lift_vol"] > 1.0
    text = format_report(report)
    assert "rules default (version" in text and "difference: strict" in text
    assert json.loads(json.dumps(report))  # JSON-ready


def test_forward_evidence_tells_informative_from_random_alerts():
    rng = np.random.default_rng(1)
    minutes = 3000
    t0 = datetime(2026, 11, 10, tzinfo=UTC)
    steps = rng.normal(0, 0.0005, minutes)
    jumps = np.arange(200, minutes - 100, 150)  # the price jumps 1 % right after these minutes
    steps[jumps + 1] += 0.01
    price = 100 * np.exp(np.cumsum(steps))
    ts = [t0 + timedelta(minutes=i, seconds=30) for i in range(minutes)]
    trades = pl.DataFrame(
        {"exchange": "x", "symbol": "A/USD", "ts": ts, "price": price},
        schema_overrides={"ts": pl.Datetime("ms", "UTC")},
    )
    table = forward_table(minute_prices(trades), (5, 60))

    def alerts_at(idx) -> tuple[pl.DataFrame, pl.Series]:
        times = [t0 + timedelta(minutes=int(i)) for i in idx]
        df = pl.DataFrame(
            {"type": "volume_spike", "exchange": "x", "symbol": "A/USD", "t": times},
            schema_overrides={"t": pl.Datetime("ms", "UTC")},
        )
        return df, df["t"]

    good = forward_evidence(*alerts_at(jumps), table, (5, 60))["volume_spike"]
    assert good["5"]["lift_abs_ret"] > 3 and good["5"]["p_value"] < 1e-6
    assert good["5"]["mean_ret_bp"] > 50  # the jump is up
    noise = forward_evidence(*alerts_at(rng.integers(0, minutes - 70, 60)), table, (5, 60))
    assert 0.5 < noise["volume_spike"]["5"]["lift_abs_ret"] < 2.0
    assert noise["volume_spike"]["5"]["p_value"] > 0.001


def test_labels_file_forms(tmp_path, sim_day):
    csv = tmp_path / "events.csv"
    sim_day.events.select(
        "type", "exchange", "symbol", pl.col("start_ts").cast(pl.String), "end_ts"
    ).with_columns(pl.col("end_ts").dt.epoch("ms")).write_csv(csv)
    labels = read_labels(csv)
    assert labels.height == sim_day.events.height
    assert labels["start_ts"].to_list() == sim_day.events["start_ts"].to_list()
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,when\nwhale,1\n")
    with pytest.raises(ValueError, match="labels lack columns"):
        read_labels(bad)


def test_backtest_command_end_to_end(tmp_path, sim_day, monkeypatch, capsys):
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    trades = tmp_path / "trades.parquet"
    replay_layout(sim_day.trades).write_parquet(trades)
    labels = tmp_path / "events.parquet"
    sim_day.events.write_parquet(labels)
    strict = tmp_path / "strict.toml"
    strict.write_text("[whale]\nusd = 500_000\n")
    argv = ["backtest", "--trades", str(trades), "--labels", str(labels)]
    assert main([*argv, "--rules", "default", "--rules", str(strict), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [rs["name"] for rs in report["rule_sets"]] == ["default", "strict"]
    whales = {r["type"]: r for r in report["diff"][0]["by_type"]}["whale"]
    assert whales["removed"] > 0 and whales["recall_b"] < 1.0
    (saved,) = load_reports(tmp_path / "home")
    assert saved["rule_sets"][1]["version"] == load_rules(strict).version
    assert main([*argv, "--no-save"]) == 0
    assert "rules default (version" in capsys.readouterr().out
    assert len(load_reports(tmp_path / "home")) == 1
    strict.write_text("[whale]\nusd = 0\n")
    assert main([*argv, "--rules", str(strict)]) == 2
    assert f"{strict}:2: whale.usd = 0" in capsys.readouterr().err
    assert ALERTS.columns["rules_version"] == pl.String


def test_backtest_on_spark_needs_spark(tmp_path, sim_day, monkeypatch, capsys):
    """``--engine spark`` without Java: a clear error and exit 2, not a traceback."""
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    trades = tmp_path / "trades.parquet"
    replay_layout(sim_day.trades.head(100)).write_parquet(trades)
    assert main(["backtest", "--trades", str(trades), "--engine", "spark", "--no-save"]) == 2
    assert "--engine spark: no java on PATH" in capsys.readouterr().err
