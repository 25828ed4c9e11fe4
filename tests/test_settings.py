"""The settings table: every variable reaches the settings object, every rule names its
variable, the defaults hold, and the README and ``sentinance --help`` show the same table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentinance_assets.cli import build_parser
from sentinance_assets.settings import (
    DEFAULT_EXCHANGES,
    DEFAULT_NEWS_FEEDS,
    DEFAULT_SYMBOLS,
    README_END,
    README_START,
    Settings,
    SettingsError,
    default_of,
    default_window,
    env_name,
    readme_with_table,
    settings_table,
    settings_table_markdown,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_are_offline_and_two_weeks_of_full_days():
    s = Settings.from_env({})
    assert s.source == "simulated"
    assert s.exchanges == ("binance", "coinbase", "kraken")
    assert s.symbols == ("BTC", "ETH", "SOL")
    assert s.home.name == ".sentinance" and s.home.is_absolute()
    assert (s.end - s.start).days == 14
    assert s.end.hour == 0 and s.end.tzinfo is not None
    assert len(s.days()) == 14


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


# ---------------------------------------------------------------- every variable gets through
# field -> (environment, expected value); each value differs from the field's default, so the
# test fails if the variable is validated and then dropped (SENTINANCE_DRIFT_SHARE was).
Case = Callable[[Path], tuple[dict[str, str], Any]]


def _file(path: Path) -> Path:
    path.write_text("")
    return path


EVERY_VARIABLE: dict[str, Case] = {
    "home": lambda t: ({"SENTINANCE_HOME": str(t / "h")}, t / "h"),
    "source": lambda t: ({"SENTINANCE_SOURCE": " Live "}, "live"),
    "exchanges": lambda t: ({"SENTINANCE_EXCHANGES": "okx,bybit"}, ("okx", "bybit")),
    "symbols": lambda t: ({"SENTINANCE_SYMBOLS": "doge"}, ("DOGE",)),
    "seed": lambda t: ({"SENTINANCE_SEED": "9"}, 9),
    "start": lambda t: (
        {"SENTINANCE_START": "2026-01-01T06:00:00Z"},
        datetime(2026, 1, 1, 6, tzinfo=UTC),
    ),
    "end": lambda t: ({"SENTINANCE_END": "2099-01-01"}, datetime(2099, 1, 1, tzinfo=UTC)),
    "replay_dir": lambda t: ({"SENTINANCE_REPLAY_DIR": str(t)}, t),
    "news_feeds": lambda t: (
        {"SENTINANCE_NEWS_FEEDS": "http://a/rss, file:///b.xml"},
        ("http://a/rss", "file:///b.xml"),
    ),
    "exchange_urls": lambda t: (
        {"SENTINANCE_EXCHANGE_URL_OKX": "http://127.0.0.1:1"},
        {"okx": "http://127.0.0.1:1"},
    ),
    "sim_trade_rate": lambda t: ({"SENTINANCE_SIM_TRADE_RATE": "1.5"}, 1.5),
    "sentiment_model": lambda t: (
        {"SENTINANCE_SENTIMENT_MODEL": "ProsusAI/finbert"},
        "ProsusAI/finbert",
    ),
    "sentiment_data": lambda t: ({"SENTINANCE_SENTIMENT_DATA": str(t)}, t),
    "http_timeout": lambda t: ({"SENTINANCE_HTTP_TIMEOUT": "3"}, 3.0),
    "http_retries": lambda t: ({"SENTINANCE_HTTP_RETRIES": "0"}, 0),
    "http_backoff": lambda t: ({"SENTINANCE_HTTP_BACKOFF": "0.25"}, 0.25),
    "drift_share": lambda t: ({"SENTINANCE_DRIFT_SHARE": "0.2"}, 0.2),
    "alert_webhook": lambda t: (
        {"SENTINANCE_ALERT_WEBHOOK": "https://hooks.test/x"},
        "https://hooks.test/x",
    ),
    "alert_webhook_timeout": lambda t: ({"SENTINANCE_ALERT_WEBHOOK_TIMEOUT": "7"}, 7.0),
    "alert_rules": lambda t: ({"SENTINANCE_ALERT_RULES": str(_file(t / "r.toml"))}, t / "r.toml"),
    "alert_channels": lambda t: ({"SENTINANCE_ALERT_CHANNELS": " json://h/x "}, "json://h/x"),
    "alert_dead_letter": lambda t: (
        {"SENTINANCE_ALERT_DEAD_LETTER": str(t / "d.jsonl")},
        t / "d.jsonl",
    ),
    "watch_transport": lambda t: ({"SENTINANCE_WATCH_TRANSPORT": "POLL"}, "poll"),
    "refresh_minutes": lambda t: ({"SENTINANCE_REFRESH_MINUTES": "2"}, 2),
    "automation_interval_seconds": lambda t: (
        {"SENTINANCE_AUTOMATION_INTERVAL_SECONDS": "10"},
        10,
    ),
    "retain_trades_days": lambda t: ({"SENTINANCE_RETAIN_TRADES_DAYS": "3"}, 3),
    "retain_quarantine_days": lambda t: ({"SENTINANCE_RETAIN_QUARANTINE_DAYS": "4"}, 4),
    "retain_alerts_days": lambda t: ({"SENTINANCE_RETAIN_ALERTS_DAYS": "5"}, 5),
    "serve_host": lambda t: ({"SENTINANCE_SERVE_HOST": "0.0.0.0"}, "0.0.0.0"),
    "dagster_port": lambda t: ({"SENTINANCE_DAGSTER_PORT": "3100"}, 3100),
    "app_port": lambda t: ({"SENTINANCE_APP_PORT": "8600"}, 8600),
    "code_server_port": lambda t: ({"SENTINANCE_CODE_SERVER_PORT": "4300"}, 4300),
    "api_host": lambda t: ({"SENTINANCE_API_HOST": "0.0.0.0"}, "0.0.0.0"),
    "api_port": lambda t: ({"SENTINANCE_API_PORT": "8100"}, 8100),
    "api_key": lambda t: ({"SENTINANCE_API_KEY": " k" * 10}, "k k k k k k k k k k"),
    "api_cors_origins": lambda t: (
        {"SENTINANCE_API_CORS_ORIGINS": "https://a.test, http://b.test:8080"},
        ("https://a.test", "http://b.test:8080"),
    ),
    "api_rate_limit": lambda t: ({"SENTINANCE_API_RATE_LIMIT": "0"}, 0),
    "api_max_body_kib": lambda t: ({"SENTINANCE_API_MAX_BODY_KIB": "2"}, 2),
    "api_sentiment_max_texts": lambda t: ({"SENTINANCE_API_SENTIMENT_MAX_TEXTS": "5"}, 5),
    "api_ready_max_lag_seconds": lambda t: ({"SENTINANCE_API_READY_MAX_LAG_SECONDS": "30"}, 30.0),
    "engine": lambda t: ({"SENTINANCE_ENGINE": " Spark "}, "spark"),
    "spark_master": lambda t: ({"SENTINANCE_SPARK_MASTER": "local[4]"}, "local[4]"),
    "spark_remote": lambda t: (
        {"SENTINANCE_SPARK_REMOTE": "sc://spark-connect:15002"},
        "sc://spark-connect:15002",
    ),
    "spark_shuffle_partitions": lambda t: ({"SENTINANCE_SPARK_SHUFFLE_PARTITIONS": "8"}, 8),
    "spark_dir": lambda t: ({"SENTINANCE_SPARK_DIR": str(t / "s")}, t / "s"),
    "lake_dir": lambda t: ({"SENTINANCE_LAKE_DIR": str(t / "mnt" / "lake")}, t / "mnt" / "lake"),
}


def test_the_cases_cover_every_field():
    assert set(EVERY_VARIABLE) == set(Settings.model_fields)


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_variable_reaches_the_settings(field, tmp_path):
    env, expected = EVERY_VARIABLE[field](tmp_path.resolve())
    defaults = Settings.from_env({"SENTINANCE_HOME": str(tmp_path)})
    assert getattr(defaults, field) != expected, "the case must differ from the default"
    got = getattr(Settings.from_env(env), field)
    assert got == expected
    assert type(got) is type(expected) or isinstance(got, Path)


def test_drift_share_is_not_dropped():
    assert Settings.from_env({"SENTINANCE_DRIFT_SHARE": "0.2"}).drift_share == 0.2


# ---------------------------------------------------------------------- defaults unchanged
def test_defaults_are_unchanged(tmp_path):
    s = Settings.from_env({"SENTINANCE_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert Settings.from_env({}).home == Path("./.sentinance").resolve()
    assert (s.source, s.seed, s.watch_transport) == ("simulated", 42, "auto")
    assert s.exchanges == DEFAULT_EXCHANGES == ("binance", "coinbase", "kraken")
    assert s.symbols == DEFAULT_SYMBOLS == ("BTC", "ETH", "SOL")
    assert s.news_feeds == DEFAULT_NEWS_FEEDS and len(s.news_feeds) == 5
    assert (s.start, s.end) == default_window()
    assert s.replay_dir is None and s.exchange_urls == {}
    assert s.sentiment_model is None and s.sentiment_data is None
    assert (s.sim_trade_rate, s.drift_share) == (6.0, 0.5)
    assert (s.http_timeout, s.http_retries, s.http_backoff) == (15.0, 4, 1.0)
    assert (s.alert_webhook, s.alert_webhook_timeout) == (None, 2.0)
    assert s.alert_dead_letter == tmp_path.resolve() / "alerts-dead-letter.jsonl"
    assert s.lake_dir == tmp_path.resolve() / "lake"


def test_live_mode_runs_up_to_now_unless_end_is_set():
    before = datetime.now(UTC)
    assert Settings.from_env({"SENTINANCE_SOURCE": "live"}).end >= before
    pinned = Settings.from_env({"SENTINANCE_SOURCE": "live", "SENTINANCE_END": "2099-01-01"})
    assert pinned.end == datetime(2099, 1, 1, tzinfo=UTC)
    assert Settings.from_env({}).end < before


@pytest.mark.parametrize(
    "field",
    [
        "home",
        "lake_dir",
        "start",
        "end",
        "replay_dir",
        "sentiment_model",
        "sentiment_data",
        "alert_webhook",
    ],
)
def test_a_blank_optional_variable_means_the_default(field, tmp_path):
    env = {"SENTINANCE_HOME": str(tmp_path), env_name(field): " "}
    if field == "home":
        env = {"SENTINANCE_HOME": ""}
    blank = Settings.from_env(env)
    unset = Settings.from_env({k: v for k, v in env.items() if k != env_name(field)})
    assert getattr(blank, field) == getattr(unset, field)


def test_blank_news_feeds_means_no_feeds():
    assert Settings.from_env({"SENTINANCE_NEWS_FEEDS": ""}).news_feeds == ()


# ------------------------------------------------------------------ errors name the variable
@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SENTINANCE_SOURCE": "cloud"}, "SENTINANCE_SOURCE"),
        ({"SENTINANCE_SEED": "abc"}, "SENTINANCE_SEED"),
        ({"SENTINANCE_START": "yesterday"}, "SENTINANCE_START"),
        ({"SENTINANCE_END": "tomorrow"}, "SENTINANCE_END"),
        ({"SENTINANCE_START": "2026-01-02", "SENTINANCE_END": "2026-01-01"}, "SENTINANCE_END"),
        ({"SENTINANCE_EXCHANGES": ""}, "SENTINANCE_EXCHANGES"),
        ({"SENTINANCE_EXCHANGES": "binance,Not An Id!"}, "SENTINANCE_EXCHANGES"),
        ({"SENTINANCE_SYMBOLS": "BTC,$$$"}, "SENTINANCE_SYMBOLS"),
        ({"SENTINANCE_SYMBOLS": " , "}, "SENTINANCE_SYMBOLS"),
        ({"SENTINANCE_SOURCE": "replay"}, "SENTINANCE_REPLAY_DIR"),
        (
            {"SENTINANCE_SOURCE": "replay", "SENTINANCE_REPLAY_DIR": "/no/such"},
            "SENTINANCE_REPLAY_DIR",
        ),
        ({"SENTINANCE_NEWS_FEEDS": "ftp://x"}, "SENTINANCE_NEWS_FEEDS"),
        ({"SENTINANCE_EXCHANGE_URL_KRAKEN": "localhost:1"}, "SENTINANCE_EXCHANGE_URL_KRAKEN"),
        ({"SENTINANCE_SIM_TRADE_RATE": "fast"}, "SENTINANCE_SIM_TRADE_RATE"),
        ({"SENTINANCE_SIM_TRADE_RATE": "0"}, "SENTINANCE_SIM_TRADE_RATE"),
        ({"SENTINANCE_SIM_TRADE_RATE": "1001"}, "SENTINANCE_SIM_TRADE_RATE"),
        ({"SENTINANCE_SENTIMENT_DATA": "/no/such/file.csv"}, "SENTINANCE_SENTIMENT_DATA"),
        ({"SENTINANCE_HTTP_TIMEOUT": "0"}, "SENTINANCE_HTTP_TIMEOUT"),
        ({"SENTINANCE_HTTP_TIMEOUT": "soon"}, "SENTINANCE_HTTP_TIMEOUT"),
        ({"SENTINANCE_HTTP_RETRIES": "21"}, "SENTINANCE_HTTP_RETRIES"),
        ({"SENTINANCE_HTTP_RETRIES": "2.5"}, "SENTINANCE_HTTP_RETRIES"),
        ({"SENTINANCE_HTTP_BACKOFF": "-1"}, "SENTINANCE_HTTP_BACKOFF"),
        ({"SENTINANCE_DRIFT_SHARE": "half"}, "SENTINANCE_DRIFT_SHARE"),
        ({"SENTINANCE_DRIFT_SHARE": "0"}, "SENTINANCE_DRIFT_SHARE"),
        ({"SENTINANCE_DRIFT_SHARE": "1.5"}, "SENTINANCE_DRIFT_SHARE"),
        ({"SENTINANCE_ALERT_WEBHOOK": "hooks.test/x"}, "SENTINANCE_ALERT_WEBHOOK"),
        ({"SENTINANCE_ALERT_WEBHOOK_TIMEOUT": "0"}, "SENTINANCE_ALERT_WEBHOOK_TIMEOUT"),
        ({"SENTINANCE_ALERT_WEBHOOK_TIMEOUT": "x"}, "SENTINANCE_ALERT_WEBHOOK_TIMEOUT"),
        ({"SENTINANCE_ALERT_DEAD_LETTER": "/"}, "SENTINANCE_ALERT_DEAD_LETTER"),
        ({"SENTINANCE_WATCH_TRANSPORT": "carrier-pigeon"}, "SENTINANCE_WATCH_TRANSPORT"),
        ({"SENTINANCE_API_KEY": "too-short"}, "SENTINANCE_API_KEY"),
        ({"SENTINANCE_API_CORS_ORIGINS": "evil.test"}, "SENTINANCE_API_CORS_ORIGINS"),
        ({"SENTINANCE_API_RATE_LIMIT": "-1"}, "SENTINANCE_API_RATE_LIMIT"),
        ({"SENTINANCE_API_MAX_BODY_KIB": "0"}, "SENTINANCE_API_MAX_BODY_KIB"),
    ],
)
def test_invalid_values_fail_naming_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_a_short_api_key_is_refused_without_showing_it():
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"SENTINANCE_API_KEY": "sekrit-value"})
    assert "SENTINANCE_API_KEY is too short" in str(exc.value)
    assert "sekrit" not in str(exc.value)
    assert "k" * 20 not in repr(Settings.from_env({"SENTINANCE_API_KEY": "k" * 20}))


def test_error_messages_read_well():
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"SENTINANCE_SEED": "x"})
    assert str(exc.value) == "SENTINANCE_SEED='x' is not an integer"
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"SENTINANCE_DRIFT_SHARE": "2"})
    assert str(exc.value) == "SENTINANCE_DRIFT_SHARE='2' must be in (0, 1]"
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"SENTINANCE_START": "soon"})
    assert str(exc.value).startswith("SENTINANCE_START='soon' is not a time; accepted: epoch")


def test_every_invalid_variable_is_reported_at_once():
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"SENTINANCE_SEED": "x", "SENTINANCE_DRIFT_SHARE": "y"})
    assert str(exc.value).splitlines() == [
        "SENTINANCE_SEED='x' is not an integer",
        "SENTINANCE_DRIFT_SHARE='y' is not a number",
    ]


# ------------------------------------------------------------- keyword construction, replace
def test_keyword_construction_ignores_the_environment_and_validates(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINANCE_SEED", "9")
    s = Settings(home=tmp_path, source="replay", replay_dir=tmp_path, symbols=["btc"])
    assert (s.seed, s.source, s.symbols) == (42, "replay", ("BTC",))
    assert s.alert_dead_letter == tmp_path.resolve() / "alerts-dead-letter.jsonl"
    assert Settings.from_env().seed == 9
    with pytest.raises(SettingsError, match="SENTINANCE_DRIFT_SHARE"):
        Settings(home=tmp_path, drift_share=3)
    with pytest.raises(SettingsError, match="SENTINANCE_COLOUR"):
        Settings(home=tmp_path, colour="blue")


def test_settings_are_frozen_and_replace_validates(tmp_path):
    s = Settings(home=tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        s.seed = 1
    other = s.replace(drift_share=0.2, sentiment_data=tmp_path)
    assert (other.drift_share, other.sentiment_data, other.home) == (0.2, tmp_path, s.home)
    assert s.drift_share == 0.5
    with pytest.raises(SettingsError, match="SENTINANCE_DRIFT_SHARE"):
        s.replace(drift_share=0)


def test_window_bounds_given_as_datetimes_become_utc(tmp_path):
    naive = datetime(2026, 1, 1)
    s = Settings(home=tmp_path, start=naive, end=naive + timedelta(days=1))
    assert s.start == datetime(2026, 1, 1, tzinfo=UTC) and s.start.tzinfo is UTC


def test_library_defaults_come_from_the_table():
    from sentinance_assets.lib.detection.sinks import WebhookSink
    from sentinance_assets.lib.sources.exchanges import FetchPolicy

    policy = FetchPolicy()
    assert policy.timeout_ms == default_of("http_timeout") * 1000
    assert (policy.retries, policy.backoff_s) == (
        default_of("http_retries"),
        default_of("http_backoff"),
    )
    assert WebhookSink("http://x", Path("d")).timeout == default_of("alert_webhook_timeout")
    with pytest.raises(KeyError):
        default_of("end")


# ------------------------------------------------------------------- one table, three views
def test_every_setting_has_help_text():
    for name, info in Settings.model_fields.items():
        assert info.description and len(info.description) > 10, f"{name} has no help text"


def test_the_readme_table_is_the_generated_one():
    text = README.read_text("utf-8")
    assert README_START in text and README_END in text
    assert text == readme_with_table(text), (
        "README's configuration table is stale: run "
        "`python -m sentinance_assets.settings --readme README.md`"
    )
    table = text.split(README_START)[1].split(README_END)[0]
    assert table.strip() == settings_table_markdown().strip()


def test_help_lists_every_variable_with_its_default_and_help():
    text = " ".join(build_parser().format_help().split())
    for row in settings_table():
        assert f"{row.variable} (default: " in text
        first_words = " ".join(row.meaning.replace("`", "").split()[:4])
        assert first_words in text
    assert "SENTINANCE_DRIFT_SHARE (default: 0.5)" in text
