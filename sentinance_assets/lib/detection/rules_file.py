"""The alert rules file: every detector parameter, per-market overrides and delivery.

A TOML or YAML file (path in ``SENTINANCE_ALERT_RULES``; the built-in defaults when unset)
read by the batch asset, the watch loop, ``sentinance detect`` and ``sentinance backtest``::

    [volume_spike]
    z = 3.0                       # every key is optional: the default applies

    [[overrides]]                 # per exchange and/or symbol (asset BTC or market BTC/USDT)
    symbol = "BTC"
    whale.usd = 500_000

    [[divergence.pairs]]          # per venue pair
    venues = ["binanceus", "coinbase"]
    pct = 1.0

    [[delivery.channels]]         # where alerts go (see delivery.py)
    name = "desk"
    url_env = "DESK_SLACK_URL"

The schema is a set of pydantic models (strict: ``"3"`` is not a number, ``5.0`` is not an
integer; unknown keys are errors). Loading validates everything at once and raises
:class:`RulesError`, one line per problem, each naming the file, the line and the key
(``rules.toml:12: volume_spike.z = -1: Input should be greater than 0``).

The *rules version* (:attr:`Rules.version`) is the content hash of the effective detector
configuration (:func:`~.rules.rules_version`): comments, layout and the delivery section do not
change it; any detector value does. Every alert records it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic import model_validator as _model_validator
from pydantic.fields import FieldInfo

from sentinance_assets.lib.detection.rules import (
    OVERRIDABLE,
    DetectorConfig,
    MarketOverride,
)

AlertType = Literal["whale", "volume_spike", "divergence", "pump_and_dump", "wash_trading"]
Severity = Literal["warning", "critical"]
BUILT_IN = "built-in defaults"


class RulesError(ValueError):
    """The rules file is invalid; one line per problem, each with file, line and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ------------------------------------------------------------------------ detector sections
class WhaleRules(_Strict):
    enabled: bool = Field(default=True, description="alert on single large trades")
    usd: float = Field(default=100_000.0, gt=0, description="minimum USD notional of one trade")
    critical_ratio: float = Field(
        default=10.0, ge=1, description="critical from this multiple of the threshold"
    )


class VolumeSpikeRules(_Strict):
    enabled: bool = Field(default=True, description="alert on bursts of volume and trade count")
    z: float = Field(
        default=0.25,
        gt=0,
        le=100,
        description="robust z of ln(1 + USD volume) of a 60 s window against the hour",
    )
    min_ratio: float = Field(
        default=3.0, ge=0, description="and at least this multiple of the hourly median"
    )
    history: int = Field(
        # history + cooldown stay within the engine's 3 h retention
        default=60,
        ge=5,
        le=90,
        description="60 s windows in the rolling baseline",
    )
    min_count_ratio: float = Field(
        default=6.0, ge=0, description="trade count at least this multiple of its hourly median"
    )
    min_trades: int = Field(
        default=5, ge=1, description="and at least this many trades in the window"
    )
    count_z: float = Field(
        default=4.0, ge=0, description="Poisson z of the trade count against its hourly median"
    )
    cooldown: int = Field(
        default=1,
        ge=1,
        le=60,
        description="no alert when one of the last N windows qualified (one per burst)",
    )
    critical_ratio: float = Field(
        default=16.0, ge=1, description="critical from this multiple of z"
    )
    log_scale_floor: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="smallest spread of ln(1 + USD volume) a z is measured against",
    )


class VenuePair(_Strict):
    venues: tuple[str, str] = Field(description="two exchange ids")
    pct: float = Field(gt=0, le=100, description="divergence threshold for this pair, %")

    @field_validator("venues")
    @classmethod
    def _two_venues(cls, v: tuple[str, str]) -> tuple[str, str]:
        if v[0] == v[1]:
            raise ValueError("a pair needs two different venues")
        return (v[0].lower(), v[1].lower())


