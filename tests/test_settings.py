from datetime import UTC, datetime

import pytest

from sentinance_assets.settings import Settings, SettingsError, default_window


def test_defaults_are_offline_and_a_week_of_full_days():
    s = Settings.from_env({})
    assert s.source == "simulated"
    assert s.exchanges == ("binance", "coinbase", "kraken")
    assert s.symbols == ("BTC", "ETH", "SOL")
    assert s.home.name == ".sentinance" and s.home.is_absolute()
    assert (s.end - s.start).days == 7
    assert s.end.hour == 0 and s.end.tzinfo is not None
    assert len(s.days()) == 7


def test_default_window_is_stable_within_a_day():
    morning = default_window(datetime(2026, 11, 22, 0, 5, tzinfo=UTC))
    evening = default_window(datetime(2026, 11, 22, 23, 55, tzinfo=UTC))
    assert morning == evening
    assert morning[1] == datetime(2026, 11, 22, tzinfo=UTC)


def test_values_are_parsed_and_normalised(tmp_path):
    s = Settings.from_env(
        {
            "SENTINANCE_HOME": str(tmp_path),
            "SENTINANCE_EXCHANGES": " Binance , kraken",
            "SENTINANCE_SYMBOLS": "btc,eth/usdt",
            "SENTINANCE_SEED": "9",
            "SENTINANCE_START": "2026-01-01T00:00:00Z",
            "SENTINANCE_END": "2026-01-02T12:00:00+02:00",
            "SENTINANCE_EXCHANGE_URL_BINANCE": "http://127.0.0.1:8901",
        }
    )
    assert s.exchanges == ("binance", "kraken")
    assert s.symbols == ("BTC", "ETH/USDT")
    assert s.seed == 9
    assert s.end == datetime(2026, 1, 2, 10, tzinfo=UTC)
    assert s.days() == ["2026-01-01", "2026-01-02"]
    assert s.exchange_urls == {"binance": "http://127.0.0.1:8901"}
    assert s.warehouse_path.parent == tmp_path


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SENTINANCE_SOURCE": "cloud"}, "SENTINANCE_SOURCE"),
        ({"SENTINANCE_SEED": "abc"}, "SENTINANCE_SEED"),
        ({"SENTINANCE_START": "yesterday"}, "SENTINANCE_START"),
        ({"SENTINANCE_START": "2026-01-02", "SENTINANCE_END": "2026-01-01"}, "SENTINANCE_END"),
        ({"SENTINANCE_EXCHANGES": ""}, "SENTINANCE_EXCHANGES"),
        ({"SENTINANCE_SYMBOLS": "BTC,$$$"}, "SENTINANCE_SYMBOLS"),
        ({"SENTINANCE_SOURCE": "replay"}, "SENTINANCE_REPLAY_DIR"),
        ({"SENTINANCE_NEWS_FEEDS": "ftp://x"}, "SENTINANCE_NEWS_FEEDS"),
        ({"SENTINANCE_EXCHANGE_URL_KRAKEN": "localhost:1"}, "SENTINANCE_EXCHANGE_URL_KRAKEN"),
    ],
)
def test_invalid_values_fail_naming_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)
