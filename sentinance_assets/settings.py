"""Sentinance settings: the one place that reads the environment.

Every other module receives a :class:`Settings` (or plain values taken from it). An invalid
value fails at start with a :class:`SettingsError` that names the variable, instead of
surfacing later as a confusing failure deep inside a run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

SOURCES = ("simulated", "replay", "live")
WATCH_TRANSPORTS = ("auto", "ws", "poll")
DEFAULT_EXCHANGES = ("binance", "coinbase", "kraken")
DEFAULT_SYMBOLS = ("BTC", "ETH", "SOL")
DEFAULT_NEWS_FEEDS = (
    "https://www.coindesk.com/arc/outboundfeeds/rss/",
    "https://cointelegraph.com/rss",
    "https://decrypt.co/feed",
    "https://bitcoinmagazine.com/.rss/full/",
    "https://cryptoslate.com/feed/",
)
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,12}(/[A-Z0-9]{2,12})?$")
_EXCHANGE_RE = re.compile(r"^[a-z0-9_]{2,32}$")


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


def _parse_time(name: str, raw: str) -> datetime:
    text = raw.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not an ISO-8601 time (e.g. 2026-11-15 or 2026-11-15T00:00:00Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    home: Path
    source: str = "simulated"
    exchanges: tuple[str, ...] = DEFAULT_EXCHANGES
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    seed: int = 42
    start: datetime = field(default_factory=lambda: default_window()[0])
    end: datetime = field(default_factory=lambda: default_window()[1])
    replay_dir: Path | None = None
    news_feeds: tuple[str, ...] = DEFAULT_NEWS_FEEDS
    exchange_urls: Mapping[str, str] = field(default_factory=dict)
    # Simulated trade intensity (mean trades per minute per market); tests lower it.
    sim_trade_rate: float = 6.0
    # Sentiment: a transformer to score news with (hub id such as ProsusAI/finbert, or a local
    # folder); None = the registered champion if one was trained, else VADER.
    sentiment_model: str | None = None
    # Labelled sentences (CSV text,label, or the PhraseBank folder) for the training asset;
    # None = the training asset skips.
    sentiment_data: Path | None = None
    # Live HTTP calls (exchanges and feeds): timeout per call, retries after the first
    # attempt, and the first backoff pause (doubling each retry).
    http_timeout: float = 15.0
    http_retries: int = 4
    http_backoff: float = 1.0
    # Share of drifted model inputs at which the drift sensor launches retraining.
    drift_share: float = 0.5
    # Alert delivery of `sentinance watch` (CLI options override): a webhook URL to POST
    # every alert to (None = no webhook), its timeout per call, and the dead-letter file for
    # alerts it could not deliver (from_env: <home>/alerts-dead-letter.jsonl by default).
    alert_webhook: str | None = None
    alert_webhook_timeout: float = 2.0
    alert_dead_letter: Path | None = None
    # How `sentinance watch` reads live exchanges: auto = ccxt.pro websockets where the venue
    # has them (REST backfill, polling fallback), ws = the same but a venue without websocket
    # support is an error, poll = REST polling only.
    watch_transport: str = "auto"

    # ---- where state lives (all under home) ----
    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def read_path(self) -> Path:
        return self.home / "warehouse.read.duckdb"

    @property
    def dbt_profiles_dir(self) -> Path:
        return self.home / "dbt"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow-artifacts"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"

    def days(self) -> list[str]:
        """The UTC days (YYYY-MM-DD) the window touches, i.e. the daily partitions to fill."""
        first = self.start.date()
        last = (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        home = Path(env.get("SENTINANCE_HOME", "./.sentinance")).expanduser().resolve()

        source = env.get("SENTINANCE_SOURCE", "simulated").strip().lower()
        if source not in SOURCES:
            raise SettingsError(f"SENTINANCE_SOURCE={source!r} is not one of {', '.join(SOURCES)}")

        exchanges = _csv(env.get("SENTINANCE_EXCHANGES", ",".join(DEFAULT_EXCHANGES)).lower())
        if not exchanges:
            raise SettingsError("SENTINANCE_EXCHANGES is empty: name at least one ccxt id")
        for ex in exchanges:
            if not _EXCHANGE_RE.match(ex):
                raise SettingsError(f"SENTINANCE_EXCHANGES: {ex!r} is not a ccxt exchange id")

        symbols = _csv(env.get("SENTINANCE_SYMBOLS", ",".join(DEFAULT_SYMBOLS)).upper())
        if not symbols:
            raise SettingsError("SENTINANCE_SYMBOLS is empty: name at least one symbol")
        for sym in symbols:
            if not _SYMBOL_RE.match(sym):
                raise SettingsError(
                    f"SENTINANCE_SYMBOLS: {sym!r} is neither a bare asset (BTC) "
                    "nor a unified symbol (BTC/USDT)"
                )

        raw_seed = env.get("SENTINANCE_SEED", "42")
        try:
            seed = int(raw_seed)
        except ValueError:
            raise SettingsError(f"SENTINANCE_SEED={raw_seed!r} is not an integer") from None

        default_start, default_end = default_window()
        start = (
            _parse_time("SENTINANCE_START", env["SENTINANCE_START"])
            if env.get("SENTINANCE_START")
            else default_start
        )
        end = (
            _parse_time("SENTINANCE_END", env["SENTINANCE_END"])
            if env.get("SENTINANCE_END")
            else default_end
        )
        if end <= start:
            raise SettingsError(
                f"SENTINANCE_END ({end.isoformat()}) must be after "
                f"SENTINANCE_START ({start.isoformat()})"
            )

        replay_raw = env.get("SENTINANCE_REPLAY_DIR")
        replay_dir = Path(replay_raw).expanduser().resolve() if replay_raw else None
        if source == "replay":
            if replay_dir is None:
                raise SettingsError(
                    "SENTINANCE_SOURCE=replay needs SENTINANCE_REPLAY_DIR (a folder with "
                    "trades/, candles/ and news/ files)"
                )
            if not replay_dir.is_dir():
                raise SettingsError(f"SENTINANCE_REPLAY_DIR={replay_raw!r} is not a folder")

        feeds = _csv(env.get("SENTINANCE_NEWS_FEEDS", ",".join(DEFAULT_NEWS_FEEDS)))
        for url in feeds:
            if not url.startswith(("http://", "https://", "file://")):
                raise SettingsError(f"SENTINANCE_NEWS_FEEDS: {url!r} is not an http(s) URL")

        exchange_urls: dict[str, str] = {}
        for key, value in env.items():
            if key.startswith("SENTINANCE_EXCHANGE_URL_") and value:
                if not value.startswith(("http://", "https://")):
                    raise SettingsError(f"{key}={value!r} is not an http(s) URL")
                exchange_urls[key.removeprefix("SENTINANCE_EXCHANGE_URL_").lower()] = value

        raw_rate = env.get("SENTINANCE_SIM_TRADE_RATE", "6")
        try:
            sim_trade_rate = float(raw_rate)
        except ValueError:
            raise SettingsError(f"SENTINANCE_SIM_TRADE_RATE={raw_rate!r} is not a number") from None
        if not 0 < sim_trade_rate <= 1000:
            raise SettingsError("SENTINANCE_SIM_TRADE_RATE must be in (0, 1000]")

        try:
            http_timeout = float(env.get("SENTINANCE_HTTP_TIMEOUT", "15"))
            http_retries = int(env.get("SENTINANCE_HTTP_RETRIES", "4"))
            http_backoff = float(env.get("SENTINANCE_HTTP_BACKOFF", "1"))
        except ValueError:
            raise SettingsError(
                "SENTINANCE_HTTP_TIMEOUT / SENTINANCE_HTTP_BACKOFF must be numbers (seconds) "
                "and SENTINANCE_HTTP_RETRIES an integer"
            ) from None
        if not (0 < http_timeout <= 600 and 0 <= http_retries <= 20 and 0 <= http_backoff <= 60):
            raise SettingsError(
                "SENTINANCE_HTTP_TIMEOUT must be in (0, 600], SENTINANCE_HTTP_RETRIES in "
                "[0, 20] and SENTINANCE_HTTP_BACKOFF in [0, 60]"
            )

        sentiment_model = env.get("SENTINANCE_SENTIMENT_MODEL", "").strip() or None
        data_raw = env.get("SENTINANCE_SENTIMENT_DATA", "").strip()
        sentiment_data = Path(data_raw).expanduser().resolve() if data_raw else None
        if sentiment_data is not None and not sentiment_data.exists():
            raise SettingsError(f"SENTINANCE_SENTIMENT_DATA={data_raw!r} does not exist")

        # Live mode: without an explicit SENTINANCE_END the window runs up to now, so today's
        # partition (refreshed every 15 minutes) is inside it.
        if source == "live" and not env.get("SENTINANCE_END"):
            end = max(end, datetime.now(UTC))

        alert_webhook = env.get("SENTINANCE_ALERT_WEBHOOK", "").strip() or None
        if alert_webhook is not None and not alert_webhook.startswith(("http://", "https://")):
            raise SettingsError(f"SENTINANCE_ALERT_WEBHOOK={alert_webhook!r} is not an http(s) URL")
        raw_wh_timeout = env.get("SENTINANCE_ALERT_WEBHOOK_TIMEOUT", "2")
        try:
            alert_webhook_timeout = float(raw_wh_timeout)
        except ValueError:
            raise SettingsError(
                f"SENTINANCE_ALERT_WEBHOOK_TIMEOUT={raw_wh_timeout!r} is not a number (seconds)"
            ) from None
        if not 0 < alert_webhook_timeout <= 600:
            raise SettingsError("SENTINANCE_ALERT_WEBHOOK_TIMEOUT must be in (0, 600] seconds")
        dead_raw = env.get("SENTINANCE_ALERT_DEAD_LETTER", "").strip()
        alert_dead_letter = (
            Path(dead_raw).expanduser().resolve() if dead_raw else home / "alerts-dead-letter.jsonl"
        )
        if alert_dead_letter.is_dir():
            raise SettingsError(
                f"SENTINANCE_ALERT_DEAD_LETTER={dead_raw!r} is a folder, not a file"
            )

        watch_transport = env.get("SENTINANCE_WATCH_TRANSPORT", "auto").strip().lower()
        if watch_transport not in WATCH_TRANSPORTS:
            raise SettingsError(
                f"SENTINANCE_WATCH_TRANSPORT={watch_transport!r} is not one of "
                f"{', '.join(WATCH_TRANSPORTS)}"
            )

        raw_share = env.get("SENTINANCE_DRIFT_SHARE", "0.5")
        try:
            drift_share = float(raw_share)
        except ValueError:
            raise SettingsError(f"SENTINANCE_DRIFT_SHARE={raw_share!r} is not a number") from None
        if not 0 < drift_share <= 1:
            raise SettingsError("SENTINANCE_DRIFT_SHARE must be in (0, 1]")

        return cls(
            home=home,
            source=source,
            exchanges=exchanges,
            symbols=symbols,
            seed=seed,
            start=start,
            end=end,
            replay_dir=replay_dir,
            news_feeds=feeds,
            exchange_urls=exchange_urls,
            sim_trade_rate=sim_trade_rate,
            http_timeout=http_timeout,
            http_retries=http_retries,
            http_backoff=http_backoff,
            sentiment_model=sentiment_model,
            sentiment_data=sentiment_data,
            alert_webhook=alert_webhook,
            alert_webhook_timeout=alert_webhook_timeout,
            alert_dead_letter=alert_dead_letter,
            watch_transport=watch_transport,
        )


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The 7 full UTC days before today: runs on the same day see the same window."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    end = datetime.combine(today, time(0), tzinfo=UTC)
    return end - timedelta(days=7), end
