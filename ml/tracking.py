"""MLflow tracking and model registry with no server: a SQLite file plus a local artifact folder.

Why this shape (see STACK_NOTES.md): MLflow 3 refuses a plain ``file:`` store, and a SQLite
backend works offline with the full registry (versions, tags, aliases). MLflow would put the
artifacts of a default experiment under ``./mlruns`` of whatever the current directory happens
to be, so every experiment is created here with an explicit ``artifact_location`` under the
configured artifact folder.

Champion/challenger: a registered model's ``champion`` alias points at the version serving
forecasts. :func:`promote_if_better` records each candidate's promotion score as a model-version
tag and moves the alias only when the candidate beats the current champion's recorded score,
returning the numbers behind the decision so the caller can log them.

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
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

CHAMPION_ALIAS = "champion"
SCORE_TAG = "promotion_score"
DIRECTION_TAG = "higher_is_better"

_state: dict[str, Path | None] = {"artifact_root": None}
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


def configure_mlflow(tracking_db: str | Path, artifact_dir: str | Path) -> str:
    """Point MLflow at ``sqlite:///<tracking_db>`` and remember ``artifact_dir`` as the root of
    new experiments' artifact locations. Creates both parents; returns the tracking URI.

    The first call on a new database runs MLflow's schema migrations (~4 s).
    """
    import mlflow

    _quiet()
    db = Path(tracking_db).expanduser().resolve()
    art = Path(artifact_dir).expanduser().resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    art.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _state["artifact_root"] = art
    return uri


def _artifact_root() -> Path:
    root = _state["artifact_root"]
    if root is None:
        raise RuntimeError("call ml.tracking.configure_mlflow(tracking_db, artifact_dir) first")
    return root


def ensure_experiment(name: str) -> str:
    """Id of experiment ``name``, creating it with ``artifact_location=<artifact_dir>/<name>``
    (restoring it if it was deleted). An existing experiment keeps its original location."""
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        safe = re.sub(r"[^0-9A-Za-z_.-]+", "_", name)
        location = (_artifact_root() / safe).as_uri()
        return client.create_experiment(name, artifact_location=location)
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def start_run(
    experiment: str,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Any:
    """Start a run in ``experiment`` (created if needed) and log ``params``.

    Returns MLflow's ``ActiveRun``: use it as ``with start_run(...) as run:`` so the run ends
    (FAILED on exception) even when the caller crashes.
    """
    import mlflow

    exp_id = ensure_experiment(experiment)
    run = mlflow.start_run(
        experiment_id=exp_id, run_name=run_name, tags=dict(tags or {}), nested=nested
    )
    if params:
        mlflow.log_params({str(k): _param_value(v) for k, v in params.items()})
    return run


def _param_value(v: Any) -> str:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str)
    return str(v)


def _metric_key(key: str) -> str:
    # MLflow accepts alphanumerics, '_', '-', '.', ' ', ':' and '/'.
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", str(key))


def log_metrics(metrics: Mapping[str, float | None], step: int | None = None) -> dict[str, float]:
    """Log numeric metrics to the active run; ``None`` and NaN are skipped (MLflow charts and
    comparisons mishandle them). Returns what was logged."""
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
    """Log a frame as ``<artifact_path>/<name>``; ``.json`` writes records, anything else CSV
    (``.csv`` appended when there is no suffix). Returns the artifact's run-relative path."""
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


def register_model(
    run_id: str, artifact_path: str, name: str, tags: Mapping[str, str] | None = None
) -> str:
    """Register the model logged as ``artifact_path`` in run ``run_id`` under ``name``; returns
    the new version (a string, as MLflow stores it).

    MLflow 3 stores logged models outside the run's artifacts (``models:/<model_id>``), so the
    logged model is looked up by run and name and registered from there; a model saved as plain
    run artifacts (``runs:/<run_id>/<artifact_path>``) is the fallback. Doing this through the
    client avoids ``mlflow.register_model``'s stderr prints and its "no artifacts at path"
    warning for every MLflow 3 model.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
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


def _tag_float(tags: Mapping[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, TypeError, ValueError):
        return None


def get_champion(name: str) -> tuple[str, dict[str, float]] | None:
    """``(version, metrics)`` of the version aliased ``champion``, or ``None`` if there is no
    such model or alias. ``metrics`` are the logged metrics of the version's run plus
    ``promotion_score`` (the score recorded by :func:`promote_if_better`) when present."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    metrics: dict[str, float] = {}
    if mv.run_id:
        try:
            metrics.update(client.get_run(mv.run_id).data.metrics)
        except MlflowException:
            pass
    score = _tag_float(mv.tags, SCORE_TAG)
    if score is not None:
        metrics[SCORE_TAG] = score
    return str(mv.version), metrics


