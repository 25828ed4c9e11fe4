"""Thin input skips one asset with a reason; it never fails the run.

Real windows are often too short for an asset (a two-day live window has no 14 days of hourly
history for the forecaster, a fresh feed no week of scores for drift). Raising would fail the
whole analytics run and hide everything that did work, so such an asset instead materializes
with a ``skipped`` reason in its metadata and a failed WARN-level ``enough_input`` check that
shows the same reason in the UI; its downstream assets see what is missing and skip the same
way (:func:`upstream_skip`). ``sentinance demo`` lists the skips of its run (:func:`skips_in`).

Plain ML code (``ml/``, which cannot import this module) says "too little input" with
:class:`ml.errors.InsufficientDataError`; :class:`ThinInputError` is the same exception for the
wiring's own checks, so one ``except InsufficientDataError`` (:func:`skip_on_thin`) catches both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dagster as dg

from ml.errors import InsufficientDataError

SKIPPED = "skipped"
ENOUGH_INPUT = "enough_input"


class ThinInputError(InsufficientDataError):
    """Plain code's way of saying "too little input for this": the wiring turns it into a
    skip. ``needs`` and ``has`` are short phrases ("14 days of hourly history", "2")."""


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


def skipped_check(key: dg.AssetKey, name: str, reason: str) -> dg.AssetCheckResult:
    """Check ``name`` of ``key``, not evaluated for thin input: failed, WARN, with ``reason``."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=key,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=reason,
        metadata={SKIPPED: reason},
    )


def skipped_checks(
    key: dg.AssetKey, reason: str, checks: Iterable[str] = ()
) -> list[dg.AssetCheckResult]:
    """The failed WARN ``enough_input`` check and every other check in ``checks``, each with
    ``reason``: the check results of an asset (or a part of it) that skipped."""
    return [skipped_check(key, name, reason) for name in (ENOUGH_INPUT, *checks)]


def skip(
    key: dg.AssetKey, reason: str, *, checks: Iterable[str] = (), **metadata: Any
) -> dg.MaterializeResult:
    """The result of an asset that skipped: ``reason`` in the metadata and in the failed WARN
    ``enough_input`` check; every other declared check of the asset (``checks``) is reported
    as skipped too, so none is left without a result."""
    return dg.MaterializeResult(
        asset_key=key,
        metadata={SKIPPED: reason, **metadata},
        check_results=skipped_checks(key, reason, checks),
    )


def skip_from(
    key: dg.AssetKey, error: InsufficientDataError, **kwargs: Any
) -> dg.MaterializeResult:
    """:func:`skip` with the error's message as the reason and its ``needs`` / ``has``."""
    extra = {k: v for k, v in (("needs", error.needs), ("has", error.has)) if v is not None}
    return skip(key, str(error), **extra, **kwargs)


def skip_on_thin(
    key: dg.AssetKey,
    compute: Callable[[], dg.MaterializeResult],
    *,
    checks: Iterable[str] = (),
    **metadata: Any,
) -> dg.MaterializeResult:
    """``compute()``, or the skip (:func:`skip_from`) when it raises
    :class:`~ml.errors.InsufficientDataError` (:class:`ThinInputError` included)."""
    try:
        return compute()
    except InsufficientDataError as exc:
        return skip_from(key, exc, checks=checks, **metadata)


def upstream_skip(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str | None:
    """Why the latest materialization of ``key`` skipped (``None``: it did not, or it has
    never materialized): a downstream asset skips with this reason."""
    event = context.instance.get_latest_materialization_event(key)
    mat = event.asset_materialization if event is not None else None
    if mat is None or SKIPPED not in (mat.metadata or {}):
        return None
    value = mat.metadata[SKIPPED]
    return f"{key.to_user_string()} skipped: {getattr(value, 'value', value)}"


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
