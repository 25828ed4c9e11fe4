"""Replay through Dagster: the same assets and contracts, and the sensor on the replay folder."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from sentinance_assets.defs.ingest.market import raw_candles, raw_trades
from sentinance_assets.defs.ingest.news import raw_news
from sentinance_assets.defs.jobs import replay_files_sensor
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import QUARANTINE_TRADES, RAW_CANDLES, RAW_NEWS, RAW_TRADES
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


def test_rows_outside_the_window_are_counted_and_future_rows_quarantined(tmp_path: Path) -> None:
    """A replay file's rows that no day of the run reads are counted per file; the ones dated
    beyond the allowed clock skew, or without a time, are quarantined with the run's first day,
    whichever day of the file that is (here not the file's own first day)."""
    root = tmp_path / "replay" / "trades"
    root.mkdir(parents=True)
    header = "exchange,symbol,trade_id,timestamp,price,amount,side\n"
    rows = [
        ("a", "2023-02-28T10:00:00Z"),  # before the window
        ("b", "2023-03-01T10:00:00Z"),  # the window's day
        ("c", "2023-03-05T10:00:00Z"),  # after the window
        ("d", "2100-01-01T00:00:00Z"),  # far in the future
        ("e", "not a time"),
    ]
    (root / "t.csv").write_text(
        header + "".join(f"binance,BTC/USDT,{i},{ts},100,1,buy\n" for i, ts in rows)
    )
    settings = replay_settings(tmp_path).replace(
        start=datetime(2023, 3, 1, tzinfo=UTC), end=datetime(2023, 3, 2, tzinfo=UTC)
    )
    result = dg.materialize(
        [raw_trades], partition_key="2023-03-01", resources={"settings": settings}
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.step_materialization_data.materialization.metadata
    assert meta["rows_outside_window"].value == 4
    (counts,) = meta["outside_window"].value.values()
    assert counts == {"rows": 5, "before_window": 1, "after_window": 1, "future": 1, "no_time": 1}
    assert meta["received"].value == 3  # the day's row, the future one, the timeless one
    quarantine = lake.read_dataset(settings.lake_dir, QUARANTINE_TRADES)
    assert sorted(quarantine["check"].to_list()) == ["not_in_future", "ts_required"]
    assert lake.read_dataset(settings.lake_dir, RAW_TRADES)["trade_id"].to_list() == ["b"]


def test_news_tables_replay_with_day_first_dates(tmp_path: Path) -> None:
    news = tmp_path / "replay" / "news"
    news.mkdir(parents=True)
    (news / "export.csv").write_text(
        "date;source;title;text;url\n"
        "5-3-2023 04:24;CryptoNews;Bitcoin dips;BTC fell 2%.;https://example.com/a\n"
        "30-3-2023 10:00;CryptoNews;Ether rallies;ETH up.;https://example.com/b\n"
    )
    settings = replay_settings(tmp_path).replace(
        start=datetime(2023, 3, 5, tzinfo=UTC), end=datetime(2023, 3, 6, tzinfo=UTC)
    )
    result = dg.materialize(
        [raw_news], partition_key="2023-03-05", resources={"settings": settings}
    )
    assert result.success
    stored = lake.read_dataset(settings.lake_dir, RAW_NEWS)
    assert stored["title"].to_list() == ["Bitcoin dips"]
    assert stored["published"].to_list() == [datetime(2023, 3, 5, 4, 24, tzinfo=UTC)]
    assert stored["assets"].to_list() == ["BTC"] and stored["publisher"].to_list() == ["CryptoNews"]


def test_a_range_of_days_lands_in_one_run_each_day_its_own_partition(tmp_path: Path) -> None:
    """Long replays land many days per run (a run's start-up would otherwise dominate);
    each day is still replaced as its own partition, and the run reports the whole batch."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    _write_replay(tmp_path / "replay")
    settings = replay_settings(tmp_path)
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: "2023-02-28",
        ASSET_PARTITION_RANGE_END_TAG: "2023-03-02",
    }
    result = dg.materialize(
        [raw_trades, raw_candles, raw_news], resources={"settings": settings}, tags=tags
    )
    assert result.success
    metas = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert metas["raw/trades"]["days"].value == 3
    partitions = sorted(p.name for p in (settings.lake_dir / "raw" / "trades").iterdir())
    assert partitions == ["date=2023-02-28", "date=2023-03-01", "date=2023-03-02"]
    # the same rows as landing the three days one run each
    daily = settings.replace(home=tmp_path / "daily", lake_dir=tmp_path / "daily" / "lake")
    received = 0
    for day in ("2023-02-28", "2023-03-01", "2023-03-02"):
        one = dg.materialize([raw_trades], partition_key=day, resources={"settings": daily})
        (event,) = one.get_asset_materialization_events()
        received += event.step_materialization_data.materialization.metadata["received"].value
    assert metas["raw/trades"]["received"].value == received
    for ds in (RAW_TRADES, QUARANTINE_TRADES):
        ranged = lake.read_dataset(settings.lake_dir, ds).drop(
            "ingested_at", "run_id", strict=False
        )
        by_day = lake.read_dataset(daily.lake_dir, ds).drop("ingested_at", "run_id", strict=False)
        assert ranged.sort(ranged.columns).equals(by_day.sort(by_day.columns)), ds.name


def test_a_kind_without_files_still_lands_every_day_as_its_own_partition(
    tmp_path: Path, monkeypatch
) -> None:
    """A replay folder with candles only (real downloads often are): trades and news hand over
    nothing, cheaply, yet each day of the run is still replaced by an empty partition (a
    re-run wipes what an earlier folder landed) and materialized; the files' coverage is
    worked out once per run, not per day."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from sentinance_assets.lib.schemas import QUARANTINE_NEWS
    from sentinance_assets.lib.sources.replay import ReplaySource

    _write_replay(tmp_path / "replay")
    settings = replay_settings(tmp_path)
    days = ["2023-02-28", "2023-03-01", "2023-03-02"]
    tags = {ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]}
    assert dg.materialize([raw_trades, raw_news], resources={"settings": settings}, tags=tags)
    for kind in ("trades", "news"):  # the files go: a re-run must empty the stored days
        for f in (tmp_path / "replay" / kind).iterdir():
            f.unlink()
    coverage_calls: list[str] = []
    coverage = ReplaySource.coverage

    def counting(self: ReplaySource, kind: str) -> dict[str, dict[str, int]]:
        coverage_calls.append(kind)
        return coverage(self, kind)

    monkeypatch.setattr(ReplaySource, "coverage", counting)
    result = dg.materialize([raw_trades, raw_news], resources={"settings": settings}, tags=tags)
    assert result.success
    assert sorted(coverage_calls) == ["news", "trades"]
    events = result.get_asset_materialization_events()
    materialized = [e.step_materialization_data.materialization for e in events]
    assert sorted((m.asset_key.to_user_string(), m.partition) for m in materialized) == sorted(
        (asset, day) for asset in ("raw/news", "raw/trades") for day in days
    )
    meta = materialized[0].metadata
    assert meta["received"].value == 0 and meta["days"].value == 3
    for ds in (RAW_TRADES, QUARANTINE_TRADES, RAW_NEWS, QUARANTINE_NEWS):
        folder = settings.lake_dir / ds.schema / ds.name
        assert sorted(p.name for p in folder.iterdir()) == [f"date={d}" for d in days], ds.name
        assert lake.read_dataset(settings.lake_dir, ds).height == 0, ds.name
