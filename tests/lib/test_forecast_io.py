"""sentinance_assets.lib.forecast_io: candles in from files, forecaster outputs out as rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from ml.features import build_feature_set, build_features
from ml.forecaster import ForecasterConfig, train_forecaster
from sentinance_assets.lib.forecast_io import (
    candle_files,
    evaluation_rows,
    forecast_rows,
    load_hourly_candles,
    read_candles_file,
    read_candles_files,
)
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS
from tests.conftest import shared_data
from tests.ml.test_features import make_candles

NOW = datetime(2026, 11, 12, 8, 30, 15, 123456, tzinfo=UTC)


def test_read_candles_file_handles_ms_seconds_iso_and_duplicates(tmp_path) -> None:
    base = 1_600_000_000  # seconds
    rows = [
        # descending, mixed units, one duplicate bar (same time in s and ms)
        (str((base + 7200) * 1000), "X/USDT", 3.0),
        (str(base + 3600), "X/USDT", 2.0),
        (str(base * 1000), "X/USDT", 1.0),
        (f"{base}.0", "X/USDT", 9.0),
    ]
    csv = tmp_path / "c.csv"
    csv.write_text(
        "Timestamp,Symbol,Open,High,Low,Close,Volume\n"
        + "".join(f"{t},{s},{c},{c},{c},{c},1\n" for t, s, c in rows)
    )
    got = read_candles_file(csv)
    assert got.columns == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    # sorted; the duplicate stays, in file order, for the features to keep the first and count
    assert got["close"].to_list() == [1.0, 9.0, 2.0, 3.0]
    assert got["ts"].dt.epoch("s").to_list() == [base, base, base + 3600, base + 7200]
    fs = build_feature_set(got)
    assert fs.quality.totals()["duplicate_rows"] == 1
    iso = tmp_path / "c.parquet"
    pl.DataFrame(
        {
            "timestamp": ["2020-09-13T12:26:40Z", "2020-09-13 13:26:40"],
            "symbol": ["X/USDT"] * 2,
            **{c: [1.0, 2.0] for c in ("open", "high", "low", "close", "volume")},
        }
    ).write_parquet(iso)
    assert read_candles_file(iso)["ts"].dt.epoch("s").to_list() == [base, base + 3600]
    (tmp_path / "bad.csv").write_text("ts,symbol\n1,X\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_candles_file(tmp_path / "bad.csv")


CDD_BINANCE = (
    "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount\n"
    "1609455600000,2020-12-31 23:00:00,BTC/USDT,29100.83,29110.35,28780.0,28923.63,1976.4,"
    "57243040.0,46165\n"
    "1609452000000,2020-12-31 22:00:00,BTC/USDT,28966.36,29143.73,28910.19,29100.84,1438.5,"
    "41807122.8,36413\n"
    "1609448400.0,2020-12-31 09-PM,BTC/USDT,29126.71,29169.55,28900.79,28966.36,2524.4,"
    "73351462.9,NULL\n"
)
CDD_GEMINI = (
    "Created on 12-30-2020,https://www.CryptoDataDownload.com\n"
    "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume\n"
    "1609286400000,2020-12-30 00:00:00,BTCUSD,27368.9,27600.0,27368.9,27524.93,21.92\n"
    "1609282800,2020-12-29 23:00:00,BTCUSD,27040.74,27400.0,26944.17,27368.9,99.46\n"
)


def test_cryptodatadownload_files_read_as_downloaded(tmp_path: Path) -> None:
    (tmp_path / "Binance_BTCUSDT_1h.csv").write_text(CDD_BINANCE)
    (tmp_path / "Gemini_BTCUSD_1h.csv").write_text(CDD_GEMINI)
    binance = read_candles_file(tmp_path / "Binance_BTCUSDT_1h.csv")
    assert binance["volume"].to_list() == [2524.4, 1438.5, 1976.4]  # the base (BTC) volume
    assert binance["ts"].dt.epoch("s").to_list() == [1609448400, 1609452000, 1609455600]
    gemini = read_candles_file(tmp_path / "Gemini_BTCUSD_1h.csv")  # banner line skipped
    assert gemini["symbol"].to_list() == ["BTCUSD"] * 2 and gemini["volume"][0] == 99.46
    # several files, or their folder: one frame, the same either way
    both = read_candles_files(
        [tmp_path / "Binance_BTCUSDT_1h.csv", tmp_path / "Gemini_BTCUSD_1h.csv"]
    )
    assert both.equals(read_candles_files([tmp_path]))
    assert both.group_by("symbol").len().sort("symbol").rows() == [("BTC/USDT", 3), ("BTCUSD", 2)]
    assert candle_files([tmp_path]) == sorted(tmp_path.glob("*.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no CSV or Parquet"):
        candle_files([tmp_path / "empty"])


@pytest.mark.parametrize(
    "name", ["Binance_BTCUSDT_1h.csv", "Binance_ETHUSDT_1h.csv", "Gemini_BTCUSD_1h.csv"]
)
def test_real_cdd_history_gives_finite_features_for_the_whole_file(name: str) -> None:
    """Years of real hourly candles (duplicates, gaps, maintenance runs, broken first bars):
    every feature of every row is finite, and what was left out is counted."""
    path = shared_data("crypto_prices_hourly_cdd", name)
    fs = build_feature_set(read_candles_file(path))
    q = fs.quality.totals()
    assert q["rows"] > 30_000 and q["feature_rows"] > 25_000
    assert np.isfinite(fs.frame.select(fs.feature_cols).to_numpy()).all()
    targets = fs.frame.select(pl.col("^target_.*$", "^rv_target_.*$")).to_numpy()
    assert not np.isinf(targets).any()
    assert q["maintenance_bars"] > 0 and q["missing_bars"] > 0  # the documented defects
    assert q["usable_bars"] == q["present_bars"] - q["flagged_bars"]
    assert q["rows"] == q["present_bars"] + q["duplicate_rows"]


def test_evaluation_rows_carry_the_run_and_the_schema() -> None:
    evaluation = pl.DataFrame(
        {"symbol": ["ALL"], "horizon": ["1h"], "model": ["lstm"], "metric": ["rmse"]}
    ).with_columns(pl.lit(0.5).alias("value"), pl.lit(10).alias("n"))
    run = SimpleNamespace(evaluation=evaluation, run_id="run-1", version="3")
    rows = evaluation_rows(run, now=NOW)  # type: ignore[arg-type]
    assert rows.schema == pl.Schema(FORECAST_EVALUATION.columns)
    assert rows.row(0, named=True) == {
        "run_id": "run-1",
        "model_version": "3",
        "symbol": "ALL",
        "horizon": "1h",
        "model": "lstm",
        "metric": "rmse",
        "value": 0.5,
        "n": 10,
        "evaluated_at": NOW.replace(microsecond=123000),
    }


def test_forecast_rows_are_the_latest_origin_of_each_symbol() -> None:
    candles = make_candles(120, symbols=("BTC/USDT", "ETH/USDT"))
    frame, cols = build_features(candles)
    config = ForecasterConfig(lookback=8, hidden=4, epochs=1, seeds=(0,))
    model = train_forecaster(frame, cols, config)
    model.info["registered_version"] = "7"
    quantiles = {"80": [-1.0, 1.0], "95": [-2.0, 2.0]}
    model.info["serving_plan"] = {
        f"{target}:{h}": {
            "target": target,
            "horizon": h,
            "model": "lstm" if h == "1h" else ("zero_return" if target == "log_return" else "har"),
            "quantiles": quantiles,
            "coverage_80": 0.8,
            "coverage_95": None,
            "reason": "test",
        }
        for target in ("log_return", "realized_vol")
        for h in config.horizons
    }
    rows = forecast_rows(model, candles, "binance", now=NOW)
    assert rows.schema == pl.Schema(FORECASTS.columns)
    assert rows.height == 2 * 2 * len(config.horizons)  # symbols x targets x horizons
    assert set(rows["model"]) == {"lstm", "zero_return", "har"}
    assert (rows["lower_95"] < rows["lower_80"]).all() and (
        rows["upper_80"] < rows["upper_95"]
    ).all()
    assert set(rows["exchange"]) == {"binance"} and set(rows["model_version"]) == {"7"}
    assert (rows["origin_ts"] == candles["ts"].max()).all()


def test_hourly_candles_carry_the_intraday_variance_of_their_minutes(tmp_path) -> None:
    import duckdb

    rng = np.random.default_rng(1)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    minutes = [t0 + timedelta(minutes=m) for m in range(70)]  # hour 0 whole, hour 1: 10 minutes
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 70)))
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute("create schema marts")
        conn.execute(
            "create table marts.candles (exchange varchar, symbol varchar, timeframe varchar, "
            "ts timestamptz, open double, high double, low double, close double, volume double)"
        )
        rows = [
            ("binance", "X/USDT", "1m", t, c, c, c, c, 1.0)
            for t, c in zip(minutes, close, strict=True)
        ]
        rows += [
            ("binance", "X/USDT", "1h", t0 + timedelta(hours=h), 1, 1, 1, 1, 1) for h in (0, 1)
        ]
        rows += [("kraken", "X/USDT", "1h", t0, 1, 1, 1, 1, 1)]
        conn.executemany("insert into marts.candles values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    got = load_hourly_candles(db, "binance")
    assert got["ts"].to_list() == [t0, t0 + timedelta(hours=1)]
    r = np.diff(np.log(close))
    # hour 0: its 59 one-minute returns; hour 1: 10 of 60 (< 30) is too few, so null
    assert got["realized_var"].to_list() == [pytest.approx(float(np.sum(r[:59] ** 2))), None]
    assert load_hourly_candles(db, "kraken")["realized_var"].to_list() == [None]