class DivergenceRules(_Strict):
    enabled: bool = Field(default=True, description="alert when a venue's price leaves the others'")
    pct: float = Field(
        default=0.5, gt=0, le=100, description="|VWAP / reference - 1| in % that opens an episode"
    )
    min_windows: int = Field(
        default=2, ge=1, le=120, description="30 s windows an episode must last"
    )
    carry: int = Field(
        default=4, ge=0, le=20, description="windows a quiet venue's last VWAP stands in"
    )
    critical_ratio: float = Field(
        default=2.0, ge=1, description="critical from this multiple of pct"
    )
    pairs: tuple[VenuePair, ...] = Field(default=(), description="thresholds per venue pair")
    quote_max_age_s: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="oldest USD-leg price (USDC/USD) that values the markets quoted in it",
    )


class PumpRules(_Strict):
    enabled: bool = Field(default=True, description="alert on a rise with volume then a reversal")
    rise_pct: float = Field(default=2.0, gt=0, le=100, description="rise above the window's low, %")
    volume_ratio: float = Field(
        default=2.5, ge=0, description="median trades per minute vs the previous hour"
    )
    reversal: float = Field(default=0.5, gt=0, le=1, description="share of the rise given back")
    window_min: int = Field(
        default=15, ge=2, le=60, description="minutes of the rise and of the fall"
    )
    critical_ratio: float = Field(
        default=2.0, ge=1, description="critical from this multiple of rise"
    )


class WashRules(_Strict):
    enabled: bool = Field(default=True, description="alert on equal-size alternating-side runs")
    min_trades: int = Field(default=6, ge=3, le=1000, description="trades in a run")
    price_bp: float = Field(
        default=1.0, ge=0, le=1000, description="price band of a run, basis points"
    )
    gap_s: float = Field(
        default=10.0, gt=0, le=600, description="largest gap inside a run, seconds"
    )
    critical_ratio: float = Field(
        default=2.0, ge=1, description="critical from this multiple of trades"
    )


# file section -> (model, {file key: DetectorConfig field})
SECTIONS: dict[str, tuple[type[_Strict], dict[str, str]]] = {
    "whale": (
        WhaleRules,
        {"enabled": "whale_enabled", "usd": "whale_usd", "critical_ratio": "whale_critical"},
    ),
    "volume_spike": (
        VolumeSpikeRules,
        {
            "enabled": "spike_enabled",
            "z": "spike_z",
            "min_ratio": "spike_min_ratio",
            "history": "spike_history",
            "min_count_ratio": "spike_min_count_ratio",
            "min_trades": "spike_min_trades",
            "count_z": "spike_count_z",
            "cooldown": "spike_cooldown",
            "critical_ratio": "spike_critical",
            "log_scale_floor": "spike_log_scale_floor",
        },
    ),
    "divergence": (
        DivergenceRules,
        {
            "enabled": "divergence_enabled",
            "pct": "divergence_pct",
            "min_windows": "divergence_min_windows",
            "carry": "divergence_carry",
            "critical_ratio": "divergence_critical",
            "quote_max_age_s": "divergence_quote_max_age_s",
        },
    ),
    "pump_and_dump": (
        PumpRules,
        {
            "enabled": "pump_enabled",
            "rise_pct": "pump_rise_pct",
            "volume_ratio": "pump_volume_ratio",
            "reversal": "pump_reversal",
            "window_min": "pump_window_min",
            "critical_ratio": "pump_critical",
        },
    ),
    "wash_trading": (
        WashRules,
        {
            "enabled": "wash_enabled",
            "min_trades": "wash_min_trades",
            "price_bp": "wash_price_bp",
            "gap_s": "wash_gap_s",
            "critical_ratio": "wash_critical",
        },
    ),
}


def _override_model(section: str) -> type[_Strict]:
    """The section's model restricted to the keys a market override may set, all optional."""
    model, keys = SECTIONS[section]
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        if keys.get(key) in OVERRIDABLE:
            copy = FieldInfo.merge_field_infos(info, default=None)
            fields[key] = (info.annotation | None, copy)  # type: ignore[operator]
    name = "".join(p.title() for p in section.split("_")) + "Override"
    return create_model(name, __base__=_Strict, **fields)


WhaleOverride = _override_model("whale")
VolumeSpikeOverride = _override_model("volume_spike")
DivergenceOverride = _override_model("divergence")
PumpOverride = _override_model("pump_and_dump")
WashOverride = _override_model("wash_trading")


