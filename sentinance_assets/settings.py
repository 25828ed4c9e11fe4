"""Sentinance settings: the one place that reads the environment.

Every other module receives a :class:`Settings` (or plain values taken from it). An invalid
value fails at start with a :class:`SettingsError` that names the variable, instead of
surfacing later as a confusing failure deep inside a run.

Each setting is one declared field of :class:`Settings`: its type, default, validation and help
text sit together, and pydantic-settings reads it from ``SENTINANCE_<FIELD>``. Why: the former
hand-written reader validated ``SENTINANCE_DRIFT_SHARE`` and then forgot to pass it on; with one
field per variable there is nothing to forget. The README's configuration table
(``python -m sentinance_assets.settings --readme README.md``) and ``sentinance --help`` are
rendered from the same fields, and a test keeps the README in step.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as _SourceError
from pydantic_settings.sources.utils import parse_env_vars

from sentinance_assets.lib.timestamps import TimestampError, parse_time

ENV_PREFIX = "SENTINANCE_"
EXCHANGE_URL_PREFIX = ENV_PREFIX + "EXCHANGE_URL_"
SOURCES = ("simulated", "replay", "live")
WATCH_TRANSPORTS = ("auto", "ws", "poll")
ENGINES = ("duckdb", "spark")
# local, local[N], local[*] (this machine), or a cluster master URL
_SPARK_MASTER_RE = re.compile(r"^(local(\[(\d+|\*)\])?|(spark|k8s)://\S+|yarn)$")
_SPARK_REMOTE_RE = re.compile(r"^sc://[^/:;\s]+(:\d{1,5})?/?(;\S*)?$")
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
_HTTP = ("http://", "https://")
README_START = "<!-- settings-table:start -->"
README_END = "<!-- settings-table:end -->"


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


def env_name(field_name: str) -> str:
    """The environment variable of a field (``drift_share`` -> ``SENTINANCE_DRIFT_SHARE``)."""
    return ENV_PREFIX + field_name.upper()


#: Days in the default window: two weeks, the least history on which every forecast horizon
#: (24h included: a training window of 4 x 24 rows and a hold-out of 2 x 24 + 4 after the
#: features' warm-up, :func:`ml.forecast_lifecycle.config_for`) is evaluated and served.
DEFAULT_DAYS = 14


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The :data:`DEFAULT_DAYS` full UTC days before today: runs on the same day see the same
    window."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    end = datetime.combine(today, time(0), tzinfo=UTC)
    return end - timedelta(days=DEFAULT_DAYS), end


# ---------------------------------------------------------------- field markers and validators
@dataclass(frozen=True)
class Doc:
    """How the docs show a field whose value cannot speak for itself: a computed or long
    default, or a family of variables instead of one."""

    default: str | None = None
    variable: str | None = None


class BlankIsUnset:
    """Marker: an empty (or ``None``) value means "not set", so the default applies.

    Why a marker: for most settings a blank value is a mistake worth an error (no exchanges, a
    seed of ""), but ``SENTINANCE_END=`` in a shell profile should mean "the default window"."""


_BLANK_IS_UNSET = BlankIsUnset()


def _comma_list(case: Callable[[str], str] = str) -> BeforeValidator:
    """A comma-separated variable (or a sequence given by keyword) as a tuple of trimmed,
    non-empty items; with ``NoDecode`` so pydantic-settings does not expect JSON."""

    def split(value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            items = (str(item).strip() for item in value)
            return tuple(case(item) for item in items if item)
        return value

    return BeforeValidator(split)


def _not_empty(what: str) -> AfterValidator:
    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        if not values:
            raise ValueError(f"is empty: name at least one {what}")
        return values

    return AfterValidator(check)


def _each(accept: Callable[[str], bool], problem: str) -> AfterValidator:
    """Every item of a list passes ``accept``; else the error names the first that fails."""

    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        for item in values:
            if not accept(item):
                raise ValueError(f"contains {item!r}, which {problem}")
        return values

    return AfterValidator(check)


def _one_of(options: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in options:
            raise ValueError(f"is not one of {', '.join(options)}")
        return value

    return AfterValidator(check)


def _normalised(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _stripped(text: str | None) -> str | None:
    return None if text is None else text.strip()


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else path.expanduser().resolve()


def _http_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(_HTTP):
        raise ValueError("is not an http(s) URL")
    return url


def _utc_time(value: object, info: ValidationInfo) -> datetime:
    """A window bound read by the project's one timestamp parser; its error names the variable."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC)
    what = env_name(str(info.field_name))
    if not isinstance(value, str | int | float):
        raise SettingsError(f"{what}={value!r} is not a time")
    try:
        return parse_time(value, what=what).astimezone(UTC)
    except TimestampError as exc:
        raise SettingsError(str(exc)) from None


