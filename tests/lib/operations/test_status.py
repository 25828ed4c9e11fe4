"""The health report: indicator, freshness against the windows, failed checks, the listener's
bookkeeping, and the text the command prints."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import dagster as dg

from sentinance_assets.commands.status import duration, render
from sentinance_assets.lib.operations import freshness
from sentinance_assets.lib.operations.listener import Components, WatchSampler, parse_tokens
from sentinance_assets.lib.operations.status import (
    collect,
    failed_checks,
    freshness_states,
    live_indicator,
)

K = dg.AssetKey.from_user_string


def test_freshness_windows_follow_the_refresh_interval(tiny_settings):
    s = tiny_settings.replace(refresh_minutes=2)
    assert freshness.window_of("marts/candles", s) == (
        timedelta(minutes=7),
        timedelta(minutes=9),
    )
    assert freshness.window_of("alerts/alerts", s) == freshness.window_of("marts/spreads", s)
    assert freshness.window_of("ml/forecasts", s) == (timedelta(minutes=75), timedelta(hours=2))
    assert freshness.window_of("staging/stg_trades", s) is None


def test_live_indicator_says_live_stale_or_offline(tiny_settings):
    live = tiny_settings.replace(source="live", refresh_minutes=1)
    assert live_indicator(live)["state"] == "stale"  # never built
    live.read_path.parent.mkdir(parents=True, exist_ok=True)
    live.read_path.write_bytes(b"")
    now = time.time()
    assert live_indicator(live, now)["state"] == "live"
    later = live_indicator(live, now + 8 * 60)  # past 2 x 1 min + 5 min
    assert later["state"] == "stale" and later["since"] is not None
    assert live_indicator(tiny_settings)["state"] == "offline"


def test_freshness_states_and_failed_checks_from_the_instance(tiny_settings):
    live = tiny_settings.replace(source="live", refresh_minutes=1)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(K("marts/candles")))
        instance.report_runless_asset_event(dg.AssetMaterialization(K("staging/stg_trades")))
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=K("raw/trades"),
                check_name="counts_reconcile",
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
            )
        )
        now = time.time()
        (state,) = freshness_states(instance, live, now)
        assert state["asset"] == "marts/candles" and state["state"] == "fresh"
        (late,) = freshness_states(instance, live, now + 3600)
        assert late["state"] == "late" and late["limit_s"] == 7 * 60
        (offline,) = freshness_states(instance, tiny_settings, now + 3600)
        assert offline["state"] == "offline"
        (check,) = failed_checks(instance)
        assert check["check"] == "raw/trades:counts_reconcile" and check["severity"] == "ERROR"


def test_listener_counts_restarts_and_samples_the_watch_loop(tiny_settings, tmp_path):
    counts = Components(tmp_path / "components.json")
    for event, extra in (
        ("PROCESS_STATE_STARTING", ""),
        ("PROCESS_STATE_RUNNING", ""),
        ("PROCESS_STATE_EXITED", "expected:0 pid:1"),
        ("PROCESS_STATE_STARTING", ""),
        ("PROCESS_STATE_RUNNING", ""),
    ):
        counts.on_event(event, parse_tokens(f"processname:watch groupname:watch {extra}"), 1.0)
    state = json.loads((tmp_path / "components.json").read_text())["watch"]
    assert state["starts"] == 2 and state["restarts"] == 1 and state["crashes"] == 1
    counts.on_event("PROCESS_STATE_FATAL", {"processname": "app"}, 100.0)
    assert counts.due_revivals(130.0) == [] and counts.due_revivals(161.0) == ["app"]

    ckpt = tiny_settings.checkpoints_dir / "watch-live.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    sampler = WatchSampler(tiny_settings, tmp_path / "watch.json")
    now = time.time()
    ckpt.write_bytes(json.dumps({"cursor_ms": int((now - 2) * 1000), "trades": 100}).encode())
    sampler.sample(now)
    ckpt.write_bytes(json.dumps({"cursor_ms": int((now + 8) * 1000), "trades": 300}).encode())
    got = sampler.sample(now + 10)
    assert got is not None
    assert got["trades_per_s"] == 20.0 and abs(got["lag_s"] - 2.0) < 0.01


def test_the_report_of_a_stopped_home_renders(tiny_settings):
    report = collect(tiny_settings)
    assert report["service"]["serving"] is False and report["healthy"] is False
    text = render(report)
    for heading in ("components", "jobs", "freshness", "watch loop", "failed checks", "disk"):
        assert f"\n{heading}" in text
    assert [duration(s) for s in (None, 5, 185, 7300, 200_000)] == [
        "-",
        "5 s",
        "3m05s",
        "2h01m",
        "2d07h",
    ]
    assert os.fspath(tiny_settings.home) in text
    assert "lake at" not in text  # the default place goes unsaid


def test_a_lake_elsewhere_is_named_and_its_zones_measured_there(tiny_settings, tmp_path):
    elsewhere = tiny_settings.replace(lake_dir=tmp_path / "mnt" / "lake")
    (elsewhere.lake_dir / "raw").mkdir(parents=True)
    (elsewhere.lake_dir / "raw" / "x.parquet").write_bytes(b"\0" * 1000)
    report = collect(elsewhere, with_dagster=False)
    assert report["lake"] == str(elsewhere.lake_dir)
    assert f"lake at {elsewhere.lake_dir}" in render(report)
    assert {d["zone"]: d["bytes"] for d in report["disk"]}["raw"] == 1000
