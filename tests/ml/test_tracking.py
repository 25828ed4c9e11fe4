"""ml.tracking: server-less MLflow in a tmp dir; register; champion only when better."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import polars as pl
import pytest
from mlflow import MlflowClient

from ml import tracking
from ml.features import build_features
from ml.forecaster import (
    ForecasterConfig,
    load_registered_forecaster,
    log_forecaster,
    pyfunc_input,
    train_forecaster,
)
from tests.ml.test_features import make_candles


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    tracking.configure_mlflow(home / "mlflow.db", home / "artifacts")
    yield home
    mlflow.set_tracking_uri(previous)
    tracking._state["artifact_root"] = None


def _logged_run(name: str = "run") -> str:
    with tracking.start_run("tests", name, params={"lookback": 8, "seeds": [0, 1]}) as run:
        logged = tracking.log_metrics({"rmse": 0.5, "skipped": float("nan"), "a/BTC/USDT": 1.0})
        assert set(logged) == {"rmse", "a/BTC/USDT"}
        tracking.log_frame_artifact(pl.DataFrame({"x": [1, 2]}), "evaluation")
        tracking.log_frame_artifact(pl.DataFrame({"x": [1, 2]}), "evaluation.json")
        mlflow.log_text("not a model", "model/README.txt")
    return run.info.run_id


def test_runs_land_in_sqlite_and_local_artifacts(mlflow_home: Path) -> None:
    run_id = _logged_run()
    assert mlflow.get_tracking_uri() == f"sqlite:///{(mlflow_home / 'mlflow.db').resolve()}"
    run = MlflowClient().get_run(run_id)
    assert run.data.params == {"lookback": "8", "seeds": "[0, 1]"}
    assert run.data.metrics == {"rmse": 0.5, "a/BTC/USDT": 1.0}
    assert run.info.artifact_uri.startswith((mlflow_home / "artifacts").resolve().as_uri())
    arts = {a.path for a in MlflowClient().list_artifacts(run_id, "tables")}
    assert arts == {"tables/evaluation.csv", "tables/evaluation.json"}


def test_champion_promoted_only_when_better(mlflow_home: Path) -> None:
    name = "promo-model"
    assert tracking.get_champion(name) is None
    versions = [tracking.register_model(_logged_run(f"r{i}"), "model", name) for i in range(4)]
    assert versions == ["1", "2", "3", "4"]

    first = tracking.promote_if_better(name, "1", 0.10, higher_is_better=True)
    assert first["promoted"] and first["champion_version"] is None
    worse = tracking.promote_if_better(name, "2", 0.05, higher_is_better=True)
    assert not worse["promoted"]
    assert (worse["champion_version"], worse["champion_score"]) == ("1", 0.10)
    assert tracking.get_champion(name)[0] == "1"
    nan = tracking.promote_if_better(name, "3", float("nan"))
    assert not nan["promoted"]
    better = tracking.promote_if_better(name, "4", 0.20)
    assert better["promoted"] and better["candidate_score"] == 0.20

    version, metrics = tracking.get_champion(name)
    assert version == "4"
    assert metrics["promotion_score"] == 0.20 and metrics["rmse"] == 0.5
    assert not tracking.promote_if_better(name, "4", 0.20)["promoted"]  # already champion
    with pytest.raises(ValueError, match="higher_is_better"):
        tracking.promote_if_better(name, "2", 0.01, higher_is_better=False)


def test_lower_is_better_promotion(mlflow_home: Path) -> None:
    name = "rmse-model"
    v1 = tracking.register_model(_logged_run(), "model", name)
    v2 = tracking.register_model(_logged_run(), "model", name)
    assert tracking.promote_if_better(name, v1, 0.02, higher_is_better=False)["promoted"]
    d = tracking.promote_if_better(name, v2, 0.019, higher_is_better=False, min_improvement=0.01)
    assert not d["promoted"]  # better, but not by the required margin
    assert tracking.get_champion(name)[0] == v1


def test_recorded_decision_tags_the_version_and_moves_the_alias_only_when_promoted(
    mlflow_home: Path,
) -> None:
    name = "decided-model"
    v1, v2 = (tracking.register_model(_logged_run(), "model", name) for _ in range(2))
    rejected = tracking.record_decision(name, v1, False, "loses to zero_return", {"rmse": 1.0})
    assert not rejected["promoted"] and rejected["champion_version"] is None
    assert tracking.get_champion(name) is None  # still registered, not champion
    tags = MlflowClient().get_model_version(name, v1).tags
    assert tags["promotion_decision"] == "rejected"
    assert tags["promotion_reason"] == "loses to zero_return"
    assert tags["promotion_numbers"] == '{"rmse": 1.0}'
    assert tracking.record_decision(name, v2, True, "beats all")["promoted"]
    assert tracking.get_champion(name)[0] == v2
    assert tracking.record_decision(name, v1, False, "again")["champion_version"] == v2
    assert tracking.get_champion(name)[0] == v2


def test_forecaster_logs_registers_and_loads(mlflow_home: Path) -> None:
    frame, cols = build_features(make_candles(120, symbols=("BTC/USDT",)))
    model = train_forecaster(
        frame, cols, ForecasterConfig(lookback=8, hidden=4, epochs=2, seeds=(0,))
    )
    with tracking.start_run("forecaster", "lstm", params=model.config.to_dict()) as run:
        log_forecaster(model, name="forecaster")
    version = tracking.register_model(run.info.run_id, "forecaster", "lstm-forecaster")
    assert tracking.promote_if_better("lstm-forecaster", version, 0.01)["promoted"]

    expected = model.predict(frame)
    pyfunc = mlflow.pyfunc.load_model("models:/lstm-forecaster@champion")
    got = pl.from_pandas(pyfunc.predict(pyfunc_input(frame, cols)))
    assert got.equals(expected)
    loaded = load_registered_forecaster("lstm-forecaster")
    assert loaded.info["registered_version"] == version
    assert loaded.predict(frame).equals(expected)