def _existing(path: Path | None) -> Path | None:
    if path is not None and not path.exists():
        raise ValueError("does not exist")
    return path


def _a_file(path: Path) -> Path:
    if path.is_dir():
        raise ValueError("is a folder, not a file")
    return path


API_KEY_MIN_CHARS = 16


def _api_key(key: str | None) -> str | None:
    """A key long enough to resist guessing; the error never shows the value (it is a secret)."""
    if key is not None and len(key) < API_KEY_MIN_CHARS:
        raise SettingsError(
            f"SENTINANCE_API_KEY is too short ({len(key)} characters, the value is not shown): "
            f"use at least {API_KEY_MIN_CHARS}, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`"
        )
    return key


def _divides_an_hour(minutes: int) -> int:
    """Cron ``*/N`` ticks evenly only when N divides 60."""
    if 60 % minutes:
        raise ValueError("must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)")
    return minutes


def _exchange_urls(urls: Mapping[str, str]) -> dict[str, str]:
    """``SENTINANCE_EXCHANGE_URL_<ID>`` values by lower-case exchange id, each http(s)."""
    checked: dict[str, str] = {}
    for exchange, url in urls.items():
        if not url.startswith(_HTTP):
            raise SettingsError(
                f"{EXCHANGE_URL_PREFIX}{exchange.upper()}={url!r} is not an http(s) URL"
            )
        checked[exchange.lower()] = url
    return checked


def _default_end(data: dict[str, Any]) -> datetime:
    """The default window's end; in live mode it runs up to now, so that today's partition
    (refreshed every 15 minutes) is inside the window."""
    end = default_window()[1]
    return max(end, datetime.now(UTC)) if data.get("source") == "live" else end


def _default_dead_letter(data: dict[str, Any]) -> Path:
    """Under home, whatever home is (fields validate in order, and home comes first)."""
    return data["home"] / "alerts-dead-letter.jsonl"


def _default_lake_dir(data: dict[str, Any]) -> Path:
    """Under home, like every other piece of state."""
    return data["home"] / "lake"


def _default_spark_dir(data: dict[str, Any]) -> Path:
    """Under home, like every other piece of state."""
    return data["home"] / "spark"


def _engine(value: object) -> object:
    """Normalised, and one of :data:`ENGINES` (checked before the ``Literal``, so the error
    lists the choices the way the other one-of settings do)."""
    value = _normalised(value)
    if isinstance(value, str) and value not in ENGINES:
        raise ValueError(f"is not one of {', '.join(ENGINES)}")
    return value


def _spark_master(master: str) -> str:
    if not _SPARK_MASTER_RE.match(master):
        raise ValueError("is not a Spark master (local, local[N], local[*], spark://host:port)")
    return master


def _spark_remote(url: str | None) -> str | None:
    if url is not None and not _SPARK_REMOTE_RE.match(url):
        raise ValueError("is not a Spark Connect URL (sc://host:port, e.g. sc://spark:15002)")
    return url


