"""MLflow tracking and model registry with no server: a SQLite file plus a local artifact folder.

Why this shape (see STACK_NOTES.md): MLflow 3 refuses a plain ``file:`` store, and a SQLite
backend works offline with the full registry (versions, tags, aliases). MLflow would put the
artifacts of a default experiment under ``./mlruns`` of whatever the current directory happens
to be, so every experiment is created here with an explicit ``artifact_location`` under the
store's artifact folder.

The store is a value, :class:`MlflowStore`, built once (by a Dagster resource, a CLI command or
a test's temporary folder) and passed to every function that logs, registers or loads a model:
no module state to configure first or to reset afterwards. MLflow's fluent API (``start_run``,
``log_metrics``, ``log_model``) is process-wide, so each method that needs it points MLflow at
its own store first.

Champion/challenger: a registered model's ``champion`` alias points at the version that
serves. The promotion *rules* live in each lifecycle's ``decide``
(:mod:`ml.forecast_lifecycle`, :mod:`ml.sentiment_lifecycle`); this module only records a
decision (:meth:`MlflowStore.record_decision`: version tags, and the alias when promoted).

``mlflow`` is imported lazily (~4 s) so that importing this module (e.g. while Dagster loads
definitions) costs nothing.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

CHAMPION_ALIAS = "champion"
#: MLflow's limit on a tag value is 5,000 characters; longer texts are cut here.
TAG_LIMIT = 4900

_NOISY_LOGGERS = (
    "alembic",
    "mlflow.store.db.utils",
    "mlflow.store.model_registry",
    "mlflow.models.signature",
)


def _quiet() -> None:
    """Silence MLflow's INFO chatter (database migrations on first use, registry messages)
    and its advice-only warnings; real errors still raise."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow(\.|$)")
    warnings.filterwarnings("ignore", message=".*type hint.*", category=UserWarning)


