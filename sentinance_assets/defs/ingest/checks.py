"""The checks every ingest asset declares and reports, and its materialization metadata.

* ``counts_reconcile`` (ERROR): received = clean + quarantined + exact and rounded duplicates,
  nothing lost;
* ``quality_score``: clean / received, WARN below 99 %, ERROR below 95 %;
* ``source_failures`` (WARN): a market, feed or replay file could not be fetched or read; the
  others were ingested, and the failures are listed in the check's metadata.

Plain functions (no definitions): the assets in this folder call them.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from sentinance_assets.lib.contracts import Checked
from sentinance_assets.lib.sources.base import Failure

QUALITY_WARN = 0.99
QUALITY_FAIL = 0.95
COUNTS_RECONCILE = "counts_reconcile"
QUALITY_SCORE = "quality_score"
SOURCE_FAILURES = "source_failures"
RECONCILED_COUNTS = (
    "received",
    "clean",
    "quarantined",
    "exact_duplicates",
    "rounded_duplicates",
    "late",
)


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            COUNTS_RECONCILE,
            asset=key,
            description="received = clean + quarantined + exact and rounded duplicates (nothing "
            "lost)",
        ),
        dg.AssetCheckSpec(
            QUALITY_SCORE,
            asset=key,
            description="clean / received: warn below 99 %, fail below 95 %",
        ),
        dg.AssetCheckSpec(
            SOURCE_FAILURES,
            asset=key,
            description="Warns when an (exchange, symbol) or a feed could not be fetched; the "
            "others were ingested. The failures are listed in the check's metadata.",
        ),
    ]


def label(failure: Failure) -> str:
    """What failed, in a word: the market, else the feed, else the file."""
    market = f"{failure.get('exchange', '')} {failure.get('symbol', '')}".strip()
    return market or failure.get("feed") or failure.get("file") or "?"


def _quality_check(key: dg.AssetKey, quality: float) -> dg.AssetCheckResult:
    if quality >= QUALITY_WARN:
        return dg.AssetCheckResult(
            check_name=QUALITY_SCORE, asset_key=key, passed=True, metadata={"quality": quality}
        )
    failing = quality < QUALITY_FAIL
    return dg.AssetCheckResult(
        check_name=QUALITY_SCORE,
        asset_key=key,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR if failing else dg.AssetCheckSeverity.WARN,
        metadata={"quality": quality},
        description=f"quality {quality:.2%} is below {QUALITY_WARN:.0%}"
        + (f" and {QUALITY_FAIL:.0%}" if failing else ""),
    )


def _failures_check(key: dg.AssetKey, failures: Sequence[Failure]) -> dg.AssetCheckResult:
    failed = sorted({label(f) for f in failures})
    return dg.AssetCheckResult(
        check_name=SOURCE_FAILURES,
        asset_key=key,
        passed=not failures,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": dg.MetadataValue.json(failed), "count": len(failures)},
        description=None if not failures else f"could not fetch: {', '.join(failed)[:400]}",
    )


def ingest_result(
    key: dg.AssetKey,
    checked: Checked,
    *,
    source: str,
    failures: Sequence[Failure] = (),
    extra: Mapping[str, Any] | None = None,
) -> dg.MaterializeResult:
    """The materialization of one landed batch: its counts, ``source``, ``extra`` and the
    failures as metadata, and the results of the three checks of :func:`check_specs`."""
    meta = checked.metadata()
    return dg.MaterializeResult(
        asset_key=key,
        metadata={
            **meta,
            "source": source,
            **(extra or {}),
            "failed_count": len(failures),
            "failed": dg.MetadataValue.json(list(failures)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=COUNTS_RECONCILE,
                asset_key=key,
                passed=checked.reconciles,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={k: meta[k] for k in RECONCILED_COUNTS},
            ),
            _quality_check(key, checked.quality),
            _failures_check(key, failures),
        ],
    )
