"""The Dagster instance `sentinance serve` prepares: the pools' limits are set (an operator's are
kept) and the one-lake-writer run limit of earlier releases is removed (lib/lake.py's snapshots
and locks replace it); and serve's check of the lake's file system before it starts."""

from __future__ import annotations

import dagster as dg
import yaml

from sentinance_assets.defs.detection.assets import alerts
from sentinance_assets.defs.ingest.market import raw_trades
from sentinance_assets.lib.lake_filesystem import Finding
from sentinance_assets.lib.operations import supervision
from sentinance_assets.lib.operations.supervision import (
    LEGACY_RUN_LIMIT_KEY,
    POOL_LIMITS,
    lake_is_safe,
    prepare_instance,
    set_pool_limits,
)

LEGACY = """\
concurrency:
  pools:
    default_limit: 1
  runs:
    tag_concurrency_limits:
    - key: sentinance/lake
      value: writes
      limit: 1
    - key: team
      value: research
      limit: 3
telemetry:
  enabled: false
"""


def _instance(settings) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def test_a_new_home_gets_the_pool_limits_and_no_run_limit(tiny_settings):
    path = prepare_instance(tiny_settings)
    config = yaml.safe_load(path.read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1  # the duckdb pool
    assert "runs" not in config["concurrency"]
    instance = _instance(tiny_settings)
    try:
        assert set_pool_limits(instance) == POOL_LIMITS == {"ingest": 2, "detection": 1}
    finally:
        instance.dispose()


def test_an_upgraded_home_loses_the_legacy_run_limit_and_keeps_its_own(tiny_settings):
    tiny_settings.dagster_home.mkdir(parents=True, exist_ok=True)
    (tiny_settings.dagster_home / "dagster.yaml").write_text(LEGACY)
    instance = _instance(tiny_settings)
    try:
        instance.event_log_storage.set_concurrency_slots("ingest", 4)  # the operator's choice
    finally:
        instance.dispose()
    config = yaml.safe_load(prepare_instance(tiny_settings).read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert [lim["key"] for lim in limits] == ["team"]
    assert LEGACY_RUN_LIMIT_KEY not in yaml.safe_dump(config)
    instance = _instance(tiny_settings)
    try:
        assert set_pool_limits(instance) == {"ingest": 4, "detection": 1}
    finally:
        instance.dispose()


def test_ingest_and_detection_run_in_their_pools():
    assert raw_trades.op.pool == "ingest"
    assert alerts.op.pool == "detection"


def test_serve_starts_on_a_local_lake_warns_when_degraded_and_refuses_when_a_feature_fails(
    tiny_settings, monkeypatch
):
    said: list[str] = []
    assert lake_is_safe(tiny_settings, said.append) and said == []

    def findings(*statuses):
        return lambda lake_dir: [Finding(f"f{i}", s, "why") for i, s in enumerate(statuses)]

    monkeypatch.setattr(supervision, "check_lake_filesystem", findings("ok", "degraded"))
    assert lake_is_safe(tiny_settings, said.append)
    assert [line.split(":")[0] for line in said] == ["warning"]

    said.clear()
    monkeypatch.setattr(supervision, "check_lake_filesystem", findings("degraded", "fails"))
    assert not lake_is_safe(tiny_settings, said.append)
    assert [line.split(":")[0] for line in said] == ["warning", "error", "error"]
    assert "sentinance lake check" in said[-1]
