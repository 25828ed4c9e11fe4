"""Fixtures of the ML tests: an MLflow store of their own (as the Dagster resource gives one)
and a tiny random sentiment transformer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.tracking import MlflowStore


@pytest.fixture
def mlflow_store(tmp_path: Path) -> MlflowStore:
    """An empty store in the test's folder: nothing to reset afterwards."""
    return MlflowStore(tmp_path / "mlflow.db", tmp_path / "mlflow-artifacts")


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A random one-layer BERT classifier with an offline tokenizer (no hub, no weights)."""
    from tests.ml.test_sentiment_transformer import make_tiny_model

    return make_tiny_model(tmp_path / "tiny")