# ------------------------------------------------------------------------------ the table
class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``from_env``'s ``environ``),
    plus the ``SENTINANCE_EXCHANGE_URL_<ID>`` family that fills ``exchange_urls``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name != "exchange_urls":
            return super().get_field_value(field, field_name)
        urls = {
            key[len(EXCHANGE_URL_PREFIX) :]: value
            for key, value in self._environ.items()
            if key.upper().startswith(EXCHANGE_URL_PREFIX) and value
        }
        return urls or None, field_name, False


class Settings(BaseSettings):
    """Every setting of Sentinance, one field each (variable ``SENTINANCE_<FIELD>``).

    Built from the environment by :meth:`from_env` only; ``Settings(home=..., ...)`` by keyword
    takes exactly the given values plus the defaults (the environment is not consulted), and is
    validated all the same. Frozen: derive a variant with :meth:`replace`.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    home: Annotated[Path, _BLANK_IS_UNSET, AfterValidator(_absolute)] = Field(
        Path("./.sentinance"),
        description="all state: lake, warehouse, MLflow store, models, checkpoints, "
        "Dagster instance",
    )
    lake_dir: Annotated[
        Path, _BLANK_IS_UNSET, AfterValidator(_absolute), Doc(default="`<home>/lake`")
    ] = Field(
        default_factory=_default_lake_dir,
        description="the lake's Parquet files (raw, quarantine, ml, alerts), e.g. on a shared "
        "mount or object storage behind a POSIX layer while the warehouse stays on local disk; "
        "`sentinance lake check` tests its file system (docs/scale-out.md)",
    )
    source: Annotated[str, BeforeValidator(_normalised), _one_of(SOURCES)] = Field(
        "simulated",
        description="`simulated` (offline), `replay` (recorded files) or `live` (ccxt REST and "
        "RSS/Atom feeds)",
    )
    exchanges: Annotated[
        tuple[str, ...],
        NoDecode,
        _comma_list(str.lower),
        _not_empty("ccxt id"),
        _each(lambda ex: bool(_EXCHANGE_RE.match(ex)), "is not a ccxt exchange id"),
    ] = Field(DEFAULT_EXCHANGES, description="comma-separated ccxt exchange ids")
    symbols: Annotated[
        tuple[str, ...],
        NoDecode,
        _comma_list(str.upper),
        _not_empty("symbol"),
        _each(
            lambda sym: bool(_SYMBOL_RE.match(sym)),
            "is neither a bare asset (BTC) nor a unified symbol (BTC/USDT)",
        ),
    ] = Field(
        DEFAULT_SYMBOLS,
        description="comma-separated bare assets (each venue's main dollar market: `BTC/USDT` on "
        "Binance, `BTC/USD` on Coinbase and Kraken) or unified symbols (`BTC/USDT`)",
    )
    seed: int = Field(42, description="seed of the simulator and the models")
    start: Annotated[
        datetime,
        _BLANK_IS_UNSET,
        BeforeValidator(_utc_time),
        Doc(default="14 days before today 00:00 UTC"),
    ] = Field(
        default_factory=lambda: default_window()[0],
        description="start of the window (UTC; ISO-8601 such as `2026-11-15` or "
        "`2026-11-15T12:00:00Z`, or epoch time)",
    )
    end: Annotated[
        datetime,
        _BLANK_IS_UNSET,
        BeforeValidator(_utc_time),
        Doc(default="today 00:00 UTC (live: now)"),
    ] = Field(
        default_factory=_default_end,
        description="end of the window, exclusive (same forms as `SENTINANCE_START`)",
    )
    replay_dir: Annotated[Path | None, _BLANK_IS_UNSET, AfterValidator(_absolute)] = Field(
        None,
        description="folder of recorded files with `trades/`, `candles/` and `news/` "
        "(required when `SENTINANCE_SOURCE=replay`)",
    )
    news_feeds: Annotated[
        tuple[str, ...],
        NoDecode,
        _comma_list(),
        _each(lambda url: url.startswith((*_HTTP, "file://")), "is not an http(s) URL"),
        Doc(default="five crypto RSS feeds"),
    ] = Field(
        DEFAULT_NEWS_FEEDS,
        description="comma-separated feed URLs (live mode); the default five are CoinDesk, "
        "Cointelegraph, Decrypt, Bitcoin Magazine and CryptoSlate",
    )
    exchange_urls: Annotated[
        Mapping[str, str],
        NoDecode,
        AfterValidator(_exchange_urls),
        Doc(variable=EXCHANGE_URL_PREFIX + "<ID>"),
    ] = Field(
        default_factory=dict,
        description="replace scheme/host/port of one exchange's API URLs (a local mirror, tests)",
    )
    sim_trade_rate: float = Field(
        6.0, gt=0, le=1000, description="mean simulated trades per minute per market"
    )
    sentiment_model: Annotated[str | None, _BLANK_IS_UNSET, AfterValidator(_stripped)] = Field(
        None,
        description="transformer that scores news: a Hugging Face id such as `ProsusAI/finbert` "
        "or a local folder; unset: the registered champion if one was trained, else VADER",
    )
    sentiment_data: Annotated[
        Path | None, _BLANK_IS_UNSET, AfterValidator(_absolute), AfterValidator(_existing)
    ] = Field(
        None,
        description="labelled sentences (CSV `text,label`, or the PhraseBank folder) for the "
        "sentiment training asset; unset: the asset skips",
    )
    http_timeout: float = Field(
        15.0, gt=0, le=600, description="timeout of each live HTTP call (exchanges, feeds), seconds"
    )
    http_retries: int = Field(
        4, ge=0, le=20, description="retries of a live HTTP call after its first attempt"
    )
    http_backoff: float = Field(
        1.0, ge=0, le=60, description="first pause before a retry, doubling each retry, seconds"
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="share of drifted model inputs that triggers retraining"
    )
    alert_webhook: Annotated[
        str | None, _BLANK_IS_UNSET, AfterValidator(_stripped), AfterValidator(_http_url)
    ] = Field(
        None,
        description="`sentinance watch` POSTs every alert to this URL (option `--webhook`)",
    )
    alert_webhook_timeout: float = Field(
        2.0, gt=0, le=600, description="timeout of each webhook call, seconds"
    )
    alert_rules: Annotated[
        Path | None,
        _BLANK_IS_UNSET,
        AfterValidator(_absolute),
        AfterValidator(_existing),
        AfterValidator(lambda path: None if path is None else _a_file(path)),
    ] = Field(
        None,
        description="alert rules file (TOML or YAML: detector parameters, per-market overrides, "
        "delivery channels; docs/alerts.md); unset: the built-in defaults",
    )
    alert_channels: Annotated[str | None, _BLANK_IS_UNSET, AfterValidator(_stripped)] = Field(
        None,
        description="Apprise URLs (space-separated: `slack://...`, `mailto://...`, `json://...`) "
        "that receive every alert, besides the rules file's channels",
    )
    alert_dead_letter: Annotated[
        Path,
        _BLANK_IS_UNSET,
        AfterValidator(_absolute),
        AfterValidator(_a_file),
        Doc(default="`<home>/alerts-dead-letter.jsonl`"),
    ] = Field(
        default_factory=_default_dead_letter,
        description="JSON-lines file of the alerts the webhook could not deliver",
    )
    watch_transport: Annotated[str, BeforeValidator(_normalised), _one_of(WATCH_TRANSPORTS)] = (
        Field(
            "auto",
            description="how live `sentinance watch` reads exchanges: `auto` (ccxt.pro websockets "
            "where available, REST backfill and fallback), `ws` (websockets required) or `poll` "
            "(REST only); option `--transport`",
        )
    )
    refresh_minutes: Annotated[int, AfterValidator(_divides_an_hour)] = Field(
        15,
        ge=1,
        le=60,
        description="live mode: minutes between refreshes of today's partition "
        "(`live_refresh_schedule`); everything downstream follows each refresh, and the "
        "freshness limits of the marts and the alert feed derive from it",
    )
    automation_interval_seconds: int = Field(
        30,
        ge=5,
        le=600,
        description="how often Dagster evaluates the automation conditions that keep the graph "
        "fresh (sensor `sentinance_automation`), seconds",
    )
    retain_trades_days: int = Field(
        14,
        ge=1,
        le=3650,
        description="days of raw trades (`lake/raw/trades`) the daily cleanup keeps; marts "
        "built from older days stay",
    )
    retain_quarantine_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="days of quarantined records (`lake/quarantine`) the daily cleanup keeps",
    )
    retain_alerts_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="days of alert files (`lake/alerts`, batch and watch loop) the daily "
        "cleanup keeps",
    )
    serve_host: str = Field(
        "127.0.0.1",
        description="`sentinance serve`: the address the Dagster UI and the app listen on",
    )
    dagster_port: int = Field(
        3000, ge=1, le=65535, description="`sentinance serve`: port of the Dagster UI"
    )
    app_port: int = Field(
        8501, ge=1, le=65535, description="`sentinance serve`: port of the Streamlit app"
    )
    code_server_port: int = Field(
        4266,
        ge=1,
        le=65535,
        description="`sentinance serve`: port of the Dagster code server (on 127.0.0.1) that "
        "the daemon and the UI share",
    )
    api_host: str = Field(
        "127.0.0.1",
        description="`sentinance api`: the address the HTTP API listens on; any address but "
        "loopback requires `SENTINANCE_API_KEY`",
    )
    api_port: int = Field(
        8000, ge=1, le=65535, description="`sentinance api`: port of the HTTP API"
    )
    api_key: Annotated[
        str | None, _BLANK_IS_UNSET, AfterValidator(_stripped), AfterValidator(_api_key)
    ] = Field(
        None,
        description="the key every `/v1` and `/metrics` request must carry (`X-API-Key: <key>` or "
        "`Authorization: Bearer <key>`; at least 16 characters); unset: no key, and the API "
        "binds loopback only",
        repr=False,  # a secret: never in a log line that prints the settings
    )
    api_cors_origins: Annotated[
        tuple[str, ...],
        NoDecode,
        _comma_list(),
        _each(lambda url: url == "*" or url.startswith(_HTTP), "is not an http(s) origin"),
        Doc(default="–"),
    ] = Field(
        (),
        description="comma-separated browser origins allowed to call the API (CORS), e.g. "
        "`https://dash.example.org`; unset: CORS off",
    )
    api_rate_limit: int = Field(
        600,
        ge=0,
        le=100_000,
        description="requests per minute per client address, with bursts up to the same "
        "number (`/health` exempt); 0: no limit",
    )
    api_max_body_kib: int = Field(
        64, ge=1, le=16384, description="largest request body the API accepts, KiB"
    )
    api_sentiment_max_texts: int = Field(
        64, ge=1, le=1000, description="most texts one `POST /v1/sentiment` may score"
    )
    api_ready_max_lag_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="live mode: `/ready` answers 503 when the watch loop lags more than this, "
        "seconds",
    )

    engine: Annotated[Literal["duckdb", "spark"], BeforeValidator(_engine)] = Field(
        "duckdb",
        description="what builds the dbt models (staging, intermediate, marts): `duckdb` "
        "(embedded) or `spark` (dbt-spark on local PySpark, needs Java 17+; the marts are then "
        "copied into the DuckDB warehouse, so readers are unchanged)",
    )
    spark_master: Annotated[str, AfterValidator(_spark_master)] = Field(
        "local[2]",
        description="`SENTINANCE_ENGINE=spark`: the Spark master of the build's session "
        "(`local[N]`: N worker threads on this machine); not used with `SENTINANCE_SPARK_REMOTE`",
    )
    spark_remote: Annotated[str | None, _BLANK_IS_UNSET, AfterValidator(_spark_remote)] = Field(
        None,
        description="`SENTINANCE_ENGINE=spark`: build on a Spark Connect server (`sc://host:port`, "
        "a cluster's or `start-connect-server.sh`) instead of a session in this process; its "
        "lake and warehouse folders must be on a filesystem both sides read "
        "(docs/scale-out.md)",
    )
    spark_shuffle_partitions: int = Field(
        4,
        ge=1,
        le=100_000,
        description="`SENTINANCE_ENGINE=spark`: `spark.sql.shuffle.partitions` (Spark's 200 "
        "suits a cluster, not a few cores)",
    )
    spark_dir: Annotated[
        Path, _BLANK_IS_UNSET, AfterValidator(_absolute), Doc(default="`<home>/spark`")
    ] = Field(
        default_factory=_default_spark_dir,
        description="`SENTINANCE_ENGINE=spark`: the Spark warehouse (tables the incremental "
        "models grow) and its embedded metastore; one Spark build at a time per folder",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _settings_error(exc, values) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: :meth:`from_env` is the one door to the environment, so a
        test's ``Settings(home=...)`` never picks up a stray ``SENTINANCE_*`` variable."""
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            key: value
            for key, value in data.items()
            if not (
                key in _blank_is_unset_fields()
                and (value is None or (isinstance(value, str) and not value.strip()))
            )
        }

    @model_validator(mode="after")
    def _check_together(self) -> Settings:
        """The rules that involve two settings."""
        if self.end <= self.start:
            raise SettingsError(
                f"SENTINANCE_END ({self.end.isoformat()}) must be after "
                f"SENTINANCE_START ({self.start.isoformat()})"
            )
        if self.source == "replay":
            if self.replay_dir is None:
                raise SettingsError(
                    "SENTINANCE_SOURCE=replay needs SENTINANCE_REPLAY_DIR (a folder with "
                    "trades/, candles/ and news/ files)"
                )
            if not self.replay_dir.is_dir():
                raise SettingsError(
                    f"SENTINANCE_REPLAY_DIR={str(self.replay_dir)!r} is not a folder"
                )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: the process environment)."""
        try:
            given = _EnvironSource(cls, os.environ if environ is None else environ)()
        except _SourceError as exc:
            raise SettingsError(str(exc)) from None
        return cls(**given)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like a new :class:`Settings` (``model_copy``
        would skip validation). Like ``dataclasses.replace``, every other value is kept as is,
        derived ones included (the dead-letter file stays under the old home)."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **changes})

    # ---- where state lives (under home; the lake is a field: it may live elsewhere) ----
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


def default_of(field_name: str) -> Any:
    """A setting's declared default, for library code that takes the value as a plain argument
    (``FetchPolicy(retries=...)``, ``WebhookSink(timeout=...)``): its own default then cannot
    drift from the table. Defaults computed from other settings (the window, the dead-letter
    file) have no value of their own and raise ``KeyError``."""
    info = Settings.model_fields[field_name]
    if info.default_factory is not None and info.default_factory_takes_validated_data:
        raise KeyError(f"{field_name}'s default depends on other settings")
    return info.get_default(call_default_factory=True)


@cache
def _blank_is_unset_fields() -> frozenset[str]:
    return frozenset(
        name
        for name, info in Settings.model_fields.items()
        if any(isinstance(m, BlankIsUnset) for m in info.metadata)
    )


# ------------------------------------------------------------------------- error messages
_NOT_AN_INTEGER = {"int_parsing", "int_type", "int_from_float"}
_NOT_A_NUMBER = {"float_parsing", "float_type", "finite_number"}
_OUT_OF_RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def interval(info: FieldInfo) -> str | None:
    """A numeric field's accepted range, e.g. ``(0, 1000]``; ``None`` when unbounded."""
    lo, hi = "(-inf", "inf)"
    for m in info.metadata:
        if isinstance(m, annotated_types.Gt):
            lo = f"({m.gt:g}"
        elif isinstance(m, annotated_types.Ge):
            lo = f"[{m.ge:g}"
        elif isinstance(m, annotated_types.Lt):
            hi = f"{m.lt:g})"
        elif isinstance(m, annotated_types.Le):
            hi = f"{m.le:g}]"
    return None if (lo, hi) == ("(-inf", "inf)") else f"{lo}, {hi}"