class Override(_Strict):
    exchange: str | None = Field(default=None, description="exchange id; unset: every exchange")
    symbol: str | None = Field(
        default=None, description="asset (BTC) or market (BTC/USDT); unset: all"
    )
    whale: WhaleOverride | None = None  # type: ignore[valid-type]
    volume_spike: VolumeSpikeOverride | None = None  # type: ignore[valid-type]
    divergence: DivergenceOverride | None = None  # type: ignore[valid-type]
    pump_and_dump: PumpOverride | None = None  # type: ignore[valid-type]
    wash_trading: WashOverride | None = None  # type: ignore[valid-type]

    @_model_validator(mode="after")
    def _targets_something(self) -> Override:
        if self.exchange is None and self.symbol is None:
            raise ValueError("an override needs an exchange, a symbol or both")
        return self


# ------------------------------------------------------------------------ delivery section
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class Template(_Strict):
    title: str | None = Field(default=None, description="message title of one alert of this type")
    body: str | None = Field(default=None, description="one line per alert of this type")
    item: str | None = Field(
        default=None, description="one alert of this type in a digest line (group_by = all)"
    )


Templates = dict[AlertType, Template]
GroupBy = Literal["market", "asset", "all"]


class TypeRoute(_Strict):
    """Grouping and repeat of one alert type (an Alertmanager child route matching the type):
    its alerts form groups of their own, with these timings; unset keys fall back to the
    built-in per-type defaults (:data:`DEFAULT_BY_TYPE`), then to the channel's settings."""

    group_by: GroupBy | None = None
    group_wait_s: float | None = Field(default=None, ge=0, le=86_400)
    group_interval_s: float | None = Field(default=None, ge=0, le=86_400)
    repeat_interval_s: float | None = Field(default=None, ge=0, le=7 * 86_400)


ByType = dict[AlertType, TypeRoute]


