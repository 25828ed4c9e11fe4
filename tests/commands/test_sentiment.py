"""``sentinance sentiment evaluate|train``: parsing, JSON output, errors, champion pick-up."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sentinance_assets.commands import sentiment
from sentinance_assets.settings import Settings
from tests.ml.test_sentiment_transformer import make_tiny_model, tiny_dataset


def _run(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sentinance")
    sentiment.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(settings, args)


@pytest.fixture
def labelled_csv(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.csv"
    tiny_dataset(4).write_csv(path)
    return path


def test_evaluate_vader_only_prints_metrics_json(tiny_settings, labelled_csv, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = _run(
        tiny_settings, ["sentiment", "evaluate", "--data", str(labelled_csv), "--output", str(out)]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(out.read_text())
    assert set(doc["models"]) == {"vader"}  # nothing trained in this home
    vader = doc["models"]["vader"]
    assert doc["n"] == 44 and vader["n"] == 44
    assert {"accuracy", "macro_f1", "precision_positive", "recall_negative", "confusion"} <= set(
        vader
    )
    assert sum(sum(r.values()) for r in vader["confusion"].values()) == 44


def test_evaluate_a_given_model_adds_mcnemar(tiny_settings, labelled_csv, tmp_path, capsys):
    model_dir = make_tiny_model(tmp_path / "tiny")
    code = _run(
        tiny_settings,
        ["sentiment", "evaluate", "--data", str(labelled_csv), "--model", str(model_dir)],
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["models"]) == {"vader", "transformer"}
    test = doc["mcnemar"]["transformer_vs_vader"]
    assert set(test) == {"b", "c", "statistic", "p_value"} and 0 <= test["p_value"] <= 1


def test_bad_data_is_a_clear_error(tiny_settings, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nprices soar,bullish\n")
    assert _run(tiny_settings, ["sentiment", "evaluate", "--data", str(bad)]) == 2
    assert "unknown labels ['bullish']" in capsys.readouterr().err
    missing = tmp_path / "absent.csv"
    assert _run(tiny_settings, ["sentiment", "train", "--data", str(missing)]) == 2
    assert "not found" in capsys.readouterr().err
    thin = tmp_path / "thin.csv"
    thin.write_text("text,label\nprofit rose,positive\nsales fell,negative\nit is listed,neutral\n")
    assert _run(tiny_settings, ["sentiment", "train", "--data", str(thin)]) == 2
    err = capsys.readouterr().err
    assert (
        "cannot train: too few labelled sentences" in err
        and "has 1 negative, 1 neutral, 1 positive" in err
    )


def test_train_registers_then_evaluate_uses_the_champion(tiny_settings, tmp_path, capsys):
    data = tmp_path / "train.csv"
    tiny_dataset(6).write_csv(data)
    base = make_tiny_model(tmp_path / "tiny")
    argv = ["sentiment", "train", "--data", str(data), "--base-model", str(base), "--epochs", "2"]
    argv += ["--learning-rate", "3e-3", "--batch-size", "4", "--max-length", "32", "--threads", "1"]
    assert _run(tiny_settings, argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["registered_version"] == "1" and doc["promoted"] is True
    assert Path(doc["model_dir"]).is_relative_to(tiny_settings.models_dir)
    assert tiny_settings.mlflow_db.is_file()
    assert _run(tiny_settings, ["sentiment", "evaluate", "--data", str(data)]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["source"] == "champion" and set(ev["models"]) == {"vader", "transformer"}
    assert ev["versions"]["transformer"] == f"transformer:v1-{doc['model_version']}"
