"""Thin input skips one asset with a reason; it never fails the run.

Real windows are often too short for an asset (a two-day live window has no 14 days of hourly
history for the forecaster, a fresh feed no week of scores for drift). Raising would fail the
whole analytics run and hide everything that did work, so such an asset instead materializes
with a ``skipped`` reason in its metadata and a failed WARN-level ``enough_input`` check that
shows the same reason in the UI; its downstream assets see what is missing and skip the same
way. ``sentinance demo`` lists the skips of its run (:func:`skips_in`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

SKIPPED = "skipped"
ENOUGH_INPUT = "enough_input"


class ThinInputError(ValueError):
    """Plain code's way of saying "too little input for this": the wiring turns it into a
    skip. ``needs`` and ``has`` are short phrases ("14 days of hourly history", "2")."""

    def __init__(self, reason: str, *, needs: str | None = None, has: str | None = None):
        super().__init__(reason)
        self.needs = needs
        self.has = has


def enough_input_spec(key: dg.AssetKey, what: str) -> dg.AssetCheckSpec:
    """The WARN check an asset that may skip declares: ``what`` it needs, in words."""
    return dg.AssetCheckSpec(
        ENOUGH_INPUT,
        asset=key,
        description=f"Warns when the input is too thin for this asset ({what}): the asset then "
        "skips with the reason in its metadata instead of failing the run.",
    )


def enough_input(key: dg.AssetKey, **metadata: Any) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=ENOUGH_INPUT, asset_key=key, passed=True, metadata=dict(metadata)
    )


def skip(
    key: dg.AssetKey, reason: str, *, checks: Iterable[str] = (), **metadata: Any
) -> dg.MaterializeResult:
    """The result of an asset that skipped: ``reason`` in the metadata and in the failed WARN
    ``enough_input`` check; every other declared check of the asset (``checks``) is reported
    as skipped too, so none is left without a result."""
    results = [
        dg.AssetCheckResult(
            check_name=name,
            asset_key=key,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=reason,
            metadata={SKIPPED: reason},
        )
        for name in (ENOUGH_INPUT, *checks)
    ]
    return dg.MaterializeResult(
        asset_key=key, metadata={SKIPPED: reason, **metadata}, check_results=results
    )


def skip_from(key: dg.AssetKey, error: ThinInputError, **kwargs: Any) -> dg.MaterializeResult:
    extra = {k: v for k, v in (("needs", error.needs), ("has", error.has)) if v is not None}
    return skip(key, str(error), **extra, **kwargs)


def skips_in(events: Iterable[dg.DagsterEvent]) -> list[tuple[str, str]]:
    """(asset, reason) for every materialization of a run that skipped, in event order."""
    found: list[tuple[str, str]] = []
    for event in events:
        if not event.is_step_materialization:
            continue
        mat = event.step_materialization_data.materialization
        metadata: Mapping[str, Any] = mat.metadata or {}
        if SKIPPED in metadata:
            value = metadata[SKIPPED]
            found.append((mat.asset_key.to_user_string(), str(getattr(value, "value", value))))
    return found
