"""The forecasts in the app (Streamlit AppTest, no browser): the Asset page's bands come from
the intervals stored in ``ml.forecasts`` (never from a hold-out RMSE), its text names the
serving model and the measured coverage per horizon, and the Models page shows the latest
evaluation's skill against the baselines and what serves now.

The home is made by hand in a second: hourly candles of three markets, forecasts in the new
shape (binance BTC/USDT, both targets), forecasts written before the interval columns existed
(coinbase BTC/USD), none for ETH, and two evaluation runs.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from sentinance_assets.lib import lake, warehouse
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS
from streamlit_app.views.asset import forecast_path, horizon_line

START = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
BARS = 48
ORIGIN = START + timedelta(hours=BARS - 1)  # the last bar's open time
CREATED = ORIGIN + timedelta(hours=1, minutes=5)
VERSION = "3"
MARKETS = {("binance", "BTC/USDT"): 60_000.0, ("coinbase", "BTC/USD"): 60_050.0}
MARKETS_NO_FORECAST = {("binance", "ETH/USDT"): 3_000.0}

# (target, horizon): serving model, prediction, (lower_80, upper_80, lower_95, upper_95),
# (coverage_80, coverage_95)
SERVED: dict[tuple[str, str], tuple[str, float, tuple, tuple]] = {
    ("log_return", "1h"): ("lstm", 0.001, (-0.004, 0.006, -0.009, 0.012), (0.78, 0.94)),
    ("log_return", "4h"): ("zero_return", 0.0, (-0.01, 0.01, -0.02, 0.021), (None, None)),
    ("log_return", "24h"): ("persistence", 0.004, (None,) * 4, (0.8, 0.95)),
    ("realized_vol", "1h"): ("har", 0.005, (0.003, 0.008, 0.002, 0.012), (0.8, 0.95)),
    ("realized_vol", "4h"): ("ewma_vol", 0.01, (0.006, 0.015, 0.004, 0.022), (0.79, 0.93)),
    ("realized_vol", "24h"): ("har", 0.025, (0.015, 0.035, 0.01, 0.05), (0.82, 0.97)),
}
RETURN_MODELS = ("lstm", "zero_return", "persistence")
VOL_MODELS = ("lstm", "ewma_vol", "har")
HORIZONS = ("1h", "4h", "24h")


def _forecast_rows() -> pl.DataFrame:
    rows = []
    for origin, shift in ((ORIGIN - timedelta(hours=1), 0.3), (ORIGIN, 0.0)):
        for (target, horizon), (model, pred, bands, cov) in SERVED.items():
            rows.append(
                {
                    "symbol": "BTC/USDT",
                    "exchange": "binance",
                    "origin_ts": origin,
                    "horizon": horizon,
                    "target": target,
                    "prediction": pred + shift,
                    "lower_80": bands[0],
                    "upper_80": bands[1],
                    "lower_95": bands[2],
                    "upper_95": bands[3],
                    "model": model,
                    "model_version": VERSION,
                    "reason": f"lowest pooled loss on the walk-forward hold-out ({model})",
                    "coverage_80": cov[0],
                    "coverage_95": cov[1],
                    "created_at": CREATED - timedelta(hours=1) if shift else CREATED,
                }
            )
    return FORECASTS.conform(pl.DataFrame(rows, schema_overrides=dict(FORECASTS.columns)))


def _old_forecast_rows() -> pl.DataFrame:
    """coinbase BTC/USD as the forecaster wrote it before model selection: no model,
    interval, reason or coverage columns."""
    return pl.DataFrame(
        {
            "symbol": ["BTC/USD"] * 2,
            "exchange": ["coinbase"] * 2,
            "origin_ts": [ORIGIN] * 2,
            "horizon": ["1h", "4h"],
            "target": ["log_return"] * 2,
            "prediction": [0.002, -0.003],
            "model_version": ["2"] * 2,
            "created_at": [CREATED] * 2,
        },
        schema_overrides={c: FORECASTS.columns[c] for c in ("origin_ts", "created_at")},
    )


def metric_value(run: str, target: str, horizon: str, model: str, metric: str) -> float:
    """A distinct, reproducible value for every evaluation row."""
    key = f"{run}|{target}|{horizon}|{model}|{metric}"
    return round((sum(map(ord, key)) * 7919 % 10_007) / 10_007, 6)


def _evaluation_rows() -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for run, at in (
        ("r-old", CREATED - timedelta(days=7)),
        ("r-new", CREATED - timedelta(hours=2)),
    ):
        for target, models, prefix, loss in (
            ("log_return", RETURN_MODELS, "", "rmse"),
            ("realized_vol", VOL_MODELS, "vol_", "qlike"),
        ):
            for horizon in HORIZONS:
                for model in models:
                    names = [loss, "coverage_80", "coverage_95", "width_80", "width_95"]
                    names += [f"skill:{o}" for o in models if o != model]
                    names += [f"dm_pvalue:{o}" for o in models if o != model]
                    if target == "log_return":
                        names.append("net_bp")
                    for name in names:
                        metric = prefix + name
                        for symbol in ("ALL", "BTC/USDT"):
                            rows.append(
                                {
                                    "run_id": run,
                                    "model_version": VERSION if run == "r-new" else "2",
                                    "symbol": symbol,
                                    "horizon": horizon,
                                    "model": model,
                                    "metric": metric,
                                    "value": metric_value(run, target, horizon, model, metric)
                                    + (0.5 if symbol != "ALL" else 0.0),
                                    "n": 240,
                                    "evaluated_at": at,
                                }
                            )
    return FORECAST_EVALUATION.conform(pl.DataFrame(rows))


def build_home(home: Path) -> None:
    """A published warehouse with just what the Asset and Models pages read."""
    lake_dir = home / "lake"
    lake.write_partition(lake_dir, FORECASTS, _forecast_rows(), part="origin-new")
    lake.atomic_write_parquet(
        _old_forecast_rows(), lake.dataset_dir(lake_dir, FORECASTS) / "origin-old.parquet"
    )
    lake.write_partition(lake_dir, FORECAST_EVALUATION, _evaluation_rows())
    markets = [
        (ex, sym, sym.split("/")[0], price)
        for (ex, sym), price in {**MARKETS, **MARKETS_NO_FORECAST}.items()
    ]
    with warehouse.write_connection(home / "warehouse.duckdb") as conn:
        warehouse.register_lake_views(conn, lake_dir)
        conn.execute(
            "create table main.markets (exchange varchar, symbol varchar, base varchar, "
            "price double)"
        )
        conn.executemany("insert into main.markets values (?, ?, ?, ?)", markets)
        conn.execute(
            f"""
            create table marts.candles as
            select m.exchange, m.symbol, m.base, '1h' as timeframe,
                   ?::timestamptz + to_hours(i::bigint) as ts,
                   m.price + 10 * i as open, m.price + 10 * i + 25 as high,
                   m.price + 10 * i - 25 as low, m.price + 10 * i + 5 as close,
                   100.0 + i as volume
            from main.markets as m, range({BARS}) as r(i)
            """,
            [START],
        )
        conn.execute(
            """
            create table marts.indicators as
            select exchange, symbol, timeframe, ts,
                   null::double as sma_20, null::double as sma_50, null::double as ema_20,
                   null::double as ema_50, null::double as bb_upper, null::double as bb_middle,
                   null::double as bb_lower, null::double as rsi_14, null::double as macd,
                   null::double as macd_signal, null::double as macd_hist
            from marts.candles
            """
        )
        conn.execute(
            "create table marts.news_sentiment_daily (base varchar, day date, news_count "
            "bigint, scored_count bigint, mean_score double, share_positive double, "
            "share_negative double)"
        )
        conn.execute(
            "create table staging.stg_news (news_id varchar, published timestamptz, publisher "
            "varchar, title varchar, summary varchar, assets varchar)"
        )
    warehouse.publish(home / "warehouse.duckdb", home / "warehouse.read.duckdb")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SENTINANCE_HOME", str(home))
    build_home(home)
    return home


def _asset_page() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()  # the settings are a cached resource
    from streamlit_app.views import asset

    asset.render()


def _models_page() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    from streamlit_app.views import models

    models.render()


def _origin_close(exchange: str, symbol: str) -> float:
    return MARKETS[(exchange, symbol)] + 10 * (BARS - 1) + 5


def _traces(at: AppTest) -> dict[str, dict[str, Any]]:
    (chart,) = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    return {t.get("name"): t for t in spec["data"] if t.get("name")}


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def _table(at: AppTest, column: str) -> pd.DataFrame:
    (table,) = [d.value for d in at.dataframe if column in d.value.columns]
    return table


# --------------------------------------------------------------------------- the Asset page
def test_asset_bands_are_the_stored_intervals(home):
    at = AppTest.from_function(_asset_page, default_timeout=60).run()
    assert not at.exception
    p0 = _origin_close("binance", "BTC/USDT")
    metrics = {m.label: m.value for m in at.metric}
    models = sorted({model for model, *_ in SERVED.values()})
    assert metrics["Forecast model"] == " · ".join(models) + " v3"

    traces = _traces(at)
    # both bands from the origin close through the horizons that have an interval (1h, 4h;
    # the 24h return was stored without one), p0 * exp(bound): never a multiple of an RMSE
    for level, (lo_i, hi_i) in ((80, (0, 1)), (95, (2, 3))):
        lower = traces[f"Forecast {level}% band"]["y"]
        upper = traces[f"Forecast {level}% upper"]["y"]
        want_lo = [p0] + [p0 * math.exp(SERVED[("log_return", h)][2][lo_i]) for h in ("1h", "4h")]
        want_hi = [p0] + [p0 * math.exp(SERVED[("log_return", h)][2][hi_i]) for h in ("1h", "4h")]
        assert lower == pytest.approx(want_lo) and upper == pytest.approx(want_hi)
    line = traces["Forecast"]["y"]
    want = [p0] + [p0 * math.exp(SERVED[("log_return", h)][1]) for h in HORIZONS]
    assert line == pytest.approx(want)  # the latest origin's predictions

    text = _markdown(at)
    lo80, hi80, lo95, hi95 = (p0 * math.exp(b) for b in SERVED[("log_return", "1h")][2])
    assert (
        f"1h: lstm v3 — {p0 * math.exp(0.001):,.4f}, 80 % interval {lo80:,.4f} – {hi80:,.4f} "
        f"(covered 78 % of hold-out outcomes), 95 % interval {lo95:,.4f} – {hi95:,.4f} "
        "(covered 94 %)"
    ) in text
    assert "4h: zero_return v3" in text and "coverage not measured" in text
    assert "24h: persistence v3" in text and "no interval stored" in text
    assert "Realized volatility" in text
    assert (
        "1h: har v3 — 0.50 %, 80 % interval 0.30 % – 0.80 % (covered 80 % of hold-out "
        "outcomes), 95 % interval 0.20 % – 1.20 % (covered 95 %)"
    ) in text

    table = _table(at, "coverage 80")
    assert len(table) == 6 and set(table["target"]) == {"return", "volatility"}
    vol = table[(table["target"] == "volatility") & (table["horizon"] == "4h")].iloc[0]
    assert vol["model"] == "ewma_vol" and vol["forecast"] == pytest.approx(1.0)
    assert vol["low 95"] == pytest.approx(0.4) and vol["high 95"] == pytest.approx(2.2)
    assert vol["coverage 80"] == pytest.approx(79) and pd.isna(vol["price"])
    ret = table[(table["target"] == "return") & (table["horizon"] == "1h")].iloc[0]
    assert ret["price low 95"] == pytest.approx(lo95) and ret["coverage 95"] == pytest.approx(94)
    assert ret["reason"] == "lowest pooled loss on the walk-forward hold-out (lstm)"


def test_asset_forecasts_without_intervals_or_at_all(home):
    at = AppTest.from_function(_asset_page, default_timeout=60).run()
    at.selectbox(key="asset_market").set_value("BTC/USD · coinbase").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Forecast model"] == "lstm v2"
    traces = _traces(at)
    assert "Forecast" in traces and not any("band" in name for name in traces)
    text = _markdown(at)
    assert "1h: lstm v2" in text and "no interval stored" in text

    at.selectbox(key="asset_base").set_value("ETH").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Forecast model"] == "none yet"
    assert any("No forecast for this market yet" in c.value for c in at.caption)
    assert "Forecast" not in _traces(at)


def test_forecast_path_and_lines_handle_missing_values():
    fc = pd.DataFrame(
        {
            "origin_ts": [pd.Timestamp(ORIGIN)] * 2,
            "target": ["log_return"] * 2,
            "horizon": ["1h", "4h"],
            "prediction": [0.01, 0.02],
            "lower_80": [-0.01, None],
            "upper_80": [0.03, None],
            "lower_95": [-0.02, None],
            "upper_95": [0.04, None],
            "model": ["har", "lstm"],
            "model_version": ["3", "3"],
            "coverage_80": [None, None],
            "coverage_95": [0.9, None],
        }
    )
    path = forecast_path(fc, 100.0)
    assert path is not None
    assert path["upper_95"].tolist()[:2] == pytest.approx([100.0, 100 * math.exp(0.04)])
    assert math.isnan(path["lower_80"].iloc[2])  # no interval stored: no band
    assert forecast_path(fc, None) is None  # no origin close: no price path
    one = horizon_line(fc.iloc[0], None)  # without a close, in percent
    assert one.startswith("1h: har v3 — 1.00 %, 80 % interval -1.00 % – 3.00 %")
    assert "(coverage not measured)" in one and "(covered 90 % of hold-out outcomes)" in one


# --------------------------------------------------------------------------- the Models page
def test_models_page_shows_skill_against_baselines_and_what_serves(home):
    at = AppTest.from_function(_models_page, default_timeout=60).run()
    assert not at.exception
    assert "Serving forecasters: skill against baselines" in [s.value for s in at.subheader]
    assert any("run r-new" in c.value for c in at.caption)

    skills = _table(at, "dm_pvalue")
    # rows for the LSTM and for each serving model, against every other candidate
    for (target, horizon), (serving, *_) in SERVED.items():
        prefix, models = ("", RETURN_MODELS) if target == "log_return" else ("vol_", VOL_MODELS)
        for model in {"lstm", serving}:
            sel = skills[
                (skills["target"] == target)
                & (skills["horizon"] == horizon)
                & (skills["model"] == model)
            ]
            assert set(sel["against"]) == set(models) - {model}
            for r in sel.itertuples():
                assert r.skill == pytest.approx(
                    metric_value("r-new", target, horizon, model, f"{prefix}skill:{r.against}")
                )
                assert r.dm_pvalue == pytest.approx(
                    metric_value("r-new", target, horizon, model, f"{prefix}dm_pvalue:{r.against}")
                )
            assert ("serving" in sel["role"].iloc[0]) == (model == serving)
    # a model that is neither the LSTM nor serving gets no skill rows
    assert not ((skills["target"] == "realized_vol") & (skills["model"] == "persistence")).any()

    losses = _table(at, "width_95")
    row = losses[
        (losses["target"] == "realized_vol")
        & (losses["horizon"] == "4h")
        & (losses["model"] == "har")
    ].iloc[0]
    assert row["loss"] == "qlike"
    assert row["value"] == pytest.approx(
        metric_value("r-new", "realized_vol", "4h", "har", "vol_qlike")
    )
    cov = metric_value("r-new", "realized_vol", "4h", "har", "vol_coverage_95")
    assert row["coverage_95"] == pytest.approx(100 * cov)
    assert set(losses["model"]) == set(RETURN_MODELS) | set(VOL_MODELS)

    now = _table(at, "reason")
    mine = now[now["exchange"] == "binance"]
    assert len(mine) == 6 and (mine["origin_ts"] == pd.Timestamp(ORIGIN)).all()
    got = {(r.target, r.horizon): r.model for r in mine.itertuples()}
    assert got == {k: v[0] for k, v in SERVED.items()}
    old = now[now["exchange"] == "coinbase"]
    assert set(old["model"]) == {"lstm"} and old["coverage_80"].isna().all()
