"""One training recipe: a PhraseBank folder (its CSV or the original release's text files) and
a plain ``text,label[,agreement]`` CSV give ``sentinance sentiment train`` the same inputs.

Nothing is fine-tuned: ``fine_tune`` is replaced by a recorder that stops the run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml import sentiment_lifecycle
from ml.sentiment_eval import load_labelled
from ml.sentiment_lifecycle import prepare_training
from ml.sentiment_transformer import TrainConfig
from sentinance_assets.commands import sentiment
from sentinance_assets.settings import Settings
from tests.ml.test_sentiment_transformer import tiny_dataset

LEVELS = (100, 75, 66, 50)


class Stop(Exception):
    """Raised by the recorder instead of fine-tuning."""


def _rows() -> pl.DataFrame:
    data = tiny_dataset(4)
    rng = np.random.default_rng(3)
    return data.with_columns(
        pl.Series("max_agreement", [LEVELS[int(i)] for i in rng.integers(0, 4, data.height)])
    )


def _write_all(rows: pl.DataFrame, tmp_path: Path) -> dict[str, Path]:
    """The same labelled rows as a PhraseBank folder (CSV), a PhraseBank folder (original text
    files only) and a plain CSV with a fractional ``agreement`` column and capitalised headers."""
    folder = tmp_path / "phrasebank"
    folder.mkdir()
    rows.rename({"text": "sentence"}).write_csv(folder / "financial_phrasebank.csv")
    release = tmp_path / "release" / "FinancialPhraseBank-v1.0"
    release.mkdir(parents=True)
    for level, name in ((50, "50Agree"), (66, "66Agree"), (75, "75Agree"), (100, "AllAgree")):
        part = rows.filter(pl.col("max_agreement") >= level)
        lines = [f"{t}@{y}" for t, y in zip(part["text"], part["label"], strict=True)]
        (release / f"Sentences_{name}.txt").write_text("\n".join(lines) + "\n", encoding="latin-1")
    plain = tmp_path / "plain.csv"
    rows.select(
        pl.col("text").alias("Text"),
        pl.col("label").str.to_uppercase().alias("Label"),
        (pl.col("max_agreement") / 100).alias("agreement"),
    ).write_csv(plain)
    return {"folder": folder, "release": release.parent, "csv": plain}


def test_folder_release_and_plain_csv_prepare_the_same_training_inputs(tmp_path: Path) -> None:
    paths = _write_all(_rows(), tmp_path)
    cfg = TrainConfig(seed=3)
    prepared = {k: prepare_training(load_labelled(p), cfg) for k, p in paths.items()}
    ref = prepared["folder"]
    assert ref.weights is not None and len(set(ref.weights)) > 1  # agreement weighting is on
    for name, inputs in prepared.items():
        assert inputs.config == ref.config, name
        assert inputs.split.train.equals(ref.split.train), name
        assert inputs.split.val.equals(ref.split.val), name
        assert inputs.split.test.equals(ref.split.test), name
        assert inputs.weights == pytest.approx(ref.weights), name
        assert inputs.fine_tune_args()["train_texts"] == ref.fine_tune_args()["train_texts"]
    # without an agreement column: every sentence weighs 1 (unweighted), same split
    plain = tmp_path / "no_agreement.csv"
    _rows().select("text", "label").write_csv(plain)
    bare = prepare_training(load_labelled(plain), cfg)
    assert bare.weights is None and bare.split.test["text"].equals(ref.split.test["text"])


def _train_inputs(settings: Settings, data: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    seen: dict[str, Any] = {}

    def record(log: Any = None, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(sentiment_lifecycle, "fine_tune", record)
    parser = argparse.ArgumentParser(prog="sentinance")
    sentiment.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sentiment", "train", "--data", str(data)])
    with pytest.raises(Stop):
        args.func(settings, args)
    return seen


def test_cli_trains_folder_and_plain_csv_with_the_same_recipe(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _write_all(_rows(), tmp_path)
    seen = {k: _train_inputs(tiny_settings, p, monkeypatch) for k, p in paths.items()}
    ref = seen["folder"]
    assert ref["train_weights"] is not None
    for name, kwargs in seen.items():
        assert set(kwargs) == set(ref), name
        for key, value in kwargs.items():
            if key == "train_weights":
                assert value == pytest.approx(ref[key]), name
            else:
                assert value == ref[key], (name, key)
    # and the CLI's defaults are the recipe the Dagster asset trains (TrainConfig + the seed)
    assert ref["config"] == TrainConfig(seed=tiny_settings.seed)
