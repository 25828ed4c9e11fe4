"""The API's request and response bodies: what the OpenAPI schema promises, field by field.

Every number that the warehouse may hold as NaN or infinity (a ratio over an empty window, an
indicator in its warm-up) goes through :data:`Num`, which turns it into ``null``: JSON has no
NaN, and a response that cannot be encoded would be a 500 for the client.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def finite(value: Any) -> Any:
    """NaN and +-inf as ``None``; everything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(value: Any) -> Any:
    """``finite`` through nested dicts and lists (the ``details`` JSON of an alert)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return finite(value)


def _details(value: Any) -> Any:
    """An alert's ``details`` column (JSON text) as an object; text that is not a JSON object
    is kept under ``raw``."""
    if value is None or isinstance(value, dict):
        return _clean(value)
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return {"raw": str(value)}
    return _clean(parsed) if isinstance(parsed, dict) else {"raw": str(value)}


Num = Annotated[float | None, BeforeValidator(finite)]


class _Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --------------------------------------------------------------------------- errors
class ErrorBody(_Model):
    """Every error: a short machine-readable code and a message for people (never a trace)."""

    error: str = Field(description="code: `not_found`, `invalid_request`, `unauthorized`, ...")
    message: str
    details: list[dict[str, Any]] | None = Field(
        None, description="per-field problems of a request that failed validation"
    )


# --------------------------------------------------------------------------- alerts
class Alert(_Model):
    alert_id: str = Field(description="stable id: the same event always has the same id")
    type: str = Field(description="volume_spike | whale | divergence | pump_and_dump | ...")
    exchange: str | None
    symbol: str | None = Field(description="ccxt unified symbol, e.g. `BTC/USDT`")
    severity: str = Field(description="info | warning | critical")
    value: Num = Field(description="the measured number that fired the rule")
    threshold: Num = Field(description="the rule's threshold for `value`")
    details: Annotated[dict[str, Any] | None, BeforeValidator(_details)] = Field(
        None, description="the numbers behind the alert (detector-specific)"
    )
    event_time: datetime = Field(description="when it happened in the market (UTC)")
    detected_at: datetime = Field(description="when Sentinance detected it (UTC)")
    message: str | None
    rules_version: str | None = Field(description="content hash of the rules that fired it")


class AlertPage(_Model):
    alerts: list[Alert]
    count: int = Field(description="alerts in this page")
    has_more: bool
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


# --------------------------------------------------------------------------- metrics
class VenueMetrics(_Model):
    exchange: str
    symbol: str
    price: Num = Field(description="close of the newest 1-minute bar")
    price_at: datetime | None = Field(description="open time of that bar (UTC)")
    volume_1h: Num = Field(description="base-asset volume over the hour up to `as_of`")
    quote_volume_1h: Num = Field(description="quote-currency volume over the same hour")
    trades_1h: int | None


class SpreadPair(_Model):
    exchange_a: str
    exchange_b: str
    spread_pct: Num = Field(description="100 * (a - b) / mid of the USD VWAPs; > 0: a dearer")
    vwap_usd_a: Num
    vwap_usd_b: Num
    window_start: datetime


class MarketMetrics(_Model):
    base: str
    symbol: str | None = Field(description="the one market asked for, else null (every venue)")
    as_of: datetime | None = Field(description="newest bar of these markets: windows end here")
    venues: list[VenueMetrics]
    spreads: list[SpreadPair] = Field(description="latest cross-venue spread per venue pair")
    alerts_24h: int = Field(description="alerts in the 24 h up to `as_of`")
    alerts_24h_by_type: dict[str, int]
    last_whale: Alert | None
    updated_at: datetime | None = Field(description="newest data behind this answer (UTC)")
    published_at: datetime | None = Field(description="when the marts were last published")


# --------------------------------------------------------------------------- markets
class AssetSummary(_Model):
    base: str
    last_price_usd: Num
    change_24h_pct: Num
    volume_24h_usd: Num
    max_abs_spread_pct_24h: Num
    sentiment_mean_score: Num
    sentiment_news_count: int | None
    venue_count: int | None
    as_of: datetime | None
    latest_alert: str | None
    alert_severity: str | None
    alert_time: datetime | None


class MarketDay(_Model):
    exchange: str
    symbol: str
    day: date
    close: Num
    return_pct: Num
    volume: Num
    quote_volume: Num
    trade_count: int | None


class Markets(_Model):
    assets: list[AssetSummary]
    markets: list[MarketDay] = Field(description="each market's latest day")


# --------------------------------------------------------------------------- candles
class Candle(_Model):
    ts: datetime = Field(description="bar open time (UTC)")
    open: Num
    high: Num
    low: Num
    close: Num
    volume: Num
    quote_volume: Num
    vwap: Num
    trade_count: int | None
    quality: str | None = Field(description="why a bar is suspect (null: fine)")


class IndicatorRow(_Model):
    ts: datetime
    close: Num
    log_return: Num
    sma_20: Num
    sma_50: Num
    sma_200: Num
    ema_20: Num
    ema_50: Num
    ema_200: Num
    rsi_14: Num
    macd: Num
    macd_signal: Num
    macd_hist: Num
    bb_upper: Num
    bb_middle: Num
    bb_lower: Num
    atr_14: Num
    realized_vol: Num


class _Series(_Model):
    exchange: str
    symbol: str
    timeframe: str
    count: int
    has_more: bool = Field(description="more bars in the window past the last one returned")
    next_since: datetime | None = Field(description="pass as `since` for the next page")


class CandleSeries(_Series):
    candles: list[Candle]


class IndicatorSeries(_Series):
    indicators: list[IndicatorRow]


# --------------------------------------------------------------------------- forecasts
class ForecastPoint(_Model):
    """One forecast: a market, a target and a horizon, from the model serving them."""

    exchange: str
    symbol: str
    target: str = Field(
        description="what is predicted over the horizon: `log_return` (the log return) or "
        "`realized_vol` (the square root of the sum of squared hourly log returns); both in "
        "log-return units"
    )
    horizon: str = Field(description="`1h`, `4h` or `24h`")
    model: str = Field(
        description="the serving model: the one that won the walk-forward hold-out for this "
        "target and horizon (`lstm`, `zero_return`, `persistence`, `ewma_vol`, `har`)"
    )
    model_version: str = Field(
        description="registered version of the forecaster run whose walk-forward chose the model"
    )
    reason: str | None = Field(description="why this model serves (null: written before it)")
    origin_ts: datetime = Field(description="open time of the last bar the model saw")
    target_ts: datetime | None = Field(description="origin_ts + horizon")
    prediction: Num = Field(description="the prediction, in the target's units")
    prediction_lower_80: Num = Field(
        description="80 % split-conformal interval, lower bound, in the target's units (null: "
        "not stored)"
    )
    prediction_upper_80: Num = Field(description="80 % interval, upper bound (target's units)")
    prediction_lower_95: Num = Field(description="95 % interval, lower bound (target's units)")
    prediction_upper_95: Num = Field(description="95 % interval, upper bound (target's units)")
    origin_price: Num = Field(description="close at origin_ts (p0)")
    price: Num = Field(description="log_return only: p0 * exp(prediction); null for realized_vol")
    lower_80: Num = Field(description="log_return only: p0 * exp(prediction_lower_80), a price")
    upper_80: Num = Field(description="log_return only: p0 * exp(prediction_upper_80), a price")
    lower_95: Num = Field(description="log_return only: p0 * exp(prediction_lower_95), a price")
    upper_95: Num = Field(description="log_return only: p0 * exp(prediction_upper_95), a price")
    coverage_80: Num = Field(
        description="share (0..1) of hold-out outcomes the 80 % interval covered (null: not "
        "measured)"
    )
    coverage_95: Num = Field(
        description="share (0..1) of hold-out outcomes the 95 % interval covered (null: not "
        "measured)"
    )
    created_at: datetime


class Forecasts(_Model):
    symbol: str
    model: str = Field(description="registered forecaster name (each point names its own model)")
    model_version: str | None = Field(description="version whose run chose the serving models")
    serving_version: str | None = Field(
        description="the forecaster version whose serving plan makes forecasts now (the latest "
        "trained; each forecast names the model that serves it)"
    )
    forecasts: list[ForecastPoint] = Field(
        description="per market, the latest origin's forecasts: every target and horizon"
    )


# --------------------------------------------------------------------------- sentiment
class SentimentRequest(_Model):
    texts: list[Annotated[str, Field(max_length=5000)]] = Field(
        min_length=1,
        max_length=1000,
        description="texts to score (at most SENTINANCE_API_SENTIMENT_MAX_TEXTS)",
    )


class ModelRef(_Model):
    name: str
    version: str
    source: str = Field(description="configured | champion | baseline")


class SentimentScore(_Model):
    index: int
    label: Literal["negative", "neutral", "positive"]
    score: float = Field(ge=-1, le=1, description="signed, -1 (negative) .. 1 (positive)")
    confidence: float | None = Field(
        ge=0,
        le=1,
        description="the serving model's calibrated probability of `label` (temperature "
        "scaling fitted on the validation split); null for VADER, whose score is not a "
        "probability, and for blank text",
    )
    baseline_label: Literal["negative", "neutral", "positive"]
    baseline_score: float = Field(ge=-1, le=1)


class SentimentResponse(_Model):
    model: ModelRef = Field(description="the serving model")
    baseline: ModelRef = Field(description="VADER, side by side")
    results: list[SentimentScore]


# --------------------------------------------------------------------------- models
class ModelVersion(_Model):
    name: str
    version: str
    aliases: list[str]
    serving: bool = Field(description="holds the `champion` alias")
    status: str | None
    created_at: datetime | None
    run_id: str | None
    decision: str | None = Field(description="promoted | rejected")
    reason: str | None
    metrics: dict[str, Num] = Field(description="the run's held-out metrics")


class Models(_Model):
    registered: list[ModelVersion]
    sentiment_serving: ModelRef
    forecaster_serving: str | None = Field(
        description="forecaster version whose serving plan makes the forecasts (latest trained)"
    )


# --------------------------------------------------------------------------- operations
class Health(_Model):
    status: Literal["ok"] = "ok"


class Check(_Model):
    ok: bool
    detail: str


class Ready(_Model):
    ready: bool
    source: str
    checks: dict[str, Check]
    published_at: datetime | None
    last_ingest_age_s: Num
    watch_lag_s: Num
