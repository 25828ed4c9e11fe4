"""Replay source: the issue's layouts, Binance dumps, day boundaries, and the real shared data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from sentinance_assets.lib import contracts
from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_NEWS, RAW_TRADES
from sentinance_assets.lib.sources import build_source
from sentinance_assets.lib.sources.replay import ReplaySource, file_days, split_pair
from sentinance_assets.settings import Settings
from tests.conftest import shared_data

MS_0301 = 1677628800000  # 2023-03-01T00:00:00Z

RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Test Feed</title>
<item><guid>a1</guid><title>Bitcoin jumps</title><link>https://x/1</link>
<description>&lt;p&gt;BTC &lt;b&gt;up&lt;/b&gt;&lt;/p&gt;</description>
<pubDate>Wed, 01 Mar 2023 10:00:00 +0200</pubDate></item>
<item><guid>a2</guid><title>Ether next day</title><link>https://x/2</link>
<pubDate>Thu, 02 Mar 2023 01:00:00 +0000</pubDate></item>
</channel></rss>"""


def _write_replay(root: Path) -> None:
    (root / "trades").mkdir(parents=True)
    (root / "candles" / "binance").mkdir(parents=True)
    (root / "news").mkdir()
    # issue layout, epoch ms, one row before and one after the day
    pl.DataFrame(
        {
            "exchange": ["binance"] * 4,
            "symbol": ["BTC/USDT"] * 4,
            "trade_id": ["1", "2", "3", "4"],
            "timestamp": [MS_0301 - 1, MS_0301, MS_0301 + 86_399_999, MS_0301 + 86_400_000],
            "price": [1.0, 2.0, 3.0, 4.0],
            "amount": [1.0, 1.0, 2.0, 1.0],
            "side": ["buy", "sell", "buy", "sell"],
        }
    ).write_csv(root / "trades" / "t.csv")
    # issue layout, ISO-8601, parquet
    pl.DataFrame(
        {
            "exchange": ["coinbase", "coinbase"],
            "symbol": ["BTC/USD", "BTC/USD"],
            "timeframe": ["1m", "1m"],
            "timestamp": ["2023-03-01T00:00:00Z", "2023-03-01T23:59:00+00:00"],
            "open": [1.0, 2.0],
            "high": [2.0, 3.0],
            "low": [0.5, 1.5],
            "close": [1.5, 2.5],
            "volume": [10.0, 0.0],
        }
    ).write_parquet(root / "candles" / "c.parquet")
    # Binance data-dump klines: no header, 12 columns, exchange from the sub-folder
    kl = "\n".join(
        f"{MS_0301 + i * 60000},100,101,99,100.5,3,{MS_0301 + i * 60000 + 59999},300,5,1,100,0"
        for i in range(3)
    )
    (root / "candles" / "binance" / "ETHUSDT-1m-2023-03-01.csv").write_text(kl + "\n")
    # Binance aggTrades dump: no header, 8 columns
    agg = f"26129,0.01633102,4.7,27781,27781,{MS_0301 + 5},true,true\n"
    agg += f"26130,0.01633200,1.0,27782,27782,{MS_0301 + 6},false,true\n"
    (root / "trades" / "ETHUSDT-aggTrades-2023-03-01.csv").write_text(agg)
    (root / "news" / "feed.xml").write_text(RSS)


def test_replay_layouts_and_day_boundaries(tmp_path: Path) -> None:
    _write_replay(tmp_path)
    src = ReplaySource(tmp_path)
    trades = src.trades(date(2023, 3, 1))
    assert src.problems == []
    btc = trades.filter(pl.col("symbol") == "BTC/USDT").sort("trade_id")
    assert btc["trade_id"].to_list() == ["2", "3"]  # the rows outside the day are not returned
    assert btc["cost"].to_list() == [2.0, 6.0]
    eth = trades.filter(pl.col("symbol") == "ETH/USDT").sort("trade_id")
    assert eth["exchange"].to_list() == ["binance", "binance"]
    assert eth["side"].to_list() == ["sell", "buy"]  # buyer is maker -> taker sold
    assert eth["trade_id"].to_list() == ["26129", "26130"]
    assert trades["ingested_at"].null_count() == 0
    assert src.trades(date(2023, 2, 28))["trade_id"].to_list() == ["1"]
    assert src.trades(date(2023, 3, 2))["trade_id"].to_list() == ["4"]
    assert src.trades(date(2023, 3, 5)).height == 0

    candles = src.candles(date(2023, 3, 1))
    assert set(candles["exchange"]) == {"binance", "coinbase"}
    kl = candles.filter(pl.col("exchange") == "binance").sort("ts")
    assert kl["symbol"].unique().to_list() == ["ETH/USDT"]
    assert kl["quote"].unique().to_list() == ["USDT"]
    assert kl["ts"][0] == datetime(2023, 3, 1, tzinfo=UTC)
    assert kl["timeframe"].unique().to_list() == ["1m"]
    cb = candles.filter(pl.col("exchange") == "coinbase").sort("ts")
    assert cb["ts"][1] == datetime(2023, 3, 1, 23, 59, tzinfo=UTC)

    news = src.news(date(2023, 3, 1))
    assert news["title"].to_list() == ["Bitcoin jumps"]
    assert news["summary"][0] == "BTC up"
    assert news["published"][0] == datetime(2023, 3, 1, 8, tzinfo=UTC)  # +0200 -> UTC
    assert news["assets"][0] == "BTC"
    assert src.news(date(2023, 3, 2))["title"].to_list() == ["Ether next day"]

    assert file_days(tmp_path / "trades" / "t.csv", tmp_path) == {
        "2023-02-28",
        "2023-03-01",
        "2023-03-02",
    }


