"""Live ingest through Dagster against local fake exchanges and feeds: incremental, gap-free,
idempotent, with per-market failures surfaced as a warning check."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sentinance_assets.defs.ingest.market import raw_candles, raw_trades
from sentinance_assets.defs.ingest.news import raw_news
from sentinance_assets.defs.jobs import live_refresh_requests, live_refresh_schedule
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_NEWS, RAW_TRADES
from sentinance_assets.settings import Settings
from tests.fakes.exchange_server import MIN, FakeExchange, fake_exchanges
from tests.fakes.feed_server import ATOM, RSS, FeedServer, feed_server

DAY = (datetime.now(UTC) - timedelta(days=2)).date()
START = datetime(DAY.year, DAY.month, DAY.day, 6, tzinfo=UTC)
END = START + timedelta(minutes=40)
ASSETS = [raw_candles, raw_trades, raw_news]


@pytest.fixture
def fakes() -> Iterator[tuple[dict[str, FakeExchange], FeedServer]]:
    with fake_exchanges("binance", "coinbase") as ex, feed_server() as feeds:
        # the feeds' items dated on the partition's day
        rfc, iso = DAY.strftime("%a, %d %b %Y"), DAY.isoformat()
        feeds.feeds["/rss"] = (RSS.replace("Tue, 10 Nov 2026", rfc), "application/rss+xml")
        feeds.feeds["/atom"] = (ATOM.replace("2026-11-10", iso), "application/atom+xml")
        yield ex, feeds


def settings_for(tmp_path: Path, ex: dict[str, FakeExchange], feeds: FeedServer) -> Settings:
    return Settings.from_env(
        {
            "SENTINANCE_HOME": str(tmp_path / "home"),
            "SENTINANCE_SOURCE": "live",
            "SENTINANCE_EXCHANGES": "binance,coinbase",
            "SENTINANCE_SYMBOLS": "BTC,ETH",
            "SENTINANCE_START": START.isoformat(),
            "SENTINANCE_END": END.isoformat(),
            "SENTINANCE_EXCHANGE_URL_BINANCE": ex["binance"].url,
            "SENTINANCE_EXCHANGE_URL_COINBASE": ex["coinbase"].url,
            "SENTINANCE_NEWS_FEEDS": f"{feeds.url('/rss')},{feeds.url('/atom')}",
            "SENTINANCE_HTTP_TIMEOUT": "2",
            "SENTINANCE_HTTP_RETRIES": "1",
            "SENTINANCE_HTTP_BACKOFF": "0.01",
        }
    )


def run(settings: Settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=DAY.isoformat(),
        resources={"settings": settings},
        raise_on_error=False,
    )


def meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    mats = result.asset_materializations_for_node(key.replace("/", "__"))
    return {k: v.value for k, v in mats[-1].metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_same_ingest_twice_no_duplicates_no_gaps(tmp_path: Path, fakes) -> None:
    ex, feeds = fakes
    settings = settings_for(tmp_path, ex, feeds)
    holes = {int((START + timedelta(minutes=m)).timestamp() * 1000) for m in (5, 6, 7, 30)}
    ex["binance"].holes |= holes  # Binance misses four minutes on the first run
    first = run(settings)
    assert first.success
    candles = lake.read_dataset(settings.lake_dir, RAW_CANDLES)
    per = {(e, s): n for e, s, n in candles.group_by("exchange", "symbol").len().iter_rows()}
    assert per[("binance", "BTC/USDT")] == 36 and per[("coinbase", "BTC/USD")] == 40
    m = meta(first, "raw/candles")
    assert m["gap_minutes"] == 8 and m["gaps"]["binance BTC/USDT"] == 4
    assert checks(first)[("raw/candles", "source_failures")].passed

    ex["binance"].holes.clear()  # the venue has the minutes now
    klines_before = ex["binance"].count("/klines")
    second = run(settings)
    assert second.success
    m2 = meta(second, "raw/candles")
    assert m2["gap_minutes"] == 0 and m2["gap_windows_requested"] == 2  # runs coalesced
    # only the gaps were asked for, not the whole window again (coalesced into one page each)
    assert ex["binance"].count("/klines") - klines_before == 2

    candles = lake.read_dataset(settings.lake_dir, RAW_CANDLES)
    trades = lake.read_dataset(settings.lake_dir, RAW_TRADES)
    news = lake.read_dataset(settings.lake_dir, RAW_NEWS)
    assert candles.select("exchange", "symbol", "timeframe", "ts").is_duplicated().sum() == 0
    assert trades.select("exchange", "symbol", "trade_id").is_duplicated().sum() == 0
    assert news["news_id"].is_duplicated().sum() == 0
    for (_e, _s), grp in candles.group_by("exchange", "symbol"):
        minutes = grp["ts"].dt.epoch("ms").sort().to_list()
        assert len(minutes) == 40 and all(
            b - a == MIN for a, b in zip(minutes, minutes[1:], strict=False)
        )
    assert trades.height == 4 * 40 * 3
    assert trades.schema == pl.Schema(RAW_TRADES.columns)
    assert set(trades["side"]) == {"buy", "sell"} and trades["cost"].null_count() == 0
    assert set(trades["quote"]) == {"USDT", "USD"}  # each venue's own quote, kept explicit
    # trades resumed from the last stored one: the second run re-read at most the overlap
    assert meta(second, "raw/trades")["received"] <= 4 * 3
    assert meta(second, "raw/trades")["stored_rows"] == 4 * 40 * 3
    # 4 distinct items over both feeds, one undated (fetch time = today): 3 on the day;
    # the 304s of the second run add nothing
    assert news.height == 3
    assert meta(second, "raw/news")["feeds_not_modified"] == 2


def test_one_exchange_down_warns_and_the_rest_lands(tmp_path: Path, fakes) -> None:
    ex, feeds = fakes
    ex["coinbase"].down = True
    feeds.faults["/atom"] = ["500", "500"]
    settings = settings_for(tmp_path, ex, feeds)
    result = run(settings)
    assert result.success
    failures = checks(result)
    for key in ("raw/candles", "raw/trades", "raw/news"):
        check = failures[(key, "source_failures")]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    m = meta(result, "raw/candles")
    assert m["failed_count"] == 2 and {f["exchange"] for f in m["failed"]} == {"coinbase"}
    candles = lake.read_dataset(settings.lake_dir, RAW_CANDLES)
    assert set(candles["exchange"]) == {"binance"} and candles.height == 80
    assert lake.read_dataset(settings.lake_dir, RAW_NEWS).height == 2  # RSS only, dated


def test_every_exchange_down_fails_the_asset(tmp_path: Path, fakes) -> None:
    ex, feeds = fakes
    for f in ex.values():
        f.down = True
    result = dg.materialize(
        [raw_candles], partition_key=DAY.isoformat(),
        resources={"settings": settings_for(tmp_path, ex, feeds)}, raise_on_error=False,
    )  # fmt: skip
    assert not result.success


def test_live_refresh_schedule_targets_today() -> None:
    reqs = live_refresh_requests(datetime(2026, 11, 22, 13, 45, tzinfo=UTC))
    assert [r.partition_key for r in reqs] == ["2026-11-22"]
    reqs = live_refresh_requests(datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    assert [r.partition_key for r in reqs] == ["2026-11-21", "2026-11-22"]  # close yesterday
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
    )
    got = live_refresh_schedule(ctx)
    assert [r.partition_key for r in got] == ["2026-11-22"]
    # a refresh still running for the partition: the tick is skipped, not stacked
    instance = dg.DagsterInstance.ephemeral()
    instance.add_run(
        dg.DagsterRun(
            job_name="ingest_job",
            run_id="r1",
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": "2026-11-22"},
        )
    )
    skipped = live_refresh_requests(datetime(2026, 11, 22, 9, 30, tzinfo=UTC), instance)
    assert isinstance(skipped, dg.SkipReason)
    assert live_refresh_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert live_refresh_schedule.cron_schedule == "*/15 * * * *"
