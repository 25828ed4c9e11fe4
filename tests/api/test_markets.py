"""Market endpoints against SQL on the published warehouse: ``/v1/metrics/{symbol}``,
``/v1/markets``, ``/v1/candles``, ``/v1/indicators`` and ``/v1/forecasts``."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tests.api.conftest import FORECAST_VERSION, iso, sql


def latest_1m(home, base: str):
    return sql(
        home,
        "select exchange, symbol, max(ts) as ts, max_by(close, ts) as close from marts.candles "
        "where timeframe = '1m' and base = ? group by all order by exchange, symbol",
        [base],
    )


def test_metrics_of_an_asset_match_sql(api, api_home):
    body = api.get("/v1/metrics/BTC").json()
    venues = latest_1m(api_home, "BTC")
    as_of = max(v["ts"] for v in venues)
    assert body["base"] == "BTC" and body["symbol"] is None
    assert body["as_of"] == iso(as_of) == body["updated_at"]
    assert [(v["exchange"], v["symbol"]) for v in body["venues"]] == [
        (v["exchange"], v["symbol"]) for v in venues
    ]
    for got, want in zip(body["venues"], venues, strict=True):
        assert got["price"] == pytest.approx(want["close"])
        (hour,) = sql(
            api_home,
            "select sum(volume) as v, sum(trade_count) as n from marts.candles "
            "where timeframe = '1m' and exchange = ? and symbol = ? and ts > ? and ts <= ?",
            [want["exchange"], want["symbol"], as_of - timedelta(hours=1), as_of],
        )
        assert got["volume_1h"] == pytest.approx(hour["v"]) and got["trades_1h"] == hour["n"]
    spreads = sql(
        api_home,
        "select exchange_a, exchange_b, spread_pct from marts.spreads where base = 'BTC' "
        "qualify row_number() over (partition by exchange_a, exchange_b "
        "order by window_start desc) = 1 order by 1, 2",
    )
    assert [(s["exchange_a"], s["exchange_b"]) for s in body["spreads"]] == [
        (s["exchange_a"], s["exchange_b"]) for s in spreads
    ]
    assert body["spreads"][0]["spread_pct"] == pytest.approx(spreads[0]["spread_pct"])
    counts = sql(
        api_home,
        "select type, count(*) as n from alerts.alert_feed "
        "where split_part(symbol, '/', 1) = 'BTC' and event_time > ? and event_time <= ? "
        "group by type order by type",
        [as_of - timedelta(hours=24), as_of],
    )
    assert body["alerts_24h_by_type"] == {c["type"]: c["n"] for c in counts}
    assert body["alerts_24h"] == sum(c["n"] for c in counts) > 0
    (whale,) = sql(
        api_home,
        "select alert_id from alerts.alert_feed where type = 'whale' "
        "and split_part(symbol, '/', 1) = 'BTC' order by event_time desc, alert_id limit 1",
    )
    assert body["last_whale"]["alert_id"] == whale["alert_id"]
    assert body["published_at"]


def test_metrics_of_one_market_keep_to_it(api, api_home):
    body = api.get("/v1/metrics/ETH-USDT").json()
    assert body["symbol"] == "ETH/USDT"
    assert [v["symbol"] for v in body["venues"]] == ["ETH/USDT"]
    assert body["spreads"] == []
    n = sql(
        api_home,
        "select count(*) as n from alerts.alert_feed where symbol = 'ETH/USDT' "
        "and event_time > ?::timestamptz - interval 24 hour and event_time <= ?",
        [body["as_of"], body["as_of"]],
    )[0]["n"]
    assert body["alerts_24h"] == n
    assert api.get("/v1/metrics/ETH/USDT").json() == body  # the slash form works too


@pytest.mark.parametrize(("path", "status"), [("/v1/metrics/DOGE", 404), ("/v1/metrics/B$C", 400)])
def test_unknown_or_malformed_symbols(api, path, status):
    r = api.get(path)
    assert r.status_code == status and r.json()["message"]


def test_markets_are_the_app_overview_and_latest_days(api, api_home):
    body = api.get("/v1/markets").json()
    bases = sql(api_home, "select base from marts.asset_overview")
    assert sorted(a["base"] for a in body["assets"]) == sorted(b["base"] for b in bases)
    latest = sql(
        api_home,
        "select exchange, symbol, day from marts.daily_market "
        "qualify row_number() over (partition by exchange, symbol order by day desc) = 1",
    )
    assert {(m["exchange"], m["symbol"], m["day"]) for m in body["markets"]} == {
        (r["exchange"], r["symbol"], r["day"].isoformat()) for r in latest
    }


CANDLES = """
select ts, close, volume from marts.candles
where exchange = ? and symbol = ? and timeframe = ? {extra} order by ts
"""


def test_candles_newest_window_and_forward_paging(api, api_home):
    rows = sql(api_home, CANDLES.format(extra=""), ["binance", "BTC/USDT", "1m"])
    body = api.get("/v1/candles/binance/BTC/USDT", timeframe="1m", limit=10).json()
    assert body["has_more"] is True and body["next_since"] is None
    assert [c["ts"] for c in body["candles"]] == [iso(r["ts"]) for r in rows[-10:]]
    # forward from the first bar, page after page
    got, since = [], iso(rows[0]["ts"])
    while since:
        page = api.get("/v1/candles/binance/BTC-USDT", timeframe="1m", since=since, limit=45).json()
        got += page["candles"]
        since = page["next_since"]
    assert [c["ts"] for c in got] == [iso(r["ts"]) for r in rows]
    assert got[5]["close"] == pytest.approx(rows[5]["close"])


def test_candles_between_since_and_until(api, api_home):
    lo, hi = "2026-11-14T22:00:00Z", "2026-11-14T23:00:00Z"
    rows = sql(
        api_home,
        CANDLES.format(extra="and ts >= ? and ts < ?"),
        ["coinbase", "ETH/USD", "5m", lo, hi],
    )
    body = api.get("/v1/candles/coinbase/ETH/USD", timeframe="5m", since=lo, until=hi).json()
    assert body["count"] == len(rows) == 12 and body["has_more"] is False
    assert body["candles"][0]["volume"] == pytest.approx(rows[0]["volume"])


def test_indicators_match_the_mart(api, api_home):
    rows = sql(
        api_home,
        "select ts, rsi_14, sma_20 from marts.indicators where exchange = 'binance' "
        "and symbol = 'BTC/USDT' and timeframe = '1m' order by ts desc limit 3",
    )
    body = api.get("/v1/indicators/binance/BTC/USDT", timeframe="1m", limit=3).json()
    got = body["indicators"][::-1]
    assert [g["ts"] for g in got] == [iso(r["ts"]) for r in rows]
    for g, r in zip(got, rows, strict=True):
        assert g["rsi_14"] == pytest.approx(r["rsi_14"]) and g["sma_20"] == pytest.approx(
            r["sma_20"]
        )


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/candles/binance/DOGE/USDT", {}, 404),
        ("/v1/candles/binance/BTC", {}, 400),
        ("/v1/candles/binance/BTC/USDT", {"timeframe": "7m"}, 422),
        ("/v1/candles/binance/BTC/USDT", {"limit": 5001}, 422),
        ("/v1/indicators/binance/BTC/USDT", {"since": "2026-11-15", "until": "2026-11-14"}, 400),
    ],
)
def test_series_bad_input(api, path, params, status):
    r = api.get(path, **params)
    assert r.status_code == status, r.text
    assert r.json()["error"]


def _origin_close(home, exchange: str, symbol: str, origin: str) -> float:
    (close,) = sql(
        home,
        "select close from marts.candles where exchange = ? and symbol = ? "
        "and timeframe in ('1m', '1h') and ts <= ?::timestamptz "
        "order by ts desc, timeframe = '1m' desc limit 1",
        [exchange, symbol, origin],
    )
    return float(close["close"])


LEVELS = ("80", "95")
BOUNDS = [f"{side}_{level}" for level in LEVELS for side in ("lower", "upper")]


def test_forecasts_serve_the_stored_intervals(api, api_home):
    body = api.get("/v1/forecasts/BTC/USDT").json()
    assert body["model"] == "sentinance-forecaster"
    assert body["model_version"] == FORECAST_VERSION
    assert body["serving_version"] == "2"  # the registry's champion
    got = {(f["target"], f["horizon"]): f for f in body["forecasts"]}
    stored = sql(
        api_home,
        "select * from ml.forecasts where exchange = 'binance' and symbol = 'BTC/USDT' "
        "and origin_ts = (select max(origin_ts) from ml.forecasts where symbol = 'BTC/USDT')",
    )
    assert set(got) == {(r["target"], r["horizon"]) for r in stored}
    assert {t for t, _ in got} == {"log_return", "realized_vol"} and len(got) == 6
    assert [(f["target"], f["horizon"]) for f in body["forecasts"]] == [
        (t, h) for t in ("log_return", "realized_vol") for h in ("1h", "4h", "24h")
    ]
    origin = body["forecasts"][0]["origin_ts"]
    assert origin == iso(stored[0]["origin_ts"])  # the latest origin, not the older one
    p0 = _origin_close(api_home, "binance", "BTC/USDT", origin)
    for row in stored:
        f = got[(row["target"], row["horizon"])]
        assert "rmse" not in f and "lower" not in f  # no band from the hold-out RMSE
        hours = int(row["horizon"].removesuffix("h"))
        assert f["target_ts"] == iso(row["origin_ts"] + timedelta(hours=hours))
        for key in ("model", "model_version", "reason"):
            assert f[key] == row[key]
        assert f["prediction"] == pytest.approx(row["prediction"])
        assert f["origin_price"] == pytest.approx(p0)
        for level in LEVELS:
            assert f[f"coverage_{level}"] == pytest.approx(row[f"coverage_{level}"])
        for bound in BOUNDS:
            raw = row[bound]
            assert f[f"prediction_{bound}"] == pytest.approx(raw)
            if row["target"] == "log_return" and raw is not None:
                assert f[bound] == pytest.approx(p0 * math.exp(raw))  # a price
            else:
                assert f[bound] is None  # no stored interval, or a volatility (no price)
        if row["target"] == "log_return":
            assert f["price"] == pytest.approx(p0 * math.exp(row["prediction"]))
        else:
            assert f["price"] is None
    one = got[("log_return", "1h")]
    assert one["lower_95"] < one["lower_80"] < one["price"] < one["upper_80"] < one["upper_95"]
    assert got[("log_return", "24h")]["lower_95"] is None  # stored without an interval
    assert got[("log_return", "4h")]["coverage_80"] is None  # coverage not measured
    vol = got[("realized_vol", "1h")]
    assert vol["model"] == "har" and vol["prediction_upper_95"] > vol["prediction"]


def test_forecasts_written_before_intervals_still_serve(api, api_home):
    body = api.get("/v1/forecasts/BTC", exchange="coinbase").json()
    assert [(f["target"], f["horizon"]) for f in body["forecasts"]] == [
        ("log_return", "1h"),
        ("log_return", "4h"),
    ]
    one = body["forecasts"][0]
    p0 = _origin_close(api_home, "coinbase", "BTC/USD", one["origin_ts"])
    assert one["model"] == "lstm"  # only the LSTM forecast before model selection
    assert one["model_version"] == "lstm-old-1" and one["reason"] is None
    assert one["price"] == pytest.approx(p0 * math.exp(0.002))
    assert all(one[b] is None and one[f"prediction_{b}"] is None for b in BOUNDS)
    assert one["coverage_80"] is None and one["coverage_95"] is None


def test_forecasts_of_an_asset_cover_its_markets(api):
    both = api.get("/v1/forecasts/BTC").json()["forecasts"]
    assert {(f["exchange"], f["symbol"]) for f in both} == {
        ("binance", "BTC/USDT"),
        ("coinbase", "BTC/USD"),
    }
    one = api.get("/v1/forecasts/BTC/USDT").json()["forecasts"]
    assert [f for f in both if f["exchange"] == "binance"] == one
    assert api.get("/v1/forecasts/BTC-USDT", exchange="binance").json()["forecasts"] == one
    assert api.get("/v1/forecasts/ETH").json()["forecasts"] == []
    assert api.get("/v1/forecasts/DOGE").status_code == 404
