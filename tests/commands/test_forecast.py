"""``sentinance forecast evaluate``: argument parsing, file reading, JSON side by side."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import polars as pl

from sentinance_assets.commands import forecast
from sentinance_assets.settings import Settings
from tests.ml.test_features import make_candles


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sentinance")
    forecast.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_evaluate_prints_model_and_baselines_per_symbol_and_horizon(tmp_path, capsys):
    candles = make_candles(240, symbols=("BTC/USDT", "ETH/USDT"), seed=2)
    paths = _write_per_symbol(candles, tmp_path)
    # a duplicated bar and a maintenance bar in the ETH file: counted, never NaN
    eth = pl.read_csv(paths[1])
    flat = eth["close"][30]
    eth = pl.concat([eth, eth.slice(10, 1)]).with_columns(
        pl.when(pl.int_range(pl.len()) == 31).then(pl.lit(v)).otherwise(pl.col(c)).alias(c)
        for c, v in {"open": flat, "high": flat, "low": flat, "close": flat, "volume": 0.0}.items()
    )
    eth.write_csv(paths[1])
    start = candles["ts"].max() - timedelta(hours=60)
    args = _parse(
        [
            "forecast",
            "evaluate",
            "--candles",
            str(paths[0]),
            "--candles",
            str(paths[1]),
            "--test-start",
            start.strftime("%Y-%m-%dT%H:%M"),
            "--epochs",
            "2",
            "--seed",
            "3",
            "--output",
            str(tmp_path / "out.json"),
        ]
    )
    settings = Settings.from_env({"SENTINANCE_HOME": str(tmp_path / "home")})
    assert args.func(settings, args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads((tmp_path / "out.json").read_text())
    assert out["test_start"] == start.isoformat()
    assert out["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert out["candles"] == [str(p) for p in paths] and out["left_out_symbols"] == []
    quality = out["data_quality"]["per_symbol"]
    assert quality["ETH/USDT"]["duplicate_rows"] == 1
    assert quality["ETH/USDT"]["maintenance_bars"] == 1
    assert quality["BTC/USDT"]["flagged_bars"] == 0
    assert out["data_quality"]["total"]["masked_feature_rows"] == 24
    assert set(out["evaluation"]) == {"BTC/USDT", "ETH/USDT", "ALL"}
    assert list(out["horizons"]) == ["1h", "4h", "24h"]
    for sym in ("BTC/USDT", "ALL"):
        for h in out["horizons"]:
            cell = out["evaluation"][sym][h]
            assert set(cell) == {"lstm", "zero_return", "persistence", "ewma_vol", "har"}
            assert cell["lstm"]["rmse_n"] == cell["zero_return"]["rmse_n"] > 0
            assert cell["lstm"]["vol_qlike_n"] == cell["har"]["vol_qlike_n"] > 0
            assert cell["zero_return"]["direction_accuracy"] is None  # no call, not 50 %
            # HAR beside the other baselines, with DM tests and interval coverage
            assert 0 <= cell["har"]["vol_dm_pvalue:ewma_vol"] <= 1
            assert 0 <= cell["lstm"]["dm_pvalue:zero_return"] <= 1
            assert 0 <= cell["zero_return"]["coverage_95"] <= 1
    serving = out["serving"]
    assert set(serving) == {
        f"{t}:{h}" for t in ("log_return", "realized_vol") for h in out["horizons"]
    }
    assert all(e["reason"].startswith("lowest pooled") for e in serving.values())
    assert out["realized_volatility_from"] == "hourly returns (no intraday data)"
    # one fold here (37 test origins); its training ends one max-horizon gap before the start
    assert [f["train_end"] for f in out["folds"]] == [(start - timedelta(hours=24)).isoformat()]
    assert out["config"]["epochs"] == 2 and out["config"]["seeds"] == [3, 4, 5]
    assert isinstance(out["promotion_vs_baselines"]["beats_all_baselines"], bool)


def _write_per_symbol(candles: pl.DataFrame, folder: Path) -> list[Path]:
    """One CSV per symbol (epoch ms timestamps), newest first like the downloads."""
    paths = []
    for (symbol,), part in candles.sort("ts", descending=True).group_by(
        "symbol", maintain_order=True
    ):
        path = folder / f"{str(symbol).replace('/', '')}_1h.csv"
        part.with_columns(pl.col("ts").dt.epoch("ms").alias("timestamp")).drop("ts").write_csv(path)
        paths.append(path)
    return sorted(paths)


def test_evaluate_on_too_little_history_says_what_it_needs(tmp_path, capsys):
    folder = tmp_path / "candles"
    folder.mkdir()
    _write_per_symbol(make_candles(48, symbols=("BTC/USDT", "ETH/USDT")), folder)
    args = _parse(["forecast", "evaluate", "--candles", str(folder)])
    assert args.func(Settings.from_env({"SENTINANCE_HOME": str(tmp_path / "h")}), args) == 2
    err = capsys.readouterr().err
    assert "cannot evaluate: too little history" in err
    assert "needs 3 days of hourly history per symbol, has 2 (48 usable hourly bars)" in err


def test_evaluate_reports_unreadable_files(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,symbol\n1,X\n")
    args = _parse(["forecast", "evaluate", "--candles", str(bad)])
    assert args.func(None, args) == 2
    assert "missing columns" in capsys.readouterr().err