@dataclass(frozen=True)
class MlflowStore:
    """Where runs, models and the registry live: ``sqlite:///<tracking_db>`` and the
    experiments' artifacts under ``artifact_dir`` (both paths are made absolute on creation,
    so a later change of the working directory cannot move the store).

    Creating one touches nothing; the first method that talks to MLflow creates both parents
    and, on a new database, runs MLflow's schema migrations (~4 s).
    """

    tracking_db: Path
    artifact_dir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracking_db", Path(self.tracking_db).expanduser().resolve())
        object.__setattr__(self, "artifact_dir", Path(self.artifact_dir).expanduser().resolve())

    @property
    def uri(self) -> str:
        """The tracking and registry URI."""
        return f"sqlite:///{self.tracking_db}"

    def exists(self) -> bool:
        """Whether anything was ever tracked here (lets callers skip importing MLflow)."""
        return self.tracking_db.is_file()

    def activate(self) -> str:
        """Point MLflow's process-wide fluent API (runs, ``log_*``, ``models:/`` URIs) at this
        store; returns the URI. Every method below calls it, so a caller needs it only to use
        the fluent API directly (e.g. ``mlflow.pyfunc.load_model``)."""
        import mlflow

        _quiet()
        self.tracking_db.parent.mkdir(parents=True, exist_ok=True)
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        return self.uri

    def client(self) -> Any:
        """An ``MlflowClient`` bound to this store."""
        from mlflow import MlflowClient

        self.activate()
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def ensure_experiment(self, name: str) -> str:
        """Id of experiment ``name``, creating it with ``artifact_location=<artifact_dir>/<name>``
        (restoring it if it was deleted). An existing experiment keeps its original location."""
        client = self.client()
        exp = client.get_experiment_by_name(name)
        if exp is None:
            safe = re.sub(r"[^0-9A-Za-z_.-]+", "_", name)
            location = (self.artifact_dir / safe).as_uri()
            return client.create_experiment(name, artifact_location=location)
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id

    @contextmanager
    def start_run(
        self,
        experiment: str,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[Any]:
        """Run in ``experiment`` (created if needed) with ``params`` logged; yields MLflow's
        ``ActiveRun``. The run ends when the block does (FAILED on an exception), so a crash
        never leaves it open for the next caller."""
        import mlflow

        exp_id = self.ensure_experiment(experiment)
        run_tags = dict(tags or {})
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=run_tags) as run:
            if params:
                mlflow.log_params({str(k): _param_value(v) for k, v in params.items()})
            yield run

    def register_model(
        self, run_id: str, artifact_path: str, name: str, tags: Mapping[str, str] | None = None
    ) -> str:
        """Register the model logged as ``artifact_path`` in run ``run_id`` under ``name``;
        returns the new version (a string, as MLflow stores it).

        MLflow 3 stores logged models outside the run's artifacts (``models:/<model_id>``), so
        the logged model is looked up by run and name and registered from there; a model saved
        as plain run artifacts (``runs:/<run_id>/<artifact_path>``) is the fallback. Doing this
        through the client avoids ``mlflow.register_model``'s stderr prints and its "no
        artifacts at path" warning for every MLflow 3 model.
        """
        from mlflow.exceptions import MlflowException

        client = self.client()
        run = client.get_run(run_id)
        candidates = [
            m
            for m in client.search_logged_models(
                experiment_ids=[run.info.experiment_id], filter_string=f"name = '{artifact_path}'"
            )
            if m.source_run_id == run_id
        ]
        if candidates:
            model = max(candidates, key=lambda m: m.creation_timestamp or 0)
            source, model_id = f"models:/{model.model_id}", model.model_id
        else:
            source, model_id = f"runs:/{run_id}/{artifact_path}", None
        try:
            client.create_registered_model(name)
        except MlflowException as e:
            if "already exists" not in str(e).lower() and "ALREADY_EXISTS" not in str(e.error_code):
                raise
        mv = client.create_model_version(
            name=name, source=source, run_id=run_id, tags=dict(tags or {}), model_id=model_id
        )
        return str(mv.version)

    def model_version(self, name: str, alias: str = CHAMPION_ALIAS) -> Any | None:
        """The ``ModelVersion`` behind ``name@alias``, or ``None`` when there is no such model
        or alias (a fresh store, or nothing promoted yet)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(name, alias)
        except MlflowException:
            return None

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        self.client().set_registered_model_alias(name, alias, str(version))

    def set_version_tags(self, name: str, version: str | int, tags: Mapping[str, str]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, value)

    def download(self, artifact_uri: str, dst_path: str | Path | None = None) -> Path:
        """Copy the artifacts at ``artifact_uri`` (``models:/...``, ``runs:/...``) into
        ``dst_path`` (a new temporary folder if omitted); returns the local path."""
        import mlflow.artifacts

        self.activate()
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri,
            dst_path=None if dst_path is None else str(dst_path),
            tracking_uri=self.uri,
            registry_uri=self.uri,
        )
        return Path(local)

    def record_decision(
        self,
        name: str,
        version: str | int,
        promoted: bool,
        reason: str,
        numbers: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a lifecycle's promotion decision on model version ``version`` and move the
        ``champion`` alias to it when ``promoted``.

        Tags written on the version: ``promotion_decision`` (``promoted`` | ``rejected``),
        ``promotion_reason``, ``promotion_numbers`` (JSON of ``numbers``, truncated to MLflow's
        tag size) and ``promoted_at`` when promoted. A rejected version stays registered.
        Returns ``{promoted, reason, name, candidate_version, champion_version}`` where
        ``champion_version`` is the champion before the decision.
        """
        version = str(version)
        before = self.model_version(name)
        tags = {"promotion_decision": decision_label(promoted), "promotion_reason": reason}
        if numbers is not None:
            tags["promotion_numbers"] = json.dumps(numbers, default=str, sort_keys=True)
        if promoted:
            tags["promoted_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.set_version_tags(name, version, {k: v[:TAG_LIMIT] for k, v in tags.items()})
        if promoted:
            self.set_alias(name, CHAMPION_ALIAS, version)
        return {
            "promoted": bool(promoted),
            "reason": reason,
            "name": name,
            "candidate_version": version,
            "champion_version": str(before.version) if before is not None else None,
        }


def decision_label(promoted: bool) -> str:
    """How a decision reads in tags: ``promoted`` or ``rejected``."""
    return "promoted" if promoted else "rejected"


def tag_run_decision(promoted: bool, reason: str) -> None:
    """Tag the active run with its promotion decision, so the run list shows which runs
    produced a champion without opening the registry."""
    import mlflow

    mlflow.set_tags(
        {"promotion_decision": decision_label(promoted), "promotion_reason": reason[:TAG_LIMIT]}
    )


def _param_value(v: Any) -> str:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str)
    return str(v)


def _metric_key(key: str) -> str:
    # MLflow accepts alphanumerics, '_', '-', '.', ' ', ':' and '/'.
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", str(key))


def log_metrics(metrics: Mapping[str, float | None], step: int | None = None) -> dict[str, float]:
    """Log numeric metrics to the active run (:meth:`MlflowStore.start_run`); ``None`` and NaN
    are skipped (MLflow charts and comparisons mishandle them). Returns what was logged."""
    import mlflow

    clean = {
        _metric_key(k): float(v)
        for k, v in metrics.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }
    if clean:
        mlflow.log_metrics(clean, step=step)
    return clean


def log_frame_artifact(
    df: pl.DataFrame | pd.DataFrame, name: str, artifact_path: str | None = "tables"
) -> str:
    """Log a frame to the active run as ``<artifact_path>/<name>``; ``.json`` writes records,
    anything else CSV (``.csv`` appended when there is no suffix). Returns the artifact's
    run-relative path."""
    import mlflow

    if not Path(name).suffix:
        name = f"{name}.csv"
    if isinstance(df, pd.DataFrame):
        df = pl.from_pandas(df)
    with tempfile.TemporaryDirectory(prefix="sentinance-artifact-") as tmp:
        local = Path(tmp) / name
        if local.suffix.lower() == ".json":
            local.write_text(json.dumps(df.to_dicts(), default=str, indent=1))
        else:
            df.write_csv(local)
        mlflow.log_artifact(str(local), artifact_path=artifact_path)
    return f"{artifact_path}/{name}" if artifact_path else name
