"""``sentinance forecast evaluate``: argument parsing, file reading, JSON side by side."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

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
    path = tmp_path / "candles.csv"
    candles.with_columns(pl.col("ts").dt.epoch("ms").alias("timestamp")).drop("ts").write_csv(path)
    start = candles["ts"].max() - timedelta(hours=60)
    args = _parse(
        [
            "forecast",
            "evaluate",
            "--candles",
            str(path),
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
    assert set(out["evaluation"]) == {"BTC/USDT", "ETH/USDT", "ALL"}
    assert list(out["horizons"]) == ["1h", "4h", "24h"]
    for sym in ("BTC/USDT", "ALL"):
        for h in out["horizons"]:
            cell = out["evaluation"][sym][h]
            assert set(cell) == {"lstm", "zero_return", "persistence", "ewma_vol"}
            assert cell["lstm"]["rmse_n"] == cell["zero_return"]["rmse_n"] > 0
            assert cell["lstm"]["vol_qlike_n"] == cell["ewma_vol"]["vol_qlike_n"] > 0
            assert cell["zero_return"]["direction_accuracy"] is None  # no call, not 50 %
    # one fold here (37 test origins); its training ends one max-horizon gap before the start
    assert [f["train_end"] for f in out["folds"]] == [(start - timedelta(hours=24)).isoformat()]
    assert out["config"]["epochs"] == 2 and out["config"]["seeds"] == [3, 4, 5]
    assert isinstance(out["promotion_vs_baselines"]["beats_all_baselines"], bool)


def test_evaluate_reports_unreadable_files(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,symbol\n1,X\n")
    args = _parse(["forecast", "evaluate", "--candles", str(bad)])
    assert args.func(None, args) == 2
    assert "missing columns" in capsys.readouterr().err