def _reason(field: str, error: Mapping[str, Any]) -> str:
    kind = error["type"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    if kind in _NOT_AN_INTEGER:
        return "is not an integer"
    if kind in _NOT_A_NUMBER:
        return "is not a number"
    if kind in _OUT_OF_RANGE and field in Settings.model_fields:
        return f"must be in {interval(Settings.model_fields[field])}"
    if kind == "extra_forbidden":
        return "is not a setting"
    return f"is invalid: {error['msg']}"


def _settings_error(exc: ValidationError, given: Mapping[str, Any]) -> SettingsError:
    """``exc`` as one :class:`SettingsError`, a line per invalid variable, each named."""
    lines = []
    for error in exc.errors():
        if error["type"] == "default_factory_not_called":
            continue  # a default derived from a field that failed: that field's error says it
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, SettingsError):
            lines.append(str(cause))
            continue
        field = str(error["loc"][0]) if error["loc"] else ""
        raw = given.get(field, error.get("input"))
        lines.append(f"{env_name(field)}={raw!r} {_reason(field, error)}")
    return SettingsError("\n".join(lines))


# --------------------------------------------------------------------- docs from the table
@dataclass(frozen=True)
class SettingDoc:
    """One row of the configuration table: what the README and ``--help`` show."""

    variable: str
    default: str
    meaning: str


