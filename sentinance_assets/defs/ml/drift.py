"""The drift plumbing every ML drift asset shares: measure, record in ``ml.drift``, judge.

``ml/forecast_drift`` (the forecaster's inputs and residuals) and ``ml/sentiment_drift`` (news
scores and text statistics) measure different things with :func:`ml.drift.data_drift`, but
handle the outcome the same way, so it is written once here:

* too little data (:class:`~ml.drift.InsufficientDataError`) is a failed WARN check that says
  why, not an error: a young home must not fail its runs;
* each measured subject is one row of ``ml.drift`` (the Streamlit app and the retraining
  history read it);
* a check passes while the share of drifted columns stays below ``Settings.drift_share``
  (``SENTINANCE_DRIFT_SHARE``), the same limit the retraining sensor acts on, so a check and
  the sensor never disagree about what counts as drift.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from ml.drift import DriftResult, InsufficientDataError
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import DRIFT

#: A measurement: the subject (the ``model`` column of its ``ml.drift`` row) and its result.
Measure = Callable[[], tuple[str, DriftResult]]


def check_spec(name: str, asset: dg.AssetKey, what: str) -> dg.AssetCheckSpec:
    """The asset check of one drift subject, described with the limit it is judged by."""
    return dg.AssetCheckSpec(
        name,
        asset=asset,
        description=f"share of drifted {what} below the drift share (SENTINANCE_DRIFT_SHARE)",
    )


@dataclass(frozen=True)
class DriftCheck:
    """One drift subject of an asset: measured (``subject`` and ``result``) or skipped for too
    little data (``skipped`` says why)."""

    check_name: str
    limit: float
    subject: str | None = None
    result: DriftResult | None = None
    skipped: str | None = None

    def check_result(self) -> dg.AssetCheckResult:
        if self.result is None:
            return dg.AssetCheckResult(
                check_name=self.check_name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"reason": str(self.skipped)},
            )
        return dg.AssetCheckResult(
            check_name=self.check_name,
            passed=self.result.share_drifted < self.limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"share_drifted": self.result.share_drifted, "limit": self.limit},
        )

    def row(self, run_id: str) -> dict[str, Any] | None:
        """The ``ml.drift`` row of a measured subject (``None`` when skipped)."""
        if self.result is None:
            return None
        r = self.result
        return {
            "run_id": run_id,
            "model": self.subject,
            "checked_at": datetime.now(UTC),
            "reference_rows": r.reference_rows,
            "current_rows": r.current_rows,
            "n_features": r.n_features,
            "drifted_features": r.drifted_features,
            "share_drifted": r.share_drifted,
            "dataset_drift": r.dataset_drift,
            "details": r.details_json(),
        }

    def metadata(self, prefix: str = "") -> dict[str, Any]:
        """Materialization metadata, keys prefixed with ``prefix``: the retraining sensor reads
        ``share_drifted`` (and ``residual_share_drifted``) from here."""
        if self.result is None:
            return {f"{prefix}skipped": str(self.skipped)}
        r = self.result
        return {
            f"{prefix}share_drifted": r.share_drifted,
            f"{prefix}drifted_features": r.drifted_features,
            f"{prefix}reference_rows": r.reference_rows,
            f"{prefix}current_rows": r.current_rows,
            f"{prefix}details": dg.MetadataValue.json(json.loads(r.details_json())),
        }


def measure(check_name: str, limit: float, fn: Measure) -> DriftCheck:
    """Run one drift measurement; too little data becomes a skipped check, not an error."""
    try:
        subject, result = fn()
    except InsufficientDataError as exc:
        return DriftCheck(check_name, limit, skipped=str(exc))
    return DriftCheck(check_name, limit, subject=subject, result=result)


def report(
    context: dg.AssetExecutionContext,
    lake_dir: Path,
    checks: Mapping[str, DriftCheck],
    metadata: Mapping[str, Any],
    part_prefix: str = "",
) -> dg.MaterializeResult:
    """Write the measured subjects' rows to ``ml.drift`` (partition ``<part_prefix>run-<run
    id>``) and return the materialization: ``metadata`` plus each check's metadata under its
    key prefix in ``checks``, and one check result per subject."""
    run_id = context.run_id or uuid.uuid4().hex
    rows = [row for c in checks.values() if (row := c.row(run_id)) is not None]
    if rows:
        lake.write_partition(lake_dir, DRIFT, pl.DataFrame(rows), part=f"{part_prefix}run-{run_id}")
    meta = dict(metadata)
    for prefix, check in checks.items():
        meta.update(check.metadata(prefix))
    return dg.MaterializeResult(
        metadata=meta, check_results=[c.check_result() for c in checks.values()]
    )