def promote_if_better(
    name: str,
    version: str | int,
    score: float,
    higher_is_better: bool = True,
    min_improvement: float = 0.0,
) -> dict[str, Any]:
    """Record ``score`` on model version ``version`` and make it the ``champion`` if it beats
    the current champion's recorded score by more than ``min_improvement``.

    The candidate is promoted when there is no champion or the champion has no recorded score;
    never when its own score is NaN/inf or it is already the champion. Raises ``ValueError`` if
    the champion's score was recorded with the opposite ``higher_is_better`` (the numbers would
    not be comparable).

    Returns:
        ``{promoted, reason, name, candidate_version, candidate_score, champion_version,
        champion_score, higher_is_better, min_improvement}`` where ``champion_*`` describe the
        champion before the decision (``None`` if there was none).
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    version = str(version)
    score = float(score)
    client.set_model_version_tag(name, version, SCORE_TAG, repr(score))
    client.set_model_version_tag(name, version, DIRECTION_TAG, str(bool(higher_is_better)))

    champ = get_champion(name)
    champ_version, champ_score = (champ[0], champ[1].get(SCORE_TAG)) if champ else (None, None)
    if champ_version is not None:
        champ_tags = client.get_model_version(name, champ_version).tags
        champ_dir = champ_tags.get(DIRECTION_TAG)
        if champ_dir is not None and champ_dir != str(bool(higher_is_better)):
            raise ValueError(
                f"champion v{champ_version} of {name!r} was scored with "
                f"higher_is_better={champ_dir}, candidate with {bool(higher_is_better)}"
            )

    if not math.isfinite(score):
        promoted, reason = False, "candidate score is not finite"
    elif champ_version is None:
        promoted, reason = True, "no champion yet"
    elif champ_version == version:
        promoted, reason = False, "candidate is already the champion"
    elif champ_score is None or not math.isfinite(champ_score):
        promoted, reason = True, "champion has no recorded score"
    else:
        delta = score - champ_score if higher_is_better else champ_score - score
        promoted = delta > min_improvement
        reason = (
            f"candidate {'beats' if promoted else 'does not beat'} champion by "
            f"{delta:+.6g} (required > {min_improvement:g})"
        )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        client.set_model_version_tag(
            name, version, "promoted_at", datetime.now(UTC).isoformat(timespec="seconds")
        )
    return {
        "promoted": promoted,
        "reason": reason,
        "name": name,
        "candidate_version": version,
        "candidate_score": score,
        "champion_version": champ_version,
        "champion_score": champ_score,
        "higher_is_better": bool(higher_is_better),
        "min_improvement": float(min_improvement),
    }


def record_decision(
    name: str,
    version: str | int,
    promoted: bool,
    reason: str,
    numbers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Record a promotion decision made elsewhere (e.g. :func:`ml.evaluation.promotion_decision`)
    on model version ``version`` and move the ``champion`` alias to it when ``promoted``.

    Tags written on the version: ``promotion_decision`` (``promoted`` | ``rejected``),
    ``promotion_reason``, ``promotion_numbers`` (JSON of ``numbers``, truncated to MLflow's
    tag size) and ``promoted_at`` when promoted. A rejected version stays registered.
    Returns ``{promoted, reason, name, candidate_version, champion_version}`` where
    ``champion_version`` is the champion before the decision.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    version = str(version)
    before = get_champion(name)
    client.set_model_version_tag(
        name, version, "promotion_decision", "promoted" if promoted else "rejected"
    )
    client.set_model_version_tag(name, version, "promotion_reason", reason[:4900])
    if numbers is not None:
        text = json.dumps(numbers, default=str, sort_keys=True)
        client.set_model_version_tag(name, version, "promotion_numbers", text[:4900])
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        client.set_model_version_tag(
            name, version, "promoted_at", datetime.now(UTC).isoformat(timespec="seconds")
        )
    return {
        "promoted": bool(promoted),
        "reason": reason,
        "name": name,
        "candidate_version": version,
        "champion_version": before[0] if before else None,
    }
