"""sentinance_assets.lib.forecast_io: candles in from files, forecaster outputs out as rows."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import polars as pl
import pytest

from ml.features import build_features
from ml.forecaster import ForecasterConfig, train_forecaster
from sentinance_assets.lib.forecast_io import evaluation_rows, forecast_rows, read_candles_file
from sentinance_assets.lib.schemas import FORECAST_EVALUATION, FORECASTS
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
    assert got["close"].to_list() == [1.0, 2.0, 3.0]  # sorted, first duplicate kept
    assert got["ts"].dt.epoch("s").to_list() == [base, base + 3600, base + 7200]
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
    rows = forecast_rows(model, candles, "binance", now=NOW)
    assert rows.schema == pl.Schema(FORECASTS.columns)
    assert rows.height == 2 * 2 * len(config.horizons)  # symbols x targets x horizons
    assert set(rows["exchange"]) == {"binance"} and set(rows["model_version"]) == {"7"}
    assert (rows["origin_ts"] == candles["ts"].max()).all()
