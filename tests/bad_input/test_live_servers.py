"""Bad input served by the local fake exchange and feed servers, through the real live ingest.

The path is the production one end to end: the Dagster assets ``raw/trades``, ``raw/candles``
and ``raw/news`` with ``SENTINANCE_SOURCE=live`` build a :class:`LiveSource`, which talks HTTP
to the fakes through ccxt and the feed client; the contracts check what arrives and
``land_merged`` writes the lake. The fakes serve bad payloads exactly as a venue or a feed
would (``FakeExchange.tamper``, ``FeedServer.feeds``). For every case:

* the run completes;
* each bad record is in ``quarantine.<entity>`` with the expected check, and the payload keeps
  what the venue sent - or, when the whole page or document is unreadable, the failure is
  recorded in ``LiveSource.failures`` (the ``failed`` metadata and the ``source_failures``
  check) and the other markets/feeds still land;
* the good records around it are clean, every one of them;
* received = clean + quarantined + exact duplicates, and received is what the server sent.

ccxt alone would drop or choke on several of these rows (a ``"NaN"`` price fails the whole
page; a missing, unreadable, ancient or far-future time vanishes in its ``since`` filter);
``exchanges._salvage_rows`` sets such rows aside and the live source sends them to the
contracts, so every one of them is accounted for here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from sentinance_assets.defs.ingest.market import raw_candles, raw_trades
from sentinance_assets.defs.ingest.news import raw_news
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import (
    QUARANTINE_CANDLES,
    QUARANTINE_NEWS,
    QUARANTINE_TRADES,
    RAW_CANDLES,
    RAW_NEWS,
    RAW_TRADES,
)
from sentinance_assets.settings import Settings
from tests.fakes.exchange_server import FakeExchange, fake_exchanges
from tests.fakes.feed_server import BILLION_LAUGHS, MALFORMED, FeedServer, feed_server

DAY = (datetime.now(UTC) - timedelta(days=2)).date()
START = datetime(DAY.year, DAY.month, DAY.day, 6, tzinfo=UTC)
MINUTES = 10
END = START + timedelta(minutes=MINUTES)
# Binance serves BTC/USDT and ETH/USDT; only BTC's answers are tampered with, ETH is the
# untouched neighbour market.
BTC_TRADES, BTC_KLINES = "/aggTrades?symbol=BTCUSDT", "/klines?symbol=BTCUSDT"
TRADES_PER_MARKET, CANDLES_PER_MARKET = 3 * MINUTES, MINUTES
ROW = 4  # the row of the answer that is made bad (a middle one: neighbours on both sides)
DROP = object()  # remove the field


# ------------------------------------------------------------------ bad answers of the venue


def set_fields(**fields: Any) -> Callable[[list], list]:
    """Binance aggTrades row ``ROW`` with fields replaced (``DROP`` removes one)."""

    def edit(rows: list) -> list:
        row = dict(rows[ROW])
        for k, v in fields.items():
            if v is DROP:
                row.pop(k, None)
            else:
                row[k] = v
        return [*rows[:ROW], row, *rows[ROW + 1 :]]

    return edit


def set_kline(**fields: Any) -> Callable[[list], list]:
    """Binance kline ``ROW`` (``[t, o, h, l, c, v, ...]``) with positions replaced."""
    pos = {"t": 0, "o": 1, "h": 2, "l": 3, "c": 4, "v": 5}

    def edit(rows: list) -> list:
        row = list(rows[ROW])
        for k, v in fields.items():
            row[pos[k]] = v
        return [*rows[:ROW], row, *rows[ROW + 1 :]]

    return edit


def copy_row(change: Callable[[Any], Any] = lambda r: r) -> Callable[[list], list]:
    """Row ``ROW`` sent twice in the same answer (the copy changed by ``change``)."""

    def edit(rows: list) -> list:
        copy = change(json.loads(json.dumps(rows[ROW])))
        return [*rows[: ROW + 1], copy, *rows[ROW + 1 :]]

    return edit


def replace_row(value: Any) -> Callable[[list], list]:
    return lambda rows: [*rows[:ROW], value, *rows[ROW + 1 :]]


def cut_page(rows: list) -> bytes:
    return json.dumps(rows).encode()[:60]  # the connection dropped mid-answer


def nan_token(rows: list) -> bytes:
    row = dict(rows[ROW], p="@@")
    return json.dumps([*rows[:ROW], row, *rows[ROW + 1 :]]).replace('"@@"', "NaN").encode()


def _future_ms() -> int:
    return int((datetime.now(UTC) + timedelta(days=365)).timestamp() * 1000)


def far_future_trade(rows: list) -> list:
    return set_fields(T=_future_ms())(rows)


def far_future_kline(rows: list) -> list:
    return set_kline(t=_future_ms())(rows)


def high_below_close(rows: list) -> list:
    row = rows[ROW]
    return set_kline(h=str(float(row[4]) - 1), l=str(float(row[4]) - 5))(rows)


@dataclass(frozen=True)
class Served:
    """One kind of bad venue answer and where its bad record(s) must end up."""

    id: str
    entity: str  # trades | candles
    edit: Callable[[list], list | bytes]
    check: str | None  # quarantine check of the bad record(s); None: nothing quarantined
    quarantined: int = 1  # how many rows end in quarantine (a conflict takes its partner)
    duplicates: int = 0
    added: int = 0  # rows the bad answer has beyond the untouched one
    evidence: str | None = None  # what the venue sent, to be found in the quarantined payload
    page_fails: bool = False  # the whole answer is unreadable: a recorded source failure


EXCHANGE_CASES = [
    # ---- trades: numbers
    Served("trade_price_nan_text", "trades", set_fields(p="NaN"), "price_positive", evidence="NaN"),
    Served("trade_price_inf_text", "trades", set_fields(p="Infinity"), "price_positive"),
    Served("trade_price_negative", "trades", set_fields(p="-5.0"), "price_positive"),
    Served("trade_price_zero", "trades", set_fields(p="0"), "price_positive"),
    Served("trade_amount_zero", "trades", set_fields(q="0"), "amount_positive"),
    Served("trade_amount_negative", "trades", set_fields(q="-0.5"), "amount_positive"),
    Served("trade_price_text", "trades", set_fields(p="abc"), "price_type", evidence="abc"),
    Served("trade_price_nested", "trades", set_fields(p=[1]), "price_required", evidence="[1]"),
    Served("trade_price_absurd", "trades", set_fields(p="1e30"), "price_plausible"),
    Served("trade_amount_absurd", "trades", set_fields(q="1e15"), "amount_plausible"),
    Served("trade_cost_mismatch", "trades", set_fields(quoteQty="1.0"), "cost_consistent"),
    # ---- trades: completeness
    Served("trade_price_missing", "trades", set_fields(p=DROP), "price_required"),
    Served("trade_amount_missing", "trades", set_fields(q=DROP), "amount_required"),
    Served("trade_time_missing", "trades", set_fields(T=DROP), "ts_required"),
    # ---- trades: time
    Served(
        "trade_time_text", "trades", set_fields(T="yesterday"), "ts_required", evidence="yesterday"
    ),
    Served("trade_time_far_future", "trades", far_future_trade, "not_in_future"),
    # seconds where ccxt promises ms: the one timestamp parser reads the unit from the
    # magnitude (lib/timestamps.py), so the trade lands at its true time, not in 1970
    Served("trade_time_epoch_seconds", "trades", set_fields(T=1_700_000_000), None, 0),
    Served("trade_time_implausible", "trades", set_fields(T=1_000), "time_plausible"),
    # ---- trades: uniqueness
    Served("trade_exact_duplicate", "trades", copy_row(), None, 0, duplicates=1, added=1),
    Served(
        "trade_conflicting_id",
        "trades",
        copy_row(lambda r: {**r, "p": "1.5"}),
        "unique_key",
        quarantined=2,
        added=1,
    ),
    # ---- whole answers
    Served("trade_page_nan_token", "trades", nan_token, None, 0, page_fails=True),
    Served("trade_page_cut_off", "trades", cut_page, None, 0, page_fails=True),
    # ---- candles
    Served("candle_open_nan_text", "candles", set_kline(o="NaN"), "open_positive"),
    Served("candle_high_text", "candles", set_kline(h="abc"), "high_required", evidence="abc"),
    Served("candle_low_negative", "candles", set_kline(l="-1"), "low_positive"),
    Served("candle_high_below_close", "candles", high_below_close, "ohlc_consistent"),
    Served("candle_volume_negative", "candles", set_kline(v="-3"), "volume_non_negative"),
    Served("candle_volume_absurd", "candles", set_kline(v="1e20"), "volume_plausible"),
    Served("candle_time_text", "candles", set_kline(t="abc"), "ts_required", evidence="abc"),
    Served("candle_time_far_future", "candles", far_future_kline, "not_in_future"),
    Served("candle_row_not_a_list", "candles", replace_row("garbage"), "ts_required"),
    Served("candle_exact_duplicate", "candles", copy_row(), None, 0, duplicates=1, added=1),
    Served(
        "candle_conflicting_open_time",
        "candles",
        copy_row(lambda r: [r[0], "1.0", "2.0", "0.5", "1.5", "1.0", *r[6:]]),
        "unique_key",
        quarantined=2,
        added=1,
    ),
    Served("candle_page_cut_off", "candles", cut_page, None, 0, page_fails=True),
]


# ------------------------------------------------------------------ running the real assets


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeExchange, FeedServer]]:
    with fake_exchanges("binance") as ex, feed_server() as feeds:
        yield ex["binance"], feeds


def settings_for(home: Path, ex: FakeExchange, feeds: FeedServer, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "SENTINANCE_HOME": str(home),
            "SENTINANCE_SOURCE": "live",
            "SENTINANCE_EXCHANGES": "binance",
            "SENTINANCE_SYMBOLS": "BTC,ETH",
            "SENTINANCE_START": START.isoformat(),
            "SENTINANCE_END": END.isoformat(),
            "SENTINANCE_EXCHANGE_URL_BINANCE": ex.url,
            "SENTINANCE_NEWS_FEEDS": "",
            "SENTINANCE_HTTP_TIMEOUT": "2",
            "SENTINANCE_HTTP_RETRIES": "1",
            "SENTINANCE_HTTP_BACKOFF": "0.01",
            **extra,
        }
    )


def materialize(asset: dg.AssetsDefinition, settings: Settings, day: str) -> Any:
    result = dg.materialize(
        [asset], partition_key=day, resources={"settings": settings}, raise_on_error=False
    )
    assert result.success, "bad input never fails the run"
    (mat,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in mat.materialization.metadata.items()}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["counts_reconcile"].passed
    assert meta["received"] == meta["clean"] + meta["quarantined"] + meta["exact_duplicates"]
    return meta, checks


def _payloads(quarantine: pl.DataFrame) -> list[dict]:
    return [json.loads(p) for p in quarantine["payload"]]  # valid JSON, always


@pytest.mark.parametrize("case", EXCHANGE_CASES, ids=lambda c: c.id)
def test_bad_venue_answer_through_the_live_ingest(case: Served, servers, tmp_path: Path) -> None:
    ex, feeds = servers
    answers: list[list | bytes] = []

    def serve(body: list) -> list | bytes:
        out = case.edit(body)
        answers.append(out)
        return out

    route = BTC_TRADES if case.entity == "trades" else BTC_KLINES
    ex.tamper = {route: serve}
    try:
        settings = settings_for(tmp_path / "home", ex, feeds)
        asset = raw_trades if case.entity == "trades" else raw_candles
        meta, checks = materialize(asset, settings, DAY.isoformat())
    finally:
        ex.tamper = {}
    dataset, quarantine = (
        (RAW_TRADES, QUARANTINE_TRADES)
        if case.entity == "trades"
        else (RAW_CANDLES, QUARANTINE_CANDLES)
    )
    clean = lake.read_dataset(settings.lake_dir, dataset)
    quarantined = lake.read_dataset(settings.lake_dir, quarantine)
    per_market = TRADES_PER_MARKET if case.entity == "trades" else CANDLES_PER_MARKET
    key = "trade_id" if case.entity == "trades" else "ts"

    eth = clean.filter(pl.col("symbol") == "ETH/USDT")
    assert eth.height == per_market, "the untouched market lands in full"
    btc = clean.filter(pl.col("symbol") == "BTC/USDT")

    if case.page_fails:
        # nothing of the page can be read: a recorded failure of that market, not a silent gap
        assert answers and all(isinstance(a, bytes) for a in answers)
        assert meta["received"] == per_market and btc.height == 0
        assert quarantined.height == 0
        failed = meta["failed"]
        assert [(f["exchange"], f["symbol"]) for f in failed] == [("binance", "BTC/USDT")]
        assert "malformed JSON" in failed[0]["error"] or "BadResponse" in failed[0]["error"]
        assert not checks["source_failures"].passed
        assert checks["source_failures"].severity == dg.AssetCheckSeverity.WARN
        return

    assert len(answers) == 1, "one page per market: what was served is what was received"
    (served,) = answers
    assert isinstance(served, list) and len(served) == per_market + case.added
    assert meta["received"] == 2 * per_market + case.added  # nothing lost before the contract
    assert meta["exact_duplicates"] == case.duplicates
    assert meta["failed_count"] == 0 and checks["source_failures"].passed
    assert quarantined.height == case.quarantined == meta["quarantined"]
    if case.check is not None:
        assert set(quarantined["check"]) == {case.check}, quarantined.select("check", "reason")
        assert quarantined["reason"].null_count() == 0
    payloads = _payloads(quarantined)
    if case.evidence is not None:
        assert any(case.evidence in json.dumps(p) for p in payloads), payloads

    # the good neighbours: every other row of the answer is clean
    # one record is bad (a conflict quarantines the original and its copy: one key)
    assert btc.height == per_market - (1 if case.quarantined else 0)
    assert btc[key].is_duplicated().sum() == 0
    if case.entity == "trades":
        served_ids = {str(r["a"]) for r in served if isinstance(r, dict) and "a" in r}
        bad_id = str(served[ROW]["a"])
        assert set(btc["trade_id"]) == served_ids - ({bad_id} if case.quarantined else set())
        if case.quarantined:
            assert {p["trade_id"] for p in payloads} == {bad_id}
    else:
        opens = [START + timedelta(minutes=m) for m in range(MINUTES)]
        bad_open = opens[ROW] if case.quarantined else None
        assert btc["ts"].to_list() == [t for t in opens if t != bad_open]
    assert btc["late"].all(), "history fetched two days later arrived late, flagged, clean"


def test_unknown_symbol_is_a_recorded_failure_and_the_rest_lands(servers, tmp_path: Path):
    ex, feeds = servers
    settings = settings_for(tmp_path / "home", ex, feeds, SENTINANCE_SYMBOLS="BTC,ETH,DOGE")
    meta, checks = materialize(raw_trades, settings, DAY.isoformat())
    assert meta["received"] == meta["clean"] == 2 * TRADES_PER_MARKET
    assert [(f["symbol"], f["dataset"]) for f in meta["failed"]] == [("DOGE", "markets")]
    assert not checks["source_failures"].passed


# ------------------------------------------------------------------ feeds


def _today_at() -> tuple[datetime, str]:
    """A time today (UTC), not in the future, as an RFC 822 date."""
    now = datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    when = start + (now - start) / 2
    return when, when.strftime("%a, %d %b %Y %H:%M:%S GMT")


def item(title: str | None, link: str | None, *, date: str | None = None, guid: str = "") -> str:
    parts = [f'<guid isPermaLink="false">{guid}</guid>' if guid else ""]
    parts.append(f"<title>{title}</title>" if title is not None else "")
    parts.append(f"<link>{link}</link>" if link is not None else "")
    parts.append(f"<pubDate>{date or _today_at()[1]}</pubDate>")
    return "<item>" + "".join(parts) + "</item>"


def rss(*items: str, encoding: str = "UTF-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
        f"<title>Bad Wire</title>{''.join(items)}</channel></rss>"
    )


GOOD_ITEMS = (
    item("Bitcoin steadies after a volatile week", "https://wire.example/good-1", guid="g1"),
    item("Ether staking inflows rise", "https://wire.example/good-2", guid="g2"),
)
GOOD_TITLES = {"Bitcoin steadies after a volatile week", "Ether staking inflows rise"}


@dataclass(frozen=True)
class Fed:
    """One kind of bad feed content and where it must end up."""

    id: str
    body: str | bytes | None  # the bad feed (served next to a good one); None: see bad_item
    bad_item: str = ""  # a bad item served between the good ones of the good feed
    check: str | None = None
    feed_fails: bool = False  # the document is refused or unreadable: a recorded failure
    clean_extra: int = 0  # bad items that are neutralised at the source and land clean
    duplicates: int = 0  # dropped by the feed reader as repeats, and counted


FAR_FUTURE = (datetime.now(UTC) + timedelta(days=365)).strftime("%a, %d %b %Y %H:%M:%S GMT")
XXE = '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def bad_item(case_id: str, title: str | None, link: str | None, check: str | None, **kw) -> Fed:
    """A bad item served between the two good ones of a feed."""
    return Fed(case_id, None, item(title, link, date=kw.pop("date", None)), check, **kw)


W = "https://wire.example"
FEED_CASES = [
    Fed("feed_malformed_xml", MALFORMED, feed_fails=True),
    Fed("feed_billion_laughs", BILLION_LAUGHS, feed_fails=True),
    Fed(
        "feed_external_entity",
        rss(item("&xxe;", "https://evil.example/x")).replace("?>", "?>" + XXE, 1),
        feed_fails=True,
    ),
    Fed("feed_not_a_feed", '{"items": []}', feed_fails=True),
    bad_item(
        "item_title_double_escaped_script",
        "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt; BTC",
        f"{W}/x1",
        "title_markup",
    ),
    bad_item("item_title_event_handler", "BTC onmouseover=alert(1)", f"{W}/x2", "title_markup"),
    # markup the feed reader strips (tags and script bodies removed, text kept): lands clean
    bad_item(
        "item_title_script_tags",
        "&lt;script&gt;alert(1)&lt;/script&gt;Solana jumps",
        f"{W}/x3",
        None,
        clean_extra=1,
    ),
    bad_item("item_link_javascript", "Click here", "javascript:alert(1)", "link_valid"),
    bad_item("item_title_missing", None, f"{W}/x4", "title_not_blank"),
    bad_item("item_link_missing", "Bitcoin without a link", None, "link_required"),
    bad_item("item_title_too_long", "B" * 1200, f"{W}/x5", "title_length"),
    bad_item(
        "item_published_far_future",
        "BTC from the future",
        f"{W}/x6",
        "not_in_future",
        date=FAR_FUTURE,
    ),
    bad_item(
        "item_published_1970",
        "Bitcoin in 1970",
        f"{W}/x7",
        "time_plausible",
        date="Thu, 01 Jan 1970 00:00:01 GMT",
    ),
    Fed("item_duplicate_guid", None, GOOD_ITEMS[0], duplicates=1),
    # declared UTF-8, sent as Latin-1: decoded with the fallback encoding, lands clean
    Fed("item_non_utf8_bytes", None, "LATIN1", clean_extra=1),
]


@pytest.mark.parametrize("case", FEED_CASES, ids=lambda c: c.id)
def test_bad_feed_through_the_live_ingest(case: Fed, servers, tmp_path: Path) -> None:
    ex, feeds = servers
    good = rss(GOOD_ITEMS[0], GOOD_ITEMS[1])
    if case.bad_item == "LATIN1":  # declared UTF-8, sent as Latin-1 bytes
        body: str | bytes = rss(
            GOOD_ITEMS[0], item("Bitcoin caf\xe9 rally", "https://wire.example/x8"), GOOD_ITEMS[1]
        ).encode("latin-1")
    elif case.bad_item:
        body = rss(GOOD_ITEMS[0], case.bad_item, GOOD_ITEMS[1])
    else:
        body = good
    feeds.feeds[f"/{case.id}/good"] = (body, "application/rss+xml")
    urls = [feeds.url(f"/{case.id}/good")]
    if case.body is not None:
        feeds.feeds[f"/{case.id}/bad"] = (case.body, "application/rss+xml")
        urls.append(feeds.url(f"/{case.id}/bad"))
    settings = settings_for(tmp_path / "home", ex, feeds, SENTINANCE_NEWS_FEEDS=",".join(urls))
    today = datetime.now(UTC).date().isoformat()
    meta, checks = materialize(raw_news, settings, today)

    clean = lake.read_dataset(settings.lake_dir, RAW_NEWS)
    quarantined = lake.read_dataset(settings.lake_dir, QUARANTINE_NEWS)
    assert GOOD_TITLES <= set(clean["title"]), "the good items around the bad one are clean"
    titles = " ".join(clean["title"])
    assert "<" not in titles and "alert(" not in titles and "lol" not in titles
    assert all(link.startswith("https://") for link in clean["link"])

    if case.feed_fails:
        assert meta["feeds_failed"] == 1 and quarantined.height == 0
        (failed,) = meta["failed"]
        assert failed["feed"].endswith(f"/{case.id}/bad")
        assert not checks["source_failures"].passed
        assert meta["received"] == meta["clean"] == 2
        return

    served = 3 if case.bad_item else 2
    assert meta["feeds_failed"] == 0 and checks["source_failures"].passed
    # every item served is clean, quarantined, or a counted repeat
    assert meta["received"] + meta["duplicates_dropped"] == served
    assert meta["duplicates_dropped"] == case.duplicates
    assert clean.height == 2 + case.clean_extra
    if case.check is None:
        assert quarantined.height == 0
        return
    assert quarantined["check"].to_list() == [case.check], quarantined.select("check", "reason")
    (payload,) = _payloads(quarantined)
    assert payload["source"] == "live" and payload["news_id"]


def test_conflicting_news_copies_are_quarantined_together(servers, tmp_path: Path) -> None:
    """Same guid, different title (one feed rewrote the item): neither version is trusted over
    the other - both land in quarantine under ``unique_key``; an exact repeat is only counted."""
    ex, feeds = servers
    rewritten = item("Bitcoin slumps after a volatile week", f"{W}/good-1", guid="g1")
    body = rss(GOOD_ITEMS[0], rewritten, GOOD_ITEMS[1], GOOD_ITEMS[1])
    feeds.feeds["/conflict/good"] = (body, "application/rss+xml")
    settings = settings_for(
        tmp_path / "home", ex, feeds, SENTINANCE_NEWS_FEEDS=feeds.url("/conflict/good")
    )
    meta, _ = materialize(raw_news, settings, datetime.now(UTC).date().isoformat())
    clean = lake.read_dataset(settings.lake_dir, RAW_NEWS)
    quarantined = lake.read_dataset(settings.lake_dir, QUARANTINE_NEWS)
    assert clean["title"].to_list() == ["Ether staking inflows rise"]
    assert quarantined["check"].to_list() == ["unique_key", "unique_key"]
    titles = {p["title"] for p in _payloads(quarantined)}
    assert titles == {
        "Bitcoin steadies after a volatile week",
        "Bitcoin slumps after a volatile week",
    }
    assert meta["duplicates_dropped"] == 1  # the exact repeat of item 2
    assert meta["received"] == meta["clean"] + meta["quarantined"] + meta["exact_duplicates"] == 3
