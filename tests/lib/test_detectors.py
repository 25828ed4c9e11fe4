from datetime import UTC, datetime

import polars as pl

from sentinance_assets.lib.detectors import DetectorConfig, detect_all
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.simulator import MarketSimulator

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def test_alerts_match_injected_events_and_ids_are_stable():
    from datetime import date

    sim = MarketSimulator(
        markets_for(("binance", "coinbase", "kraken"), ("BTC", "ETH")), seed=3, trade_rate=4.0
    )
    day = sim.day(date(2026, 11, 10))
    alerts = detect_all(day.trades, DetectorConfig(), NOW)
    whales = alerts.filter(pl.col("type") == "whale")
    truth = day.events.filter(pl.col("type") == "whale")
    assert sorted(whales["event_time"].to_list()) == sorted(truth["start_ts"].to_list())
    div_truth = day.events.filter(pl.col("type") == "divergence")
    div = alerts.filter(pl.col("type") == "divergence")
    for ev in div_truth.iter_rows(named=True):
        hit = div.filter(
            (pl.col("exchange") == ev["exchange"])
            & pl.col("event_time").is_between(ev["start_ts"], ev["end_ts"])
        )
        assert hit.height >= 1, ev
    again = detect_all(day.trades, DetectorConfig(), NOW)
    assert again["alert_id"].to_list() == alerts["alert_id"].to_list()
    assert alerts["alert_id"].n_unique() == alerts.height
