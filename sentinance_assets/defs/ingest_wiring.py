"""Thin Dagster wiring shared by the ingest assets: metadata and quality checks."""

import dagster as dg

from sentinance_assets.lib.contracts import Checked

QUALITY_WARN = 0.99
QUALITY_FAIL = 0.95


def ingest_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "counts_reconcile",
            asset=key,
            description="received = clean + quarantined + exact duplicates (nothing lost)",
        ),
        dg.AssetCheckSpec(
            "quality_score",
            asset=key,
            description="clean / received: warn below 99 %, fail below 95 %",
        ),
    ]


def ingest_result(key: dg.AssetKey, checked: Checked, **extra: object) -> dg.MaterializeResult:
    meta = checked.metadata()
    quality = checked.quality
    if quality >= QUALITY_WARN:
        quality_check = dg.AssetCheckResult(
            check_name="quality_score", asset_key=key, passed=True, metadata={"quality": quality}
        )
    else:
        severity = (
            dg.AssetCheckSeverity.ERROR if quality < QUALITY_FAIL else dg.AssetCheckSeverity.WARN
        )
        quality_check = dg.AssetCheckResult(
            check_name="quality_score",
            asset_key=key,
            passed=False,
            severity=severity,
            metadata={"quality": quality},
            description=f"quality {quality:.2%} is below {QUALITY_WARN:.0%}"
            + (f" and {QUALITY_FAIL:.0%}" if quality < QUALITY_FAIL else ""),
        )
    return dg.MaterializeResult(
        asset_key=key,
        metadata={**meta, **extra},
        check_results=[
            dg.AssetCheckResult(
                check_name="counts_reconcile",
                asset_key=key,
                passed=checked.reconciles,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    k: meta[k]
                    for k in ("received", "clean", "quarantined", "exact_duplicates", "late")
                },
            ),
            quality_check,
        ],
    )
