"""ccxt against a local fake Binance/Coinbase/Kraken: paging, limits, retries and isolation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import ccxt
import polars as pl
import pytest

from sentinance_assets.lib.sources.exchanges import (
    FetchPolicy,
    call_with_retries,
    make_exchange,
    override_urls,
)
from sentinance_assets.lib.sources.live import LiveSource
from tests.fakes.exchange_server import FakeExchange, fake_exchanges

VENUES = ("binance", "coinbase", "kraken")
DAY = (datetime.now(UTC) - timedelta(days=2)).date()
START = datetime(DAY.year, DAY.month, DAY.day, 10, tzinfo=UTC)
END = START + timedelta(minutes=30)
FAST = FetchPolicy(timeout_ms=400, retries=3, backoff_s=0.001, rate_limit_ms=1, page_limit=10)


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeExchange]]:
    with fake_exchanges(*VENUES, hang_s=1.0) as f:
        yield f


def source(fakes: dict[str, FakeExchange], policy: FetchPolicy = FAST, **kw: object) -> LiveSource:
    return LiveSource(
        kw.pop("exchanges", VENUES),  # type: ignore[arg-type]
        kw.pop("symbols", ("BTC", "ETH")),  # type: ignore[arg-type]
        window=(START, END),
        exchange_urls={k: v.url for k, v in fakes.items()},
        policy=policy,
        sleep=lambda s: None,
        **kw,  # type: ignore[arg-type]
    )


def counts(df: pl.DataFrame) -> dict[tuple[str, str], int]:
    return {(e, s): n for e, s, n in df.group_by("exchange", "symbol").len().iter_rows()}


def test_url_override_keeps_paths() -> None:
    urls = {"public": "https://api.binance.com/api/v3", "nested": {"x": "https://h.io:8/p?q=1"}}
    got = override_urls(urls, "http://127.0.0.1:8901")
    assert got == {
        "public": "http://127.0.0.1:8901/api/v3",
        "nested": {"x": "http://127.0.0.1:8901/p?q=1"},
    }
    ex = make_exchange("kraken", FAST, "http://127.0.0.1:9")
    assert ex.urls["api"]["public"] == "http://127.0.0.1:9"
    assert ex.enableRateLimit and ex.timeout == FAST.timeout_ms


def test_paged_history_with_quote_mapping(fakes: dict[str, FakeExchange]) -> None:
    src = source(fakes)
    candles = src.candles(DAY)
    trades = src.trades(DAY)
    assert src.failures == []
    # each venue's own dollar market: USDT on Binance, USD on Coinbase and Kraken
    expected = {
        ("binance", "BTC/USDT"), ("binance", "ETH/USDT"), ("coinbase", "BTC/USD"),
        ("coinbase", "ETH/USD"), ("kraken", "BTC/USD"), ("kraken", "ETH/USD"),
    }  # fmt: skip
    assert set(counts(candles)) == expected
    assert all(n == 30 for n in counts(candles).values())  # every minute, none twice
    assert all(n == 90 for n in counts(trades).values())
    assert candles["ts"].min() == START and candles["ts"].max() == END - timedelta(minutes=1)
    assert set(candles.filter(pl.col("exchange") == "binance")["quote"]) == {"USDT"}
    assert trades.select("exchange", "symbol", "trade_id").is_duplicated().sum() == 0
    # pages never exceed the (test) limit of 10 and several pages were needed
    for path, limit_key in (("/klines", "limit"), ("/aggTrades", "limit")):
        limits = [int(q[limit_key]) for p, q in fakes["binance"].requests if p.endswith(path)]
        assert limits and max(limits) <= 10
    assert fakes["binance"].count("/klines") >= 6  # 2 symbols x 3 pages of 10
    assert fakes["kraken"].count("/OHLC") >= 6
    assert fakes["coinbase"].count("/candles") >= 6


def test_real_page_limits_are_respected(fakes: dict[str, FakeExchange]) -> None:
    # no page_limit: the fake answers 400 when a page exceeds the venue's limit
    policy = FetchPolicy(timeout_ms=2000, retries=0, rate_limit_ms=1)
    src = LiveSource(
        VENUES, ("BTC",), window=(START - timedelta(hours=8), END),
        exchange_urls={k: v.url for k, v in fakes.items()}, policy=policy,
    )  # fmt: skip
    candles = src.candles(DAY)
    assert src.failures == []
    assert all(n == 510 for n in counts(candles).values())
    assert fakes["coinbase"].count("/candles") == 2  # 300 + 210


@pytest.mark.parametrize("action", ["429", "500", "502", "503", "timeout", "malformed", "empty"])
def test_transient_faults_are_retried(fakes: dict[str, FakeExchange], action: str) -> None:
    for venue, path in (("binance", "/klines"), ("coinbase", "/candles"), ("kraken", "/OHLC")):
        fakes[venue].fail(action, path, times=2)
    src = source(fakes)
    candles = src.candles(DAY)
    if action == "empty":
        # an empty page is an answer, not an error: the windowed venues move on and the
        # missing minutes are a gap (found and backfilled by the incremental ingest)
        assert src.failures == []
        assert counts(candles)[("binance", "BTC/USDT")] == 10  # its first two windows
        assert counts(candles)[("binance", "ETH/USDT")] == 30
        return
    assert src.failures == [], src.failures
    assert all(n == 30 for n in counts(candles).values())


def test_persistent_faults_fail_only_that_market(fakes: dict[str, FakeExchange]) -> None:
    fakes["binance"].fail("429", "/klines", times=50)  # a 429 storm on Binance candles
    fakes["kraken"].fail("malformed", "/OHLC", times=50)
    src = source(fakes)
    candles = src.candles(DAY)
    failed = {(f["exchange"], f["dataset"]) for f in src.failures}
    assert failed == {("binance", "candles"), ("kraken", "candles")}
    assert any("RateLimitExceeded" in f["error"] for f in src.failures)
    assert set(counts(candles)) == {("coinbase", "BTC/USD"), ("coinbase", "ETH/USD")}
    # bounded: 1 attempt + 3 retries for the first market, and so on, no endless loop
    assert fakes["binance"].count("/klines") <= 2 * (FAST.retries + 1)


def test_one_exchange_down_for_the_whole_run(fakes: dict[str, FakeExchange]) -> None:
    fakes["kraken"].down = True
    src = source(fakes)
    candles = src.candles(DAY)
    trades = src.trades(DAY)
    assert {f["exchange"] for f in src.failures} == {"kraken"}
    assert {(f["symbol"], f["dataset"]) for f in src.failures} == {
        ("BTC", "candles"), ("ETH", "candles"), ("BTC", "trades"), ("ETH", "trades"),
    }  # fmt: skip
    assert "kraken" not in set(candles["exchange"]) | set(trades["exchange"])
    assert len(counts(candles)) == 4 and len(counts(trades)) == 4
    # load_markets was retried a bounded number of times, once per run (cached failure)
    assert fakes["kraken"].count("/AssetPairs") == FAST.retries + 1


def test_exchange_unreachable_and_unlisted_symbol(fakes: dict[str, FakeExchange]) -> None:
    urls = {k: v.url for k, v in fakes.items()}
    urls["coinbase"] = "http://127.0.0.1:9"  # nothing listens there
    src = LiveSource(
        VENUES, ("BTC", "SOL"), window=(START, END), exchange_urls=urls, policy=FAST,
        sleep=lambda s: None,
    )  # fmt: skip
    candles = src.candles(DAY)
    by = {(f["exchange"], f["symbol"]): f["error"] for f in src.failures}
    assert (
        "NetworkError" in by[("coinbase", "BTC")]
        or "ExchangeNotAvailable" in by[("coinbase", "BTC")]
    )
    assert "lists no dollar market for SOL" in by[("binance", "SOL")]
    assert set(counts(candles)) == {("binance", "BTC/USDT"), ("kraken", "BTC/USD")}


def test_retry_is_bounded_and_backs_off() -> None:
    calls: list[int] = []
    pauses: list[float] = []

    def flaky() -> str:
        calls.append(1)
        raise ccxt.ExchangeNotAvailable("down")

    policy = FetchPolicy(retries=3, backoff_s=0.5, max_backoff_s=1.5)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        call_with_retries(flaky, policy=policy, sleep=pauses.append)
    assert len(calls) == 4 and pauses == [0.5, 1.0, 1.5]

    def bad_symbol() -> str:
        calls.append(1)
        raise ccxt.BadSymbol("no")

    calls.clear()
    with pytest.raises(ccxt.BadSymbol):
        call_with_retries(bad_symbol, policy=policy, sleep=pauses.append)
    assert len(calls) == 1  # not transient: no retry


def test_resume_windows(fakes: dict[str, FakeExchange]) -> None:
    src = source(fakes, exchanges=("binance",), symbols=("BTC",))
    start_ms = int((START + timedelta(minutes=25)).timestamp() * 1000)
    trades = src.trades(DAY, since={("binance", "BTC/USDT"): start_ms})
    assert trades.height == 15 and trades["ts"].min() >= START + timedelta(minutes=25)
    gap = (int((START + timedelta(minutes=3)).timestamp() * 1000), start_ms)
    candles = src.candles(DAY, windows={("binance", "BTC/USDT"): [gap]})
    assert candles.height == 22
    assert src.candles(date(2000, 1, 1)).height == 0  # outside the window: nothing asked


def test_live_settings_window_and_policy(tmp_path) -> None:
    from sentinance_assets.lib.sources import build_source
    from sentinance_assets.settings import Settings

    env = {
        "SENTINANCE_HOME": str(tmp_path),
        "SENTINANCE_SOURCE": "live",
        "SENTINANCE_EXCHANGE_URL_KRAKEN": "http://127.0.0.1:8901",
        "SENTINANCE_HTTP_TIMEOUT": "3",
        "SENTINANCE_HTTP_RETRIES": "2",
    }
    settings = Settings.from_env(env)
    assert abs((settings.end - datetime.now(UTC)).total_seconds()) < 60  # live: up to now
    assert settings.days()[-1] == datetime.now(UTC).date().isoformat()
    src = build_source(settings)
    assert isinstance(src, LiveSource)
    assert src.policy.timeout_ms == 3000 and src.policy.retries == 2
    assert src.client("kraken").urls["api"]["public"] == "http://127.0.0.1:8901"
    explicit = Settings.from_env(
        {**env, "SENTINANCE_START": "2026-01-01", "SENTINANCE_END": "2026-01-02"}
    )
    assert explicit.end == datetime(2026, 1, 2, tzinfo=UTC)


def test_a_far_future_trade_in_a_full_page_neither_vanishes_nor_ends_the_paging(
    fakes: dict[str, FakeExchange],
) -> None:
    future = int((datetime.now(UTC) + timedelta(days=365)).timestamp() * 1000)
    answers: list[list] = []

    def first_page_bad(rows: list) -> list:
        if not answers:  # only the first page of the window
            rows = [*rows[:2], {**rows[2], "T": future}, *rows[3:]]
        answers.append(rows)
        return rows

    fakes["binance"].tamper = {"/aggTrades?symbol=BTCUSDT": first_page_bad}
    src = source(fakes, exchanges=("binance",), symbols=("BTC",))
    trades = src.trades(DAY)
    assert src.failures == [] and len(answers) > 3  # several pages of 10
    # paging went on to the end of the window (the future time is no page boundary) ...
    timed = trades.filter(pl.col("venue_error").is_null())
    assert timed.height == 90 - 1 and timed["trade_id"].is_duplicated().sum() == 0
    # ... and the bad trade is handed on, with what the venue sent, for the contracts
    (bad,) = trades.filter(pl.col("venue_error").is_not_null()).to_dicts()
    assert bad["ts"] == str(future) and "in the future" in bad["venue_error"]
    assert f'"T": {future}' in bad["venue_record"]


def test_overlapping_pages_are_one_copy_but_a_conflicting_copy_is_kept(
    fakes: dict[str, FakeExchange],
) -> None:
    conflicted: set[str] = set()

    def conflict(rows: list) -> list:
        # every answer repeats its first trade with another price (the venue's conflict)
        if not rows:
            return rows
        conflicted.add(str(rows[0]["a"]))
        return [*rows, {**rows[0], "p": "1.0"}]

    fakes["binance"].tamper = {"/aggTrades?symbol=BTCUSDT": conflict}
    src = source(fakes, exchanges=("binance",), symbols=("BTC",))
    trades = src.trades(DAY)
    assert trades.select("trade_id").n_unique() == 90 and len(conflicted) > 3  # many pages
    # pages overlap on their boundary trade: re-read identically, kept once; the conflicting
    # copies are all kept (the contract quarantines them), once each
    copies = trades.group_by("trade_id").len()
    assert set(copies.filter(pl.col("len") > 1)["trade_id"]) == conflicted
    assert copies["len"].max() == 2 and trades.height == 90 + len(conflicted)
