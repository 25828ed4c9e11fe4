"""ml.sentiment_lifecycle: the promotion rule; train -> evaluate -> register -> decide -> serve.

The lifecycle runs on the tiny random BERT of :mod:`tests.ml.test_sentiment_transformer`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.sentiment import LABELS
from ml.sentiment_lifecycle import (
    REGISTERED_NAME,
    SCORE_TAG,
    ChampionScore,
    decide,
    load_champion,
    train_and_register,
)
from ml.sentiment_transformer import METADATA_FILE, TrainConfig, TransformerSentimentModel
from ml.tracking import MlflowStore
from tests.ml.test_sentiment_transformer import TINY_TRAIN, tiny_dataset


def test_decide_promotes_only_a_better_score_on_the_same_rows() -> None:
    first = decide(0.10, None)
    assert first["promoted"] and first["reason"] == "no champion yet"
    worse = decide(0.05, ChampionScore("1", 0.10))
    assert not worse["promoted"] and "does not beat" in worse["reason"]
    assert (worse["champion_version"], worse["champion_score"]) == ("1", 0.10)
    tie = decide(0.10, ChampionScore("1", 0.10))
    assert not tie["promoted"]  # strictly better, or the champion stays
    better = decide(0.20, ChampionScore("1", 0.10))
    assert better["promoted"] and better["candidate_score"] == 0.20
    assert better["reason"] == "candidate beats champion by +0.1 (required > 0)"


@pytest.mark.parametrize(
    ("score", "champion", "promoted", "reason"),
    [
        (float("nan"), None, False, "candidate score is not finite"),
        (0.3, ChampionScore("2", None), True, "champion has no recorded score"),
        (0.3, ChampionScore("2", float("nan")), True, "champion has no recorded score"),
        (0.9, ChampionScore("2", None, comparable=False), False, "cannot be evaluated"),
    ],
)
def test_decide_edge_cases(
    score: float, champion: ChampionScore | None, promoted: bool, reason: str
) -> None:
    d = decide(score, champion)
    assert d["promoted"] is promoted and reason in d["reason"]


def test_train_register_and_promote_only_on_the_same_heldout(
    tiny_model_dir: Path, mlflow_store: MlflowStore, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    assert load_champion(mlflow_store, models) is None  # nothing trained: no MLflow at all
    assert not mlflow_store.exists()
    data = tiny_dataset(8)
    cfg = TrainConfig(**{**TINY_TRAIN.to_params(), "base_model": str(tiny_model_dir), "epochs": 2})
    logs: list[str] = []
    first = train_and_register(data, mlflow_store, models, config=cfg, log=logs.append)
    assert first["registered_version"] == "1" and first["promoted"]
    m = first["models"]
    assert set(m) == {"transformer", "vader"}
    for name in m:
        assert set(m[name]["confusion"]) == set(LABELS)
        assert sum(sum(r.values()) for r in m[name]["confusion"].values()) == first["n"]
        assert 0 <= m[name]["macro_f1"] <= 1 and "recall_negative" in m[name]
    assert "transformer_vs_vader" in first["mcnemar"]
    assert Path(first["model_dir"], METADATA_FILE).is_file()

    champ = load_champion(mlflow_store, models)
    assert isinstance(champ, TransformerSentimentModel)
    assert champ.version == f"v1-{first['model_version']}"

    # the same data and seed reproduce the same model and score: no promotion
    second = train_and_register(data, mlflow_store, models, config=cfg, log=logs.append)
    assert second["registered_version"] == "2" and not second["promoted"]
    assert second["model_version"] == first["model_version"]
    assert "does not beat" in second["decision"]
    client = mlflow_store.client()
    tags = client.get_model_version(REGISTERED_NAME, "2").tags
    assert tags["promotion_decision"] == "rejected" and float(tags[SCORE_TAG]) >= 0

    # another held-out set: the champion is re-scored on it before any comparison
    third = train_and_register(
        data, mlflow_store, models, config=cfg, split_seed=11, log=logs.append
    )
    assert any("re-evaluated on this held-out set" in line for line in logs)
    mv = mlflow_store.model_version(REGISTERED_NAME)
    assert mv.tags["heldout_sha256"] == third["heldout_sha256"]

    run = client.get_run(first["run_id"])
    assert "test_accuracy" in run.data.metrics and "vader_test_macro_f1" in run.data.metrics
    assert "mcnemar_transformer_vs_vader_p_value" in run.data.metrics
    # temperature scaling: fitted on validation, ECE before/after on the test rows, logged
    cal = first["calibration"]
    assert set(cal) == {"temperature", "ece_before", "ece_after", "nll_before", "nll_after"}
    assert cal["temperature"] == first["temperature"] == champ.temperature > 0
    assert 0 <= cal["ece_after"] <= 1 and 0 <= cal["ece_before"] <= 1
    for key in ("test_ece", "test_ece_before", "test_ece_after", "temperature", "val_nll_after"):
        assert key in run.data.metrics, key
    assert run.data.metrics["test_ece"] == pytest.approx(cal["ece_after"])
    assert run.data.tags["promotion_decision"] == "promoted"
    arts = {a.path for a in client.list_artifacts(first["run_id"], "tables")}
    assert "tables/confusion_matrix.csv" in arts
