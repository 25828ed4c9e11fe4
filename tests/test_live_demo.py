"""`sentinance demo` in live mode on one- and two-day windows, against local fake exchanges and a
local feed (no internet): thin history exits 0 and says what it skipped and why, instead of
failing the run on the forecaster (which needs three days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.exchange_server import fake_exchanges
from tests.fakes.feed_server import ATOM, RSS, feed_server
from tests.test_cli import SKIPS_HEADER, counts, run


@pytest.mark.parametrize("days", [1, 2], ids=["1-day", "2-day"])
def test_short_live_demo_exits_0_and_lists_skips(tmp_path, days: int) -> None:
    day = (datetime.now(UTC) - timedelta(days=days + 1)).date()
    with fake_exchanges("binance", "coinbase") as ex, feed_server() as feeds:
        feeds.feeds["/rss"] = (
            RSS.replace("Tue, 10 Nov 2026", day.strftime("%a, %d %b %Y")),
            "application/rss+xml",
        )
        feeds.feeds["/atom"] = (ATOM.replace("2026-11-10", day.isoformat()), "application/atom+xml")
        env = {
            "SENTINANCE_HOME": str(tmp_path / "home"),
            "SENTINANCE_SOURCE": "live",
            "SENTINANCE_EXCHANGES": "binance,coinbase",
            "SENTINANCE_SYMBOLS": "BTC,ETH",
            "SENTINANCE_START": day.isoformat(),
            "SENTINANCE_END": (day + timedelta(days=days)).isoformat(),
            "SENTINANCE_EXCHANGE_URL_BINANCE": ex["binance"].url,
            "SENTINANCE_EXCHANGE_URL_COINBASE": ex["coinbase"].url,
            "SENTINANCE_NEWS_FEEDS": f"{feeds.url('/rss')},{feeds.url('/atom')}",
            "SENTINANCE_HTTP_TIMEOUT": "5",
            "SENTINANCE_HTTP_RETRIES": "1",
            "SENTINANCE_HTTP_BACKOFF": "0.01",
        }
        proc = run(["demo"], env, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert SKIPS_HEADER in proc.stdout
    skipped = proc.stdout.split(SKIPS_HEADER, 1)[1]
    assert "ml/forecaster" in skipped and "needs 3 days of hourly history" in skipped
    n = counts(env)
    assert n["raw.trades"] > 0 and n["marts.candles"] > 0 and n["raw.news"] > 0