class Fatigue(_Strict):
    """Fatigue control; the defaults are Alertmanager's (group wait 30 s, group interval 5 min,
    repeat 4 h)."""

    group_wait_s: float | None = Field(default=None, ge=0, le=86_400)
    group_interval_s: float | None = Field(default=None, ge=0, le=86_400)
    repeat_interval_s: float | None = Field(default=None, ge=0, le=7 * 86_400)
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000)
    quiet_hours: str | None = Field(default=None, description="HH:MM-HH:MM in quiet_timezone")
    quiet_timezone: str | None = None
    quiet_breakthrough: Literal["warning", "critical", "none"] | None = None
    group_by: GroupBy | None = None
    by_type: ByType = Field(default_factory=dict)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        if v is not None and not _QUIET.match(v):
            raise ValueError("quiet hours must look like 22:00-07:00")
        return v

    @field_validator("quiet_timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Channel(Fatigue):
    name: str = Field(description="shown in the delivery log")
    url: str | None = Field(
        default=None, description="an Apprise URL (slack://, mailto://, json://...)"
    )
    urls: tuple[str, ...] = Field(default=(), description="several Apprise URLs")
    url_env: str | None = Field(default=None, description="environment variable holding the URL(s)")
    types: tuple[AlertType, ...] = Field(
        default=get_args(AlertType), description="alert types routed here"
    )
    severities: tuple[Severity, ...] = Field(default=("warning", "critical"))
    exchanges: tuple[str, ...] = Field(default=(), description="exchange ids; empty: all")
    symbols: tuple[str, ...] = Field(default=(), description="assets or markets; empty: all")
    templates: Templates = Field(default_factory=dict)
    operations: bool = Field(
        default=False,
        description="also receives operator incidents (failed runs and checks, late data, drift)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits, '_', '-' or '.' (at most 64)")
        return v

    @_model_validator(mode="after")
    def _has_url(self) -> Channel:
        if not (self.url or self.urls or self.url_env):
            raise ValueError("a channel needs url, urls or url_env")
        return self

    def apprise_urls(self, environ: Mapping[str, str] | None = None) -> list[str]:
        env = os.environ if environ is None else environ
        out = [u for u in (self.url, *self.urls) if u]
        if self.url_env:
            value = env.get(self.url_env, "").strip()
            if not value:
                raise RulesError(f"channel {self.name}: ${self.url_env} is not set")
            out.append(value)
        return out


class Delivery(Fatigue):
    app_url: str = Field(
        default="http://127.0.0.1:8501", description="the Streamlit app, for links in messages"
    )
    max_attempts: int = Field(default=4, ge=1, le=20, description="tries of one message")
    retry_backoff_s: float = Field(default=5.0, ge=0, le=3600, description="first pause, doubling")
    max_alert_age_s: float = Field(
        default=21_600.0, gt=0, description="alerts older than this (event time) are not sent"
    )
    templates: Templates = Field(default_factory=dict)
    channels: tuple[Channel, ...] = ()

    @_model_validator(mode="after")
    def _unique_names(self) -> Delivery:
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channel names must be unique: {', '.join(dup)}")
        return self


DEFAULT_FATIGUE = {
    "group_wait_s": 30.0,
    "group_interval_s": 300.0,
    "repeat_interval_s": 4 * 3600.0,
    "rate_limit_per_hour": 20,
    "quiet_hours": None,
    "quiet_timezone": "UTC",
    "quiet_breakthrough": "critical",
    "group_by": "market",
}
# Per-type routes of the built-in delivery, chosen on the tune data (benchmarks/alert_rates.py
# --part delivery; docs/alerts.md, "How the delivery defaults were chosen"):
# * volume spikes are routine on real markets (a burst the size of a simulated spike comes
#   16-74 times a day per market): one digest for all markets at most every 2 h, every spike
#   itemized in it (none folded away as a repeat);
# * a whale is one trade, not an ongoing condition: every whale is itemized (no repeat), in
#   its market's message as before.
DEFAULT_BY_TYPE: dict[str, TypeRoute] = {
    "whale": TypeRoute(repeat_interval_s=0.0),
    "volume_spike": TypeRoute(group_by="all", group_interval_s=7200.0, repeat_interval_s=0.0),
}


class RulesFile(_Strict):
    whale: WhaleRules = WhaleRules()
    volume_spike: VolumeSpikeRules = VolumeSpikeRules()
    divergence: DivergenceRules = DivergenceRules()
    pump_and_dump: PumpRules = PumpRules()
    wash_trading: WashRules = WashRules()
    quotes: dict[str, float] = Field(
        default_factory=dict, description="static USD value of other quote currencies (EUR)"
    )
    overrides: tuple[Override, ...] = ()
    delivery: Delivery = Delivery()

    @field_validator("quotes")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for k, rate in v.items():
            if not rate > 0:
                raise ValueError(f"{k}: a USD rate must be > 0")
        return {k.upper(): rate for k, rate in v.items()}

    def detector(self) -> DetectorConfig:
        values: dict[str, Any] = {}
        for section, (_, keys) in SECTIONS.items():
            model = getattr(self, section)
            for key, target in keys.items():
                values[target] = getattr(model, key)
        pairs: tuple[tuple[str, str, float], ...] = tuple(
            (min(p.venues), max(p.venues), p.pct) for p in self.divergence.pairs
        )
        overrides = []
        for o in self.overrides:
            pv: list[tuple[str, float | int | bool]] = []
            for section, (_, keys) in SECTIONS.items():
                part = getattr(o, section)
                if part is None:
                    continue
                for key, value in part.model_dump(exclude_none=True).items():
                    pv.append((keys[key], value))
            exchange = o.exchange.lower() if o.exchange else None
            symbol = o.symbol.upper() if o.symbol else None
            overrides.append(MarketOverride(exchange, symbol, tuple(pv)))
        return DetectorConfig(
            **values,
            divergence_pairs=pairs,
            quote_usd=tuple(sorted(self.quotes.items())),
            overrides=tuple(overrides),
        )


# ------------------------------------------------------------------------------ loading
@dataclass(frozen=True)
class Rules:
    """A validated rules file: the detector configuration and the delivery section."""

    detector: DetectorConfig
    delivery: Delivery
    source: str = BUILT_IN

    @property
    def version(self) -> str:
        return self.detector.version


def default_rules() -> Rules:
    return Rules(RulesFile().detector(), Delivery(), BUILT_IN)


def load_rules(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    fmt: Literal["toml", "yaml"] | None = None,
    name: str | None = None,
) -> Rules:
    """The rules of ``path`` (or of ``text``); the built-in defaults when both are ``None``.

    ``fmt`` defaults from the suffix (``.yaml``/``.yml`` YAML, else TOML). Raises
    :class:`RulesError` naming the file, the line and the key of every problem.
    """
    if path is None and text is None:
        return default_rules()
    if text is None:
        assert path is not None
        path = Path(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise RulesError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    label = name or (str(path) if path is not None else "<rules>")
    if fmt is None:
        suffix = Path(str(path)).suffix.lower() if path is not None else ""
        fmt = "yaml" if suffix in (".yaml", ".yml") else "toml"
    data, locate = _parse_yaml(text, label) if fmt == "yaml" else _parse_toml(text, label)
    try:
        parsed = RulesFile.model_validate(_tuples(data))
    except ValidationError as exc:
        raise RulesError(_explain(exc, label, locate)) from None
    try:
        for channel in parsed.delivery.channels:
            check_templates(channel.templates)
        check_templates(parsed.delivery.templates)
    except TemplateProblem as exc:
        line = locate(exc.loc)
        raise RulesError(f"{label}:{line}: {_dotted(exc.loc)}: {exc}") from None
    return Rules(parsed.detector(), parsed.delivery, label)


def _tuples(value: Any) -> Any:
    """Lists as tuples (the strict models take tuples; files give lists)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


class TemplateProblem(ValueError):
    def __init__(self, loc: tuple, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def check_templates(templates: Mapping[Any, Template]) -> None:
    """Render every template against a sample alert of its type (unknown fields fail)."""
    from sentinance_assets.lib.detection.delivery import render_sample

    for kind, tpl in templates.items():
        for part in ("title", "body", "item"):
            text = getattr(tpl, part)
            if text is None:
                continue
            try:
                render_sample(kind, text)
            except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
                raise TemplateProblem(
                    ("delivery", "templates", kind, part), f"template does not render: {exc!r}"
                ) from None


Locator = Any  # Callable[[tuple], int | None]


def _parse_toml(text: str, label: str) -> tuple[dict, Locator]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f":{m.group(1)}" if m else ""
        raise RulesError(f"{label}{where}: not valid TOML: {exc}") from None
    lines = _toml_lines(text)

    def locate(loc: tuple) -> int | None:
        loc = tuple(loc)
        while loc:
            if loc in lines:
                return lines[loc]
            loc = loc[:-1]
        return None

    return data, locate


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _key_parts(dotted: str) -> list[str]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", dotted)
    return [a or b or c for a, b, c in parts]


def _toml_lines(text: str) -> dict[tuple, int]:
    """First line of every table and key path of a TOML document (array-of-tables entries
    by index). A line scanner, enough to point at the line of a key."""
    lines: dict[tuple, int] = {}
    arrays: dict[tuple, int] = {}  # array-of-tables path -> current index
    table: tuple = ()
    depth = 0  # open brackets of a multi-line value
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0] if '"' not in raw and "'" not in raw else raw
        if depth > 0:
            depth += line.count("[") - line.count("]")
            continue
        head = _HEADER.match(raw)
        if head and "=" not in raw.split("]", 1)[0]:
            path = tuple(_key_parts(head.group(2)))
            resolved = _resolve(path, arrays)
            if head.group(1) == "[[":
                arrays[path] = arrays.get(path, -1) + 1
                resolved = (*_resolve(path[:-1], arrays), path[-1], arrays[path])
            table = resolved
            for i in range(1, len(table) + 1):
                lines.setdefault(table[:i], no)
            continue
        key = _KEY.match(raw)
        if key:
            full = (*table, *_key_parts(key.group(1)))
            for i in range(len(table) + 1, len(full) + 1):
                lines.setdefault(full[:i], no)
            value = raw[key.end() :]
            depth = max(0, value.count("[") - value.count("]"))
    return lines


def _resolve(path: tuple, arrays: dict[tuple, int]) -> tuple:
    out: list = []
    for i, part in enumerate(path):
        out.append(part)
        prefix = path[: i + 1]
        if prefix in arrays:
            out.append(arrays[prefix])
    return tuple(out)


def _parse_yaml(text: str, label: str) -> tuple[dict, Locator]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise RulesError(f"{label}{where}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(f"{label}:1: the rules must be a mapping of sections")

    def locate(loc: tuple) -> int | None:
        cur = node
        line = cur.start_mark.line + 1 if cur is not None else None
        for part in loc:
            if isinstance(cur, yaml.MappingNode):
                nxt = None
                for k, v in cur.value:
                    if k.value == str(part):
                        line = k.start_mark.line + 1
                        nxt = v
                        break
                if nxt is None:
                    return line
                cur = nxt
            elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(cur.value):
                    return line
                cur = cur.value[part]
                line = cur.start_mark.line + 1
            else:
                return line
        return line

    return data, locate


def _explain(exc: ValidationError, label: str, locate: Locator) -> str:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # pydantic adds the tag of a union member ("tuple[str, str]") to some locations
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in _TAGS)))
        key = _dotted(loc) or "(top)"
        line = locate(loc)
        where = f"{label}:{line}" if line else label
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            out.append(f"{where}: {key}: unknown key{hint}")
            continue
        given = err.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" = {given!r}"
        out.append(f"{where}: {key}{shown}: {err['msg']}")
    return "\n".join(out)


def _dotted(loc: Sequence) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_TAGS = {"function-after", "function-before", "function-plain", "function-wrap"}


def _allowed_keys(loc: Sequence) -> list[str]:
    model: Any = RulesFile
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        model = None if info is None else _inner_model(info.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin is None:
        return None
    args = get_args(annotation)
    if origin is dict and len(args) == 2:
        return _inner_model(args[1])
    for a in args:
        found = _inner_model(a)
        if found is not None:
            return found
    return None


def rules_for(settings: Any, path: str | Path | None = None, text: str | None = None) -> Rules:
    """The rules a command or an asset runs with: ``text`` (inline TOML from a run config),
    else ``path`` (an option), else ``SENTINANCE_ALERT_RULES``, else the built-in defaults."""
    if text is not None:
        return load_rules(text=text, fmt="toml", name="<run config>")
    chosen = path if path is not None else settings.alert_rules
    return load_rules(chosen) if chosen is not None else default_rules()


def default_rules_toml() -> str:
    """Every key with its default and meaning, as a TOML rules file (``docs/alerts.md``)."""
    lines = [
        "# Sentinance alert rules: every key with its default (delete what you do not change).",
        "",
    ]
    for section, (model, _) in SECTIONS.items():
        lines.append(f"[{section}]")
        for key, info in model.model_fields.items():
            if key == "pairs":
                continue
            lines.append(f"{key} = {_toml_value(info.default)}  # {info.description}")
        lines.append("")
    lines += [
        "[quotes]  # static USD value of quote currencies besides USD, USDT, USDC",
        "# EUR = 1.08",
        "",
        "# [[overrides]]  # most specific wins: exchange+market, exchange+asset, market,",
        '# exchange = "binance"  # asset, exchange',
        '# symbol = "BTC"',
        "# whale.usd = 500_000",
        "# volume_spike.z = 3.0",
        "",
        "# [[divergence.pairs]]",
        '# venues = ["binanceus", "coinbase"]',
        "# pct = 1.0",
        "",
        "[delivery]",
    ]
    for key, info in Delivery.model_fields.items():
        if key in ("templates", "channels", "by_type"):
            continue
        default = DEFAULT_FATIGUE.get(key, info.default)
        if default is None:
            lines.append(f'# {key} = "22:00-07:00"')
        else:
            lines.append(f"{key} = {_toml_value(default)}")
    for kind, route in DEFAULT_BY_TYPE.items():
        lines += ["", f"[delivery.by_type.{kind}]  # this type's own grouping and repeat"]
        set_keys = route.model_dump(exclude_none=True).items()
        lines += [f"{k} = {_toml_value(v)}" for k, v in set_keys]
    lines += [
        "",
        "# [[delivery.channels]]",
        '# name = "desk"',
        '# url_env = "DESK_SLACK_URL"',
        '# types = ["whale", "divergence"]',
        '# severities = ["critical"]',
    ]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return repr(value)
