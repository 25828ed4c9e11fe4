"""File-level bad input through the replay source (``lib/sources/replay.py``) and ``land_day``.

Each test writes a replay folder with one good file and one bad file, reads the day through the
real :class:`ReplaySource`, lands it with ``land_day`` (passing the files the source could not
read as ``problems``) and checks the lake: good rows clean, bad records or unreadable files in
quarantine with the right check, counts reconciling.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

import sentinance_assets.defs.ingest.market as market_assets
from sentinance_assets.lib import contracts, lake
from sentinance_assets.lib.ingest import FILE_UNREADABLE, land_day
from sentinance_assets.lib.schemas import (
    QUARANTINE_NEWS,
    QUARANTINE_TRADES,
    RAW_NEWS,
    RAW_TRADES,
)
from sentinance_assets.lib.sources.replay import ReplaySource
from sentinance_assets.settings import Settings

DAY = "2026-11-10"
NOW = datetime(2026, 11, 11, tzinfo=UTC)
HEADER = "exchange,symbol,trade_id,timestamp,price,amount,side\n"
GOOD_CSV = HEADER + "".join(
    f"binance,BTC/USDT,g{i},2026-11-10T0{i}:00:00Z,{100 + i},0.5,buy\n" for i in range(1, 4)
)
GOOD_IDS = {"g1", "g2", "g3"}


def _rss(items: str, prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prolog}<rss version="2.0"><channel>'
        f"<title>Feed</title><link>https://feed.example/</link>{items}</channel></rss>"
    )


def _item(title: str, link: str, hour: int = 1) -> str:
    return (
        f"<item><title>{title}</title><link>{link}</link>"
        f"<pubDate>Tue, 10 Nov 2026 0{hour}:00:00 GMT</pubDate></item>"
    )


GOOD_XML = _rss(_item("Bitcoin rallies", "https://feed.example/a", 1))
BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    + "]>"
).replace("&lol0;", "&lol;")


def land(kind: str, root: Path, lake_dir: Path):
    src = ReplaySource(root)
    day = date.fromisoformat(DAY)
    if kind == "trades":
        df, ds, q = src.trades(day), RAW_TRADES, QUARANTINE_TRADES
        contract = contracts.trade_rules(("binance",), ("BTC",), NOW)
        key = ["exchange", "symbol", "trade_id"]
    else:
        df, ds, q = src.news(day), RAW_NEWS, QUARANTINE_NEWS
        contract, key = contracts.news_rules(NOW), ["news_id"]
    checked = land_day(
        df,
        dataset=ds,
        quarantine=q,
        rules=contract,
        key=key,
        lake_dir=lake_dir,
        day=DAY,
        source="replay",
        run_id="r",
        now=NOW,
        problems=src.problems,
    )
    clean, quarantined = lake.read_dataset(lake_dir, ds), lake.read_dataset(lake_dir, q)
    assert checked.reconciles, checked.metadata()
    assert checked.received == df.height + len(src.problems)
    assert (clean.height, quarantined.height) == (checked.clean.height, checked.quarantined.height)
    return checked, clean, quarantined


def write(root: Path, kind: str, name: str, data: str | bytes) -> None:
    path = root / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")


@pytest.fixture
def replay(tmp_path: Path) -> Path:
    root = tmp_path / "replay"
    write(root, "trades", "good.csv", GOOD_CSV)
    write(root, "news", "good.xml", GOOD_XML)
    return root


def unreadable(quarantined: pl.DataFrame, name: str) -> pl.DataFrame:
    rows = quarantined.filter(pl.col("check") == FILE_UNREADABLE)
    return rows.filter(pl.col("payload").str.contains(name, literal=True))


BAD_TRADE_FILES = {
    "wrong_column_names": ("venue,pair,id,when,px,qty\nbinance,BTC/USDT,w1,2026-11-10,1,1\n"),
    "empty_file": "",
    "non_utf8_bytes": (HEADER + "binance,BTC/USDT,x1,2026-11-10T05:00:00Z,100,1,b\xe9y\n").encode(
        "latin-1"
    ),
    "binary_garbage": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("kind", list(BAD_TRADE_FILES))
def test_unreadable_trade_file_is_quarantined_not_fatal(replay: Path, tmp_path: Path, kind: str):
    write(replay, "trades", f"{kind}.csv", BAD_TRADE_FILES[kind])
    checked, clean, quarantined = land("trades", replay, tmp_path / "lake")
    assert set(clean["trade_id"]) == GOOD_IDS
    bad = unreadable(quarantined, f"{kind}.csv")
    assert bad.height == 1 and quarantined.height == 1
    assert bad["reason"][0].startswith("file could not be read: ")
    assert json.loads(bad["payload"][0])["file"].endswith(f"{kind}.csv")
    assert checked.unreadable_files == 1 and checked.metadata()["unreadable_files"] == 1


def test_truncated_csv_keeps_complete_rows_and_quarantines_the_cut_one(replay, tmp_path):
    cut = HEADER + "binance,BTC/USDT,t1,2026-11-10T06:00:00Z,100,1,buy\n"
    cut += "binance,BTC/USDT,t2,2026-11-10T06:00:01Z,10"  # the file ends mid-record
    write(replay, "trades", "truncated.csv", cut)
    _, clean, quarantined = land("trades", replay, tmp_path / "lake")
    assert set(clean["trade_id"]) == GOOD_IDS | {"t1"}
    assert quarantined["check"].to_list() == ["amount_required"]
    assert json.loads(quarantined["payload"][0])["trade_id"] == "t2"


def test_string_price_in_csv_is_quarantined(replay, tmp_path):
    write(
        replay,
        "trades",
        "strings.csv",
        HEADER + "binance,BTC/USDT,s1,2026-11-10T07:00:00Z,abc,1,buy\n",
    )
    _, clean, quarantined = land("trades", replay, tmp_path / "lake")
    assert set(clean["trade_id"]) == GOOD_IDS
    # the replay source casts to numbers itself, so the contract sees null, not 'abc'
    assert quarantined["check"].to_list() in (["price_required"], ["price_type"])


def test_unparseable_timestamp_in_csv_reaches_quarantine(replay, tmp_path):
    write(replay, "trades", "badts.csv", HEADER + "binance,BTC/USDT,b1,yesterday,100,1,buy\n")
    _, _, quarantined = land("trades", replay, tmp_path / "lake")
    assert quarantined.height == 1


HOSTILE_XML = {
    "billion_laughs": _rss(_item("&lol9;", "https://feed.example/b"), prolog=BILLION_LAUGHS),
    "external_entity": _rss(
        _item("&xxe;", "https://feed.example/x"),
        prolog='<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    ),
    "not_xml": "this is not a feed at all {}",
    "utf16_bomb": None,  # billion laughs, UTF-16 encoded
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", list(HOSTILE_XML))
def test_hostile_or_broken_feed_is_refused(replay: Path, tmp_path: Path, kind: str):
    data = HOSTILE_XML[kind]
    if data is None:
        text = _rss(_item("&lol9;", "https://feed.example/u"), prolog=BILLION_LAUGHS)
        data = text.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    write(replay, "news", f"{kind}.xml", data)
    # an expanded entity bomb would take seconds and tens of MB (feedparser's loose parser);
    # the hang guard is the pytest timeout below, the assertions check it was refused
    checked, clean, quarantined = land("news", replay, tmp_path / "lake")
    assert clean["title"].to_list() == ["Bitcoin rallies"]
    assert unreadable(quarantined, f"{kind}.xml").height == 1
    assert "lol" not in "".join(clean["title"]) and "root:" not in "".join(clean["title"])


def test_malformed_xml_keeps_what_parses(replay, tmp_path):
    broken = _rss(_item("Ether steady", "https://feed.example/e", 2))[: -len("</channel></rss>")]
    broken += "<item><title>cut mid"
    write(replay, "news", "broken.xml", broken)
    checked, clean, quarantined = land("news", replay, tmp_path / "lake")
    assert {"Bitcoin rallies", "Ether steady"} <= set(clean["title"])
    assert checked.reconciles


def test_script_in_feed_titles_never_reaches_clean_news(replay, tmp_path):
    items = _item("&lt;script&gt;alert(1)&lt;/script&gt;Solana jumps", "https://feed.example/s", 3)
    items += _item(
        "<![CDATA[<b>bold</b> <img src=x onerror=alert(1)>BTC]]>", "https://feed.example/i", 4
    )
    items += _item("Click me", "javascript:alert(1)", 5)
    write(replay, "news", "html.xml", _rss(items))
    _, clean, quarantined = land("news", replay, tmp_path / "lake")
    titles = " ".join(clean["title"])
    assert "<" not in titles and "onerror" not in titles and "script" not in titles.lower()
    # what markup survives the source is quarantined; the hostile link is
    assert "javascript:" not in " ".join(clean["link"])
    assert "link_valid" in quarantined["check"].to_list()
    assert set(quarantined["check"]) <= {"link_valid", "title_markup"}


def test_unreadable_file_reaches_quarantine_through_the_asset(replay, tmp_path):
    write(replay, "trades", "empty.csv", "")
    settings = Settings.from_env(
        {
            "SENTINANCE_HOME": str(tmp_path / "home"),
            "SENTINANCE_SOURCE": "replay",
            "SENTINANCE_REPLAY_DIR": str(replay),
            "SENTINANCE_EXCHANGES": "binance",
            "SENTINANCE_SYMBOLS": "BTC",
            "SENTINANCE_START": "2026-11-01",
            "SENTINANCE_END": "2026-11-12",
        }
    )
    result = dg.materialize(
        [market_assets.raw_trades], partition_key=DAY, resources={"settings": settings}
    )
    assert result.success
    assert set(lake.read_dataset(settings.lake_dir, RAW_TRADES)["trade_id"]) == GOOD_IDS
    quarantined = lake.read_dataset(settings.lake_dir, QUARANTINE_TRADES)
    assert unreadable(quarantined, "empty.csv").height == 1
