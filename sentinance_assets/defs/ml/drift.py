"""The drift plumbing every ML drift asset shares: measure, record in ``ml.drift``, judge.

``ml/forecast_drift`` (the forecaster's inputs and residuals) and ``ml/sentiment_drift`` (news
scores and text statistics) measure different things with :func:`ml.drift.data_drift`, but
handle the outcome the same way, so it is written once here:

* too little data (:class:`~ml.errors.InsufficientDataError`) is a skip in the shape of
  :mod:`sentinance_assets.defs.skips`, not an error: a young home must not fail its runs.
  When no subject can be measured the asset skips (reason in its ``skipped`` metadata, failed
  WARN ``enough_input`` and drift checks); when only some can, the others' checks are
  evaluated and ``skipped`` / ``enough_input`` say which part was skipped and why;
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

from ml.drift import MIN_ROWS, DriftResult
from ml.errors import InsufficientDataError
from sentinance_assets.defs import skips
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import DRIFT

#: A measurement: the subject (the ``model`` column of its ``ml.drift`` row) and its result.
Measure = Callable[[], tuple[str, DriftResult]]
#: What a drift asset needs (its ``enough_input`` check's description).
NEEDS = f"{MIN_ROWS} rows on each side of every drift test"


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
    little data (``skipped`` says why; ``what`` names the subject in that reason)."""

    check_name: str
    limit: float
    subject: str | None = None
    result: DriftResult | None = None
    skipped: str | None = None
    what: str = ""

    def check_result(self, key: dg.AssetKey) -> dg.AssetCheckResult:
        if self.result is None:
            return skips.skipped_check(key, self.check_name, str(self.skipped))
        return dg.AssetCheckResult(
            check_name=self.check_name,
            asset_key=key,
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
        """Materialization metadata of a measured subject, keys prefixed with ``prefix``: the
        retraining sensor reads ``share_drifted`` (and ``residual_share_drifted``) from here."""
        if self.result is None:
            return {}
        r = self.result
        return {
            f"{prefix}share_drifted": r.share_drifted,
            f"{prefix}drifted_features": r.drifted_features,
            f"{prefix}reference_rows": r.reference_rows,
            f"{prefix}current_rows": r.current_rows,
            f"{prefix}details": dg.MetadataValue.json(json.loads(r.details_json())),
        }


def measure(check_name: str, limit: float, fn: Measure, what: str = "") -> DriftCheck:
    """Run one drift measurement; too little data becomes a skipped subject, not an error."""
    try:
        subject, result = fn()
    except InsufficientDataError as exc:
        return DriftCheck(check_name, limit, skipped=str(exc), what=what)
    return DriftCheck(check_name, limit, subject=subject, result=result, what=what)


def _reason(checks: list[DriftCheck]) -> str:
    if len(checks) == 1 and not checks[0].what:
        return str(checks[0].skipped)
    return "; ".join(f"{c.what or c.check_name}: {c.skipped}" for c in checks)


def report(
    context: dg.AssetExecutionContext,
    lake_dir: Path,
    checks: Mapping[str, DriftCheck],
    metadata: Mapping[str, Any],
    part_prefix: str = "",
) -> dg.MaterializeResult:
    """Write the measured subjects' rows to ``ml.drift`` (partition ``<part_prefix>run-<run
    id>``) and return the materialization: ``metadata`` plus each measured check's metadata
    under its key prefix in ``checks``, one check result per subject and the
    ``enough_input`` check; a skip (:func:`sentinance_assets.defs.skips.skip`) when no subject
    could be measured."""
    key = context.asset_key
    skipped = [c for c in checks.values() if c.result is None]
    if len(skipped) == len(checks):
        names = [c.check_name for c in checks.values()]
        return skips.skip(key, _reason(skipped), checks=names, **metadata)
    run_id = context.run_id or uuid.uuid4().hex
    rows = [row for c in checks.values() if (row := c.row(run_id)) is not None]
    lake.write_partition(lake_dir, DRIFT, pl.DataFrame(rows), part=f"{part_prefix}run-{run_id}")
    meta = dict(metadata)
    for prefix, check in checks.items():
        meta.update(check.metadata(prefix))
    results = [c.check_result(key) for c in checks.values()]
    if skipped:
        reason = _reason(skipped)
        meta[skips.SKIPPED] = reason
        results.append(skips.skipped_check(key, skips.ENOUGH_INPUT, reason))
    else:
        results.append(skips.enough_input(key))
    return dg.MaterializeResult(metadata=meta, check_results=results)
