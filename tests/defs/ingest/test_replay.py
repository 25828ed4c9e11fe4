"""Replay through Dagster: the same assets and contracts, and the sensor on the replay folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import polars as pl

from sentinance_assets.defs.ingest.market import raw_candles, raw_trades
from sentinance_assets.defs.ingest.news import raw_news
from sentinance_assets.defs.jobs import replay_files_sensor
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_NEWS, RAW_TRADES
from sentinance_assets.settings import Settings
from tests.lib.sources.test_replay import MS_0301, _write_replay


def replay_settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "SENTINANCE_HOME": str(tmp_path / "home"),
            "SENTINANCE_SOURCE": "replay",
            "SENTINANCE_REPLAY_DIR": str(tmp_path / "replay"),
            "SENTINANCE_EXCHANGES": "binance,coinbase",
            "SENTINANCE_SYMBOLS": "BTC,ETH",
        }
    )


def test_replay_day_through_the_assets_twice(tmp_path: Path) -> None:
    _write_replay(tmp_path / "replay")
    (tmp_path / "replay" / "candles" / "junk.csv").write_text("a,b\n1,2\n")
    settings = replay_settings(tmp_path)
    for _ in range(2):  # idempotent: the second run replaces, never appends
        result = dg.materialize(
            [raw_trades, raw_candles, raw_news],
            partition_key="2023-03-01",
            resources={"settings": settings},
        )
        assert result.success
    trades = lake.read_dataset(settings.lake_dir, RAW_TRADES)
    candles = lake.read_dataset(settings.lake_dir, RAW_CANDLES)
    assert sorted(trades["trade_id"].to_list()) == ["2", "26129", "26130", "3"]
    assert candles.height == 5 and set(candles["source"]) == {"replay"}
    assert lake.read_dataset(settings.lake_dir, RAW_NEWS)["title"].to_list() == ["Bitcoin jumps"]
    evals = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    bad_file = evals[("raw/candles", "source_failures")]
    assert not bad_file.passed and "junk.csv" in json.dumps(bad_file.metadata["failed"].value)
    assert evals[("raw/trades", "source_failures")].passed


def test_sensor_asks_for_the_days_new_files_cover(tmp_path: Path) -> None:
    root = tmp_path / "replay"
    _write_replay(root)
    settings = replay_settings(tmp_path)
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"settings": settings})
        first = replay_files_sensor(ctx)
        assert sorted(r.partition_key for r in first) == ["2023-02-28", "2023-03-01", "2023-03-02"]
        cursor = ctx.cursor
        # nothing new: skip
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"settings": settings}
        )
        assert isinstance(replay_files_sensor(ctx), dg.SkipReason)
        # a new file for one day: only that day, with a run key naming the file version
        pl.DataFrame(
            {
                "exchange": ["binance"],
                "symbol": ["BTC/USDT"],
                "trade_id": ["9"],
                "timestamp": [MS_0301 + 5 * 86_400_000],
                "price": [1.0],
                "amount": [1.0],
                "side": ["buy"],
            }
        ).write_parquet(root / "trades" / "late.parquet")
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"settings": settings}
        )
        again = replay_files_sensor(ctx)
        assert [r.partition_key for r in again] == ["2023-03-06"]
        # the same file rewritten (new mtime): asked again under a new run key
        os.utime(root / "trades" / "late.parquet", ns=(1, 10**18))
        ctx2 = dg.build_sensor_context(
            instance=instance, cursor=ctx.cursor, resources={"settings": settings}
        )
        rewritten = replay_files_sensor(ctx2)
        assert [r.partition_key for r in rewritten] == ["2023-03-06"]
        assert rewritten[0].run_key != again[0].run_key


def test_sensor_skips_outside_replay_mode(tmp_path: Path) -> None:
    settings = Settings.from_env({"SENTINANCE_HOME": str(tmp_path / "home")})
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"settings": settings})
        assert isinstance(replay_files_sensor(ctx), dg.SkipReason)
    assert replay_files_sensor.default_status == dg.DefaultSensorStatus.STOPPED