def test_replay_rows_pass_the_contracts(tmp_path: Path) -> None:
    _write_replay(tmp_path)
    settings = Settings.from_env(
        {
            "SENTINANCE_HOME": str(tmp_path / "home"),
            "SENTINANCE_SOURCE": "replay",
            "SENTINANCE_REPLAY_DIR": str(tmp_path),
            "SENTINANCE_EXCHANGES": "binance,coinbase",
            "SENTINANCE_SYMBOLS": "BTC,ETH",
        }
    )
    src = build_source(settings)
    assert isinstance(src, ReplaySource)
    now = datetime.now(UTC)
    checked = contracts.check(
        src.candles(date(2023, 3, 1)),
        contracts.candle_rules(settings.exchanges, settings.symbols, now),
        ["exchange", "symbol", "timeframe", "ts"],
        source="replay",
        run_id="t",
    )
    assert checked.clean.height == 5 and checked.quarantined.height == 0


def test_a_bad_file_is_reported_not_fatal(tmp_path: Path) -> None:
    _write_replay(tmp_path)
    (tmp_path / "candles" / "junk.csv").write_text("a,b\n1,2\n")
    src = ReplaySource(tmp_path)
    assert src.candles(date(2023, 3, 1)).height == 5
    assert len(src.problems) == 1 and "junk.csv" in src.problems[0]["file"]


def test_files_are_read_once_per_source_until_they_change(tmp_path: Path, monkeypatch) -> None:
    """A long replay asks for every day (and the coverage) of the same files: each file is
    parsed once, an unreadable one tried once (its problem reported once), and a file that
    changes or appears is read again."""
    from sentinance_assets.lib.sources import replay

    _write_replay(tmp_path)
    (tmp_path / "candles" / "junk.csv").write_text("a,b\n1,2\n")
    reads: list[str] = []
    real = replay.read_table

    def counting(path: Path) -> pl.DataFrame:
        reads.append(path.name)
        return real(path)

    monkeypatch.setattr(replay, "read_table", counting)
    src = ReplaySource(tmp_path)
    days = [date(2023, 2, 27), date(2023, 2, 28), date(2023, 3, 1), date(2023, 3, 2)]
    first = [src.candles(d) for d in days]
    src.coverage("candles")
    assert sorted(reads) == ["ETHUSDT-1m-2023-03-01.csv", "c.parquet", "junk.csv"]
    assert [f.height for f in first] == [0, 0, 5, 0]
    assert len(src.problems) == 1 and "junk.csv" in src.problems[0]["file"]
    # the files' rows are the same frame for every day asked
    assert src.load("candles") is src.load("candles")

    reads.clear()
    kl = tmp_path / "candles" / "binance" / "ETHUSDT-1m-2023-03-01.csv"
    kl.write_text(kl.read_text() + f"{MS_0301 + 3 * 60000},1,2,0.5,1,3,0,3,1,1,1,0\n")
    assert src.candles(date(2023, 3, 1)).height == 6  # changed: read again
    assert "ETHUSDT-1m-2023-03-01.csv" in reads
    pl.DataFrame(
        {
            "exchange": ["coinbase"],
            "symbol": ["ETH/USD"],
            "timeframe": ["1m"],
            "timestamp": ["2023-03-01T12:00:00Z"],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1.0],
        }
    ).write_parquet(tmp_path / "candles" / "new.parquet")
    assert src.candles(date(2023, 3, 1)).height == 7  # a new file is picked up
    assert len(src.problems) == 1


