"""ml.tracking: a server-less MLflow store in a tmp dir; register; record decisions."""

from __future__ import annotations

from pathlib import Path

import mlflow
import polars as pl
import pytest

from ml import tracking
from ml.features import build_features
from ml.forecaster import (
    ForecasterConfig,
    load_registered_forecaster,
    log_forecaster,
    pyfunc_input,
    train_forecaster,
)
from ml.tracking import MlflowStore
from tests.ml.test_features import make_candles


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> MlflowStore:
    home = tmp_path_factory.mktemp("mlflow")
    return MlflowStore(home / "mlflow.db", home / "artifacts")


def _logged_run(store: MlflowStore, name: str = "run") -> str:
    with store.start_run("tests", name, params={"lookback": 8, "seeds": [0, 1]}) as run:
        logged = tracking.log_metrics({"rmse": 0.5, "skipped": float("nan"), "a/BTC/USDT": 1.0})
        assert set(logged) == {"rmse", "a/BTC/USDT"}
        tracking.log_frame_artifact(pl.DataFrame({"x": [1, 2]}), "evaluation")
        tracking.log_frame_artifact(pl.DataFrame({"x": [1, 2]}), "evaluation.json")
        mlflow.log_text("not a model", "model/README.txt")
    return run.info.run_id


def test_a_store_is_a_value_that_touches_nothing_until_used(tmp_path: Path) -> None:
    store = MlflowStore(tmp_path / "sub" / "m.db", tmp_path / "art")
    assert store.tracking_db.is_absolute() and store.uri == f"sqlite:///{store.tracking_db}"
    assert not store.exists() and not (tmp_path / "sub").exists()
    assert store == MlflowStore(store.tracking_db, store.artifact_dir)  # frozen, comparable
    assert store.model_version("nothing") is None  # a fresh store has no registry entries
    assert store.exists()


def test_runs_land_in_sqlite_and_local_artifacts(store: MlflowStore) -> None:
    run_id = _logged_run(store)
    assert mlflow.active_run() is None  # the run ended with its block
    run = store.client().get_run(run_id)
    assert run.data.params == {"lookback": "8", "seeds": "[0, 1]"}
    assert run.data.metrics == {"rmse": 0.5, "a/BTC/USDT": 1.0}
    assert run.info.artifact_uri.startswith(store.artifact_dir.as_uri())
    arts = {a.path for a in store.client().list_artifacts(run_id, "tables")}
    assert arts == {"tables/evaluation.csv", "tables/evaluation.json"}


def test_a_failing_block_ends_its_run_as_failed(store: MlflowStore) -> None:
    with pytest.raises(RuntimeError), store.start_run("tests", "crash") as run:
        raise RuntimeError("boom")
    assert mlflow.active_run() is None
    assert store.client().get_run(run.info.run_id).info.status == "FAILED"


def test_versions_are_numbered_and_found_by_alias(store: MlflowStore) -> None:
    name = "aliased-model"
    versions = [store.register_model(_logged_run(store, f"r{i}"), "model", name) for i in range(3)]
    assert versions == ["1", "2", "3"]
    assert store.model_version(name) is None  # registered, not champion
    store.set_alias(name, "latest_trained", "3")
    store.set_version_tags(name, "3", {"k": "v"})
    mv = store.model_version(name, "latest_trained")
    assert str(mv.version) == "3" and mv.tags["k"] == "v"


def test_recorded_decision_tags_the_version_and_moves_the_alias_only_when_promoted(
    store: MlflowStore,
) -> None:
    name = "decided-model"
    v1, v2 = (store.register_model(_logged_run(store), "model", name) for _ in range(2))
    rejected = store.record_decision(name, v1, False, "loses to zero_return", {"rmse": 1.0})
    assert not rejected["promoted"] and rejected["champion_version"] is None
    assert store.model_version(name) is None  # still registered, not champion
    tags = store.client().get_model_version(name, v1).tags
    assert tags["promotion_decision"] == "rejected"
    assert tags["promotion_reason"] == "loses to zero_return"
    assert tags["promotion_numbers"] == '{"rmse": 1.0}'
    assert "promoted_at" not in tags
    assert store.record_decision(name, v2, True, "beats all")["promoted"]
    assert str(store.model_version(name).version) == v2
    assert "promoted_at" in store.client().get_model_version(name, v2).tags
    assert store.record_decision(name, v1, False, "again")["champion_version"] == v2
    assert str(store.model_version(name).version) == v2


def test_forecaster_logs_registers_and_loads(store: MlflowStore) -> None:
    frame, cols = build_features(make_candles(120, symbols=("BTC/USDT",)))
    model = train_forecaster(
        frame, cols, ForecasterConfig(lookback=8, hidden=4, epochs=2, seeds=(0,))
    )
    with store.start_run("forecaster", "lstm", params=model.config.to_dict()) as run:
        log_forecaster(model, name="forecaster")
    version = store.register_model(run.info.run_id, "forecaster", "lstm-forecaster")
    assert store.record_decision("lstm-forecaster", version, True, "test")["promoted"]

    expected = model.predict(frame)
    store.activate()  # the pyfunc loader resolves models:/ through MLflow's fluent API
    pyfunc = mlflow.pyfunc.load_model("models:/lstm-forecaster@champion")
    got = pl.from_pandas(pyfunc.predict(pyfunc_input(frame, cols)))
    assert got.equals(expected)
    loaded = load_registered_forecaster(store, "lstm-forecaster")
    assert loaded.info["registered_version"] == version
    assert loaded.predict(frame).equals(expected)
