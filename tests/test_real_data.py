"""The real-data matrix: ``sentinance demo`` in replay mode on each kind of real data in
``../shared/data`` (skipped with the reason when it is absent).

Each case links the real files into a replay folder (never copies them into the repo), runs the
demo on a short window (the full-length runs live in ``benchmarks/real_data.py``) and asserts:
exit 0; marts non-empty for every market and timeframe the data allows; every ingest's counts
reconcile (received = clean + quarantined + exact duplicates); every skip names its reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

SENTINANCE = str(Path(sys.executable).parent / "sentinance")
SVB = "crypto_prices_svb_2023_1m"


@dataclass(frozen=True)
class Kind:
    name: str
    links: dict[str, str]  # replay path (under the folder) -> path under ../shared/data
    env: dict[str, str]
    # (exchange, symbol) -> the timeframes the marts must hold for it
    markets: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    news: bool = False


HOURLY = ("1h", "4h", "1d")
MINUTE = ("1m", "5m", "15m", "1h", "4h", "1d")

KINDS = [
    Kind(
        "hourly_cdd",
        {
            "candles/Binance_BTCUSDT_1h.csv": "crypto_prices_hourly_cdd/Binance_BTCUSDT_1h.csv",
            "candles/Binance_ETHUSDT_1h.csv": "crypto_prices_hourly_cdd/Binance_ETHUSDT_1h.csv",
            "candles/Gemini_BTCUSD_1h.csv": "crypto_prices_hourly_cdd/Gemini_BTCUSD_1h.csv",
            "news/crypto_news.csv": "crypto_news_googlenews_finbert_2020_2022/crypto_news.csv",
        },
        {
            "SENTINANCE_START": "2020-12-28",
            "SENTINANCE_END": "2020-12-30",
            "SENTINANCE_EXCHANGES": "binance,gemini",
            "SENTINANCE_SYMBOLS": "BTC/USDT,ETH/USDT,BTC/USD",
        },
        {
            ("binance", "BTC/USDT"): HOURLY,
            ("binance", "ETH/USDT"): HOURLY,
            ("gemini", "BTC/USD"): HOURLY,
        },
        news=True,
    ),
    Kind(
        "svb_1m_multi_venue",
        {
            "candles/binanceus/BTCUSD_1m_20230301_20230321.csv": (
                f"{SVB}/binanceus_csv/BTCUSD_1m_20230301_20230321.csv"
            ),
            "candles/kraken/BTCUSDC_1m_2023Q1.csv": (
                f"{SVB}/kraken_ohlcvt_csv/BTCUSDC_1m_2023Q1.csv"
            ),
            "candles/coinbase_btcusd.parquet": (
                f"{SVB}/binanceus_coinbase_kraken_parquet/coinbase_btcusd.parquet"
            ),
            "candles/kraken_btcusd.parquet": (
                f"{SVB}/binanceus_coinbase_kraken_parquet/kraken_btcusd.parquet"
            ),
            "candles/binanceus_btcusdt.parquet": (
                f"{SVB}/binanceus_coinbase_kraken_parquet/binanceus_btcusdt.parquet"
            ),
            "news/news_events.csv": "crypto_news_svb_2023_events/news_events.csv",
        },
        {
            "SENTINANCE_START": "2023-03-10",
            "SENTINANCE_END": "2023-03-11",
            "SENTINANCE_EXCHANGES": "binanceus,coinbase,kraken",
            "SENTINANCE_SYMBOLS": "BTC/USD,BTC/USDT,BTC/USDC",
        },
        {
            ("binanceus", "BTC/USD"): MINUTE,
            ("binanceus", "BTC/USDT"): MINUTE,
            ("coinbase", "BTC/USD"): MINUTE,
            ("kraken", "BTC/USD"): MINUTE,
            ("kraken", "BTC/USDC"): MINUTE,
        },
        news=True,
    ),
    Kind(
        "cryptonews_csv",
        {"news/cryptonews.csv": "crypto_news_cryptonews_2021_2022/cryptonews.csv"},
        {"SENTINANCE_START": "2022-05-09", "SENTINANCE_END": "2022-05-10"},
        news=True,
    ),
    Kind(
        "coindesk_rss",
        {"news/coindesk.xml": "crypto_news_rss/coindesk_rss_2026-09-25.xml"},
        {"SENTINANCE_START": "2026-09-25", "SENTINANCE_END": "2026-09-26"},
        news=True,
    ),
]


def _sentinance(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SENTINANCE, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )


def _query(sql: str, env: dict[str, str]) -> list[dict]:
    proc = _sentinance(["query", sql, "--json"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout) if proc.stdout.strip() else []


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def demo(request, tmp_path_factory) -> tuple[Kind, dict[str, str], subprocess.CompletedProcess]:
    kind: Kind = request.param
    folder = tmp_path_factory.mktemp(kind.name)
    for target, source in kind.links.items():
        real = SHARED_DATA / source
        if not real.exists():
            pytest.skip(f"real data not available: {real} is absent (needs ../shared beside it)")
        link = folder / "replay" / target
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real)
    env = {
        "SENTINANCE_HOME": str(folder / "home"),
        "SENTINANCE_SOURCE": "replay",
        "SENTINANCE_REPLAY_DIR": str(folder / "replay"),
        **kind.env,
    }
    proc = _sentinance(["demo"], env)
    return kind, env, proc


def test_demo_exits_zero(demo) -> None:
    kind, _, proc = demo
    assert proc.returncode == 0, f"{kind.name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def test_marts_hold_every_market_and_timeframe(demo) -> None:
    kind, env, proc = demo
    assert proc.returncode == 0
    if not kind.markets:
        pytest.skip(f"{kind.name} has no market data")
    rows = _query(
        "select c.exchange, c.symbol, c.timeframe, count(*) as candles, "
        "(select count(*) from marts.indicators i where i.exchange = c.exchange "
        "and i.symbol = c.symbol and i.timeframe = c.timeframe) as indicators "
        "from marts.candles c group by all",
        env,
    )
    have = {(r["exchange"], r["symbol"], r["timeframe"]): r for r in rows}
    for (exchange, symbol), timeframes in kind.markets.items():
        for tf in timeframes:
            row = have.get((exchange, symbol, tf))
            assert row and row["candles"] > 0, f"no {tf} candles for {exchange} {symbol}"
            assert row["indicators"] > 0, f"no {tf} indicators for {exchange} {symbol}"


def test_news_lands_and_is_scored(demo) -> None:
    kind, env, proc = demo
    assert proc.returncode == 0
    if not kind.news:
        pytest.skip(f"{kind.name} has no news")
    (row,) = _query(
        "select (select count(*) from raw.news) as news, "
        "(select count(*) from ml.news_sentiment) as scored",
        env,
    )
    assert row["news"] > 0 and row["scored"] == row["news"]


def test_counts_reconcile_and_skips_say_why(demo) -> None:
    kind, env, proc = demo
    assert proc.returncode == 0
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(Path(env["SENTINANCE_HOME"]) / "dagster"))
    reconciled = 0
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                evaluation = event.event_specific_data
                if evaluation.check_name == "counts_reconcile":
                    assert evaluation.passed, f"{kind.name}: {evaluation.asset_key} lost rows"
                    reconciled += 1
            if event.is_step_materialization:
                metadata = event.step_materialization_data.materialization.metadata
                if "skipped" in metadata:
                    assert str(metadata["skipped"].value).strip(), "a skip without a reason"
    assert reconciled > 0
    lines = proc.stdout.split("skipped (input too thin", 1)
    if len(lines) == 2:
        for line in lines[1].splitlines()[1:]:
            if not line.startswith("  "):
                break
            assert len(line.split(maxsplit=1)) == 2, f"skip without a reason: {line!r}"