def test_a_kind_without_files_hands_over_empty_days_in_the_stored_layout(tmp_path: Path) -> None:
    (tmp_path / "candles").mkdir()
    src = ReplaySource(
        tmp_path, window=(datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 3, tzinfo=UTC))
    )
    for kind, rows in (
        ("trades", src.trades(date(2023, 3, 1))),
        ("candles", src.candles(date(2023, 3, 1))),
        ("news", src.news(date(2023, 3, 1))),
    ):
        ds = {"trades": RAW_TRADES, "candles": RAW_CANDLES, "news": RAW_NEWS}[kind]
        assert rows.height == 0 and rows.schema == ds.empty().schema, kind
        assert src.coverage(kind) == {}
    assert src.problems == []


def test_pairs() -> None:
    assert split_pair("XBTUSD") == ("BTC", "USD")
    assert split_pair("btcusdt") == ("BTC", "USDT")
    assert split_pair("ETH-USD") == ("ETH", "USD")
    assert split_pair("NOPE") is None


def _link(root: Path, kind: str, src: Path, name: str | None = None) -> None:
    target = root / kind / (name or src.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(src)


def test_real_binanceus_csv_and_parquet(tmp_path: Path) -> None:
    base = shared_data("crypto_prices_svb_2023_1m")
    _link(tmp_path, "candles", base / "binanceus_csv" / "BTCUSD_1m_20230301_20230321.csv",
          "binanceus/BTCUSD_1m_20230301_20230321.csv")  # fmt: skip
    pq = base / "binanceus_coinbase_kraken_parquet"
    for name in ("coinbase_btcusd.parquet", "binanceus_btcusdt.parquet"):
        _link(tmp_path, "candles", pq / name)
    src = ReplaySource(tmp_path)
    day = src.candles(date(2023, 3, 11))
    assert src.problems == []
    counts = {(e, s): n for e, s, n in day.group_by("exchange", "symbol").len().iter_rows()}
    assert counts[("binanceus", "BTC/USD")] == 1440
    assert counts[("binanceus", "BTC/USDT")] == 1440
    assert 1300 < counts[("coinbase", "BTC/USD")] <= 1440  # Coinbase skips minutes with no trade
    assert day["ts"].min() >= datetime(2023, 3, 11, tzinfo=UTC)
    assert day["ts"].max() < datetime(2023, 3, 12, tzinfo=UTC)
    assert src.candles(date(2023, 3, 15)).height == 0  # withheld period: nothing
    checked = contracts.check(
        day,
        contracts.candle_rules(("binanceus", "coinbase"), ("BTC",), datetime.now(UTC)),
        ["exchange", "symbol", "timeframe", "ts"],
        source="replay",
        run_id="t",
    )
    assert checked.quality > 0.99


def test_real_kraken_ohlcvt_headerless(tmp_path: Path) -> None:
    f = shared_data("crypto_prices_svb_2023_1m", "kraken_ohlcvt_csv", "BTCUSDC_1m_2023Q1.csv")
    _link(tmp_path, "candles", f, "kraken/BTCUSDC_1m_2023Q1.csv")
    day = ReplaySource(tmp_path).candles(date(2023, 3, 11))
    assert set(day["symbol"]) == {"BTC/USDC"} and set(day["exchange"]) == {"kraken"}
    assert 0 < day.height <= 1440


def test_real_coindesk_rss(tmp_path: Path) -> None:
    f = shared_data("crypto_news_rss", "coindesk_rss_2026-09-25.xml")
    _link(tmp_path, "news", f)
    news = ReplaySource(tmp_path).news(date(2026, 9, 25))
    assert news.height == 3
    assert news["published_missing"].sum() == 0
    assert news["publisher"].unique().to_list()[0].lower().startswith("coindesk")
    assert news["news_id"].n_unique() == 3
    assert all("<" not in s for s in news["summary"].to_list())


def test_real_trade_sample_csv(tmp_path: Path) -> None:
    # A pandas-written CSV (unnamed index column, `id`, ms `timestamp`); market from the path.
    f = shared_data("exchange_trades_samples", "freqtrade_orderflow_public_trades_list.csv")
    _link(tmp_path, "trades", f, "binance/ETHUSDT_trades.csv")
    src = ReplaySource(tmp_path)
    trades = src.trades(date(2023, 2, 2))
    assert src.problems == []
    assert trades.height == 1000  # header ',timestamp,id,...': id -> trade_id, ms timestamps
    assert set(trades["side"]) == {"buy", "sell"} and set(trades["symbol"]) == {"ETH/USDT"}
