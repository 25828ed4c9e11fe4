"""The dbt asset's run arguments: time windows as dbt vars, and the unpartitioned default."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest

from sentinance_assets.defs.transform.assets import (
    DbtBuildConfig,
    dbt_build_args,
    sentinance_dbt,
)


def _vars(args: list[str]) -> dict:
    return json.loads(args[args.index("--vars") + 1])


def test_unpartitioned_run_builds_everything_without_vars():
    assert dbt_build_args(DbtBuildConfig()) == ["build"]


def test_partition_window_becomes_start_and_end_vars():
    window = dg.TimeWindow(datetime(2026, 11, 14, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
    args = dbt_build_args(DbtBuildConfig(), window)
    assert args[0] == "build"
    assert _vars(args) == {
        "start_ts": "2026-11-14 00:00:00+00:00",
        "end_ts": "2026-11-15 00:00:00+00:00",
    }


def test_config_window_wins_and_naive_times_are_utc():
    window = dg.TimeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    args = dbt_build_args(
        DbtBuildConfig(start="2026-11-14T06:00:00", end="2026-11-14T09:00:00+02:00"), window
    )
    assert _vars(args) == {
        "start_ts": "2026-11-14 06:00:00+00:00",
        "end_ts": "2026-11-14 07:00:00+00:00",
    }
    assert _vars(dbt_build_args(DbtBuildConfig(start="2026-11-14"))) == {
        "start_ts": "2026-11-14 00:00:00+00:00"
    }


def test_full_refresh_and_empty_window():
    assert dbt_build_args(DbtBuildConfig(full_refresh=True)) == ["build", "--full-refresh"]
    with pytest.raises(dg.Failure):
        dbt_build_args(DbtBuildConfig(start="2026-11-15", end="2026-11-14"))


def test_dbt_assets_stay_unpartitioned_and_take_the_window_config():
    assert sentinance_dbt.partitions_def is None
    node = sentinance_dbt.node_def
    fields = node.config_schema.as_field().config_type.fields
    assert {"start", "end", "full_refresh"} <= set(fields)
    assert all(not f.is_required for f in fields.values())