def _shown_default(name: str, info: FieldInfo) -> str:
    """The default as the docs show it; a default computed from other settings needs a
    ``Doc(default=...)`` (else :func:`default_of` raises ``KeyError``)."""
    doc = next((m for m in info.metadata if isinstance(m, Doc)), None)
    if doc is not None and doc.default is not None:
        return doc.default
    value = default_of(name)
    if value is None or value == {}:
        return "–"
    if isinstance(value, tuple):
        return "`" + ",".join(value) + "`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, Path) and not value.is_absolute():
        return f"`./{value}`"
    return f"`{value}`"


def settings_table() -> list[SettingDoc]:
    """Every field as (variable, default, meaning), in declaration order."""
    rows = []
    for name, info in Settings.model_fields.items():
        doc = next((m for m in info.metadata if isinstance(m, Doc)), None)
        variable = doc.variable if doc is not None and doc.variable else env_name(name)
        meaning = info.description or ""
        accepted = interval(info)
        if accepted:
            meaning += f"; in {accepted}"
        rows.append(SettingDoc(variable, _shown_default(name, info), meaning))
    return rows


def settings_table_markdown() -> str:
    """The README's configuration table (between its ``settings-table`` markers)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for row in settings_table():
        cells = (f"`{row.variable}`", row.default, row.meaning)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def settings_help_epilog(width: int = 78) -> str:
    """The environment variables for ``sentinance --help`` (an argparse epilog, kept raw)."""
    lines = ["environment variables:"]
    for row in settings_table():
        default = "unset" if row.default == "–" else row.default
        lines.append(f"  {row.variable} (default: {default})".replace("`", ""))
        lines.extend(
            textwrap.wrap(
                row.meaning.replace("`", ""),
                width=width,
                initial_indent="      ",
                subsequent_indent="      ",
            )
        )
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    """``text`` (the README) with the generated table between the two markers."""
    head, start, rest = text.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        raise ValueError(f"the README lacks the markers {README_START} ... {README_END}")
    return f"{head}{README_START}\n{settings_table_markdown()}{README_END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sentinance_assets.settings``: print or refresh the configuration table."""
    parser = argparse.ArgumentParser(
        prog="python -m sentinance_assets.settings", description=main.__doc__
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print the Markdown table")
    what.add_argument("--readme", type=Path, help="rewrite the table in this README")
    args = parser.parse_args(argv)
    if args.markdown:
        print(settings_table_markdown(), end="")
    else:
        args.readme.write_text(readme_with_table(args.readme.read_text("utf-8")), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
