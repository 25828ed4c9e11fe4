"""News feeds against a local feed server: RSS, Atom, malformed, hostile, 304, duplicates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from sentinance_assets.lib.sources.feeds import (
    FeedClient,
    FeedError,
    guard_xml,
    parse_feed,
    read_feeds,
    strip_html,
)
from sentinance_assets.lib.sources.live import LiveSource
from tests.fakes.feed_server import BILLION_LAUGHS, RSS, FeedServer, feed_server

NOW = datetime(2026, 11, 10, 20, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server(hang_s=1.0) as srv:
        yield srv


def client(tmp_path: Path) -> FeedClient:
    return FeedClient(cache_dir=tmp_path / "feeds", timeout=0.5, retries=1, backoff=0.0)


def test_rss_and_atom_are_normalised(server: FeedServer, tmp_path: Path) -> None:
    report = read_feeds([server.url("/rss"), server.url("/atom")], client(tmp_path))
    assert report.failures == []
    items = {r["title"]: r for r in report.items.iter_rows(named=True)}
    btc = items["Bitcoin tops $90k as ETF flows surge"]
    assert btc["published"] == datetime(2026, 11, 10, 14, 30, tzinfo=UTC)  # -0500 -> UTC
    assert btc["summary"] == "BTC rallied 4% & more."  # tags, script and entities gone
    assert btc["assets"] == "BTC" and btc["publisher"] == "Coin Wire"
    assert not btc["published_missing"]
    undated = items["Undated: Ether staking notes"]
    assert undated["published_missing"] and undated["assets"] == "ETH"
    assert abs((undated["published"] - datetime.now(UTC)).total_seconds()) < 60
    gas = items["Ethereum gas falls to a year low"]
    assert gas["published"] == datetime(2026, 11, 10, 11, tzinfo=UTC)  # Atom <updated> only
    assert gas["summary"] == "ETH fees drop" and gas["publisher"] == "Chain Daily"
    assert items["Solana validators ship upgrade"]["assets"] == "SOL"


def test_duplicates_across_feeds(server: FeedServer, tmp_path: Path) -> None:
    report = read_feeds(
        [server.url("/rss"), server.url("/atom"), server.url("/rss")], client(tmp_path)
    )
    titles = report.items["title"].to_list()
    # the Atom copy with the same normalised title and the one with a Coin Wire link are
    # repeats; the whole second /rss read is a repeat by guid
    assert "BITCOIN TOPS $90K AS ETF FLOWS SURGE!" not in titles
    assert "Coin Wire piece, re-linked" not in titles
    assert len(titles) == 4 and report.duplicates == 3 + 2
    assert report.items["news_id"].n_unique() == 4


def test_one_bad_feed_never_fails_the_others(server: FeedServer, tmp_path: Path) -> None:
    server.faults["/rss"] = ["500", "500"]  # both attempts
    server.faults["/atom"] = ["hang"]  # times out once, then answers
    urls = [server.url(p) for p in ("/rss", "/atom", "/broken", "/missing", "/laughs")]
    urls.append("http://127.0.0.1:9/feed")  # nothing listens
    t0 = time.monotonic()
    report = read_feeds(urls, client(tmp_path))
    assert time.monotonic() - t0 < 10
    failed = {f["feed"].rsplit("/", 1)[-1]: f["error"] for f in report.failures}
    assert set(failed) == {"rss", "broken", "missing", "laughs", "feed"}
    assert "500" in failed["rss"] and "404" in failed["missing"]
    assert "unsafe" in failed["laughs"]
    assert len(report.items) == 3  # the Atom feed, read on its retry


def test_conditional_get_and_304(server: FeedServer, tmp_path: Path) -> None:
    c = client(tmp_path)
    first = c.fetch(server.url("/rss"))
    second = c.fetch(server.url("/rss"))
    assert (first.status, second.status) == (200, 304)
    sent = server.statuses("/rss")
    assert "If-None-Match" not in sent[0] and sent[1]["If-None-Match"].startswith('"')
    assert sent[1]["If-Modified-Since"] == "Tue, 10 Nov 2026 18:00:00 GMT"
    assert second.body == first.body and second.fetched_at == first.fetched_at
    # a 304 still yields the items (another partition may need them), same ids and times
    a = parse_feed(first.body, feed_url="u", fetched_at=first.fetched_at)
    b = parse_feed(second.body, feed_url="u", fetched_at=second.fetched_at)
    assert a.equals(b)
    assert list((tmp_path / "feeds").glob("*.json"))  # validators stored under checkpoints
    server.feeds["/rss"] = (RSS.replace("Coin Wire", "Coin Wire 2"), "application/rss+xml")
    assert c.fetch(server.url("/rss")).status == 200


def test_billion_laughs_is_refused_before_parsing() -> None:
    t0 = time.monotonic()
    with pytest.raises(FeedError, match="unsafe"):
        parse_feed(BILLION_LAUGHS.encode(), feed_url="u", fetched_at=NOW)
    assert time.monotonic() - t0 < 0.5  # feedparser alone spends seconds on it
    with pytest.raises(FeedError):
        guard_xml(BILLION_LAUGHS.encode("utf-16"))
    ext = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(FeedError):
        guard_xml(ext)
    guard_xml(RSS.encode())  # an ordinary feed passes


def test_strip_html() -> None:
    assert strip_html("<p>a&nbsp;<b>b</b></p><style>x{}</style>c") == "a b c"
    assert strip_html(None) == ""


def test_live_source_news_for_a_day(server: FeedServer, tmp_path: Path) -> None:
    src = LiveSource(
        (), (), news_feeds=[server.url("/rss"), server.url("/atom"), server.url("/broken")],
        feed_client=client(tmp_path),
    )  # fmt: skip
    day = src.news(date(2026, 11, 10))
    assert set(day["source"]) == {"live"} and day["ingested_at"].null_count() == 0
    assert "Undated: Ether staking notes" not in day["title"].to_list()  # dated today, not 11-10
    assert day.height == 3
    assert [f["dataset"] for f in src.failures] == ["news"]
    assert src.news_report["feeds_failed"] == 1
    assert day.filter(pl.col("published_missing")).height == 0
