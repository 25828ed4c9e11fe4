"""Dagster wiring shared by the market and news ingest assets: source failures and landing.

Plain helpers (no definitions): the assets land a day with :func:`replace_day` (simulated,
replay: the source returns the whole day every time) or :func:`merge_into_day` (live: each
refresh fetches only what is missing), then :func:`result` adds the ``source_failures`` check.
"""

from typing import Any

import dagster as dg
import polars as pl

from sentinance_assets.defs.ingest_wiring import ingest_check_specs, ingest_result
from sentinance_assets.lib.contracts import Checked, Rule
from sentinance_assets.lib.ingest import land_day
from sentinance_assets.lib.schemas import Dataset
from sentinance_assets.lib.sources.incremental import land_merged
from sentinance_assets.settings import Settings

SOURCE_FAILURES = "source_failures"


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        *ingest_check_specs(key),
        dg.AssetCheckSpec(
            SOURCE_FAILURES,
            asset=key,
            description="Warns when an (exchange, symbol) or a feed could not be fetched; the "
            "others were ingested. The failures are listed in the check's metadata.",
        ),
    ]


def failures_for(source: object, dataset: str) -> list[dict[str, str]]:
    failures = getattr(source, "failures", None) or []
    return [f for f in failures if f.get("dataset") in (dataset, "markets")]


def label(failure: dict[str, str]) -> str:
    market = f"{failure.get('exchange', '')} {failure.get('symbol', '')}".strip()
    return market or failure.get("feed") or failure.get("file") or "?"


def replay_problems(source: object, dataset: str) -> list[dict[str, str]]:
    """Replay files that could not be read, as failures of this dataset."""
    problems = getattr(source, "problems", None) or []
    folder = f"/{dataset}/"
    return [{"dataset": dataset, **p} for p in problems if folder in p.get("file", "")]


def replace_day(
    context: dg.AssetExecutionContext,
    settings: Settings,
    source: Any,
    rows: pl.DataFrame,
    *,
    kind: str,
    dataset: Dataset,
    quarantine: Dataset,
    rules: list[Rule],
    key: list[str],
) -> tuple[Checked, list[dict[str, str]]]:
    """Check the whole day from the source and replace its partition; replay files that
    could not be read become quarantine rows (and failures of the asset)."""
    problems = replay_problems(source, kind)
    checked = land_day(
        rows,
        dataset=dataset,
        quarantine=quarantine,
        rules=rules,
        key=key,
        lake_dir=settings.lake_dir,
        day=context.partition_key,
        source=source.name,
        run_id=context.run_id,
        problems=[{"file": f["file"], "error": f["error"]} for f in problems],
    )
    return checked, problems


def merge_into_day(
    context: dg.AssetExecutionContext,
    settings: Settings,
    source: Any,
    new: pl.DataFrame,
    *,
    dataset: Dataset,
    quarantine: Dataset,
    rules: list[Rule],
    key: list[str],
    existing: pl.DataFrame,
    **options: Any,
) -> Any:
    """Check freshly fetched rows and merge them into the stored day on the natural key."""
    return land_merged(
        new,
        dataset=dataset,
        quarantine=quarantine,
        rules=rules,
        key=key,
        lake_dir=settings.lake_dir,
        day=context.partition_key,
        source=source.name,
        run_id=context.run_id,
        existing=existing,
        **options,
    )


def all_markets_failed(failures: list[dict[str, str]], exchanges: tuple, symbols: tuple) -> bool:
    failed = {(f.get("exchange"), f.get("symbol")) for f in failures}
    return len(failed) >= len(exchanges) * len(symbols)


def result(
    key: dg.AssetKey,
    checked: Checked,
    *,
    source: str,
    failures: list[dict[str, str]],
    extra: dict[str, object] | None = None,
) -> dg.MaterializeResult:
    base = ingest_result(key, checked, source=source)
    failed = sorted({label(f) for f in failures})
    metadata = {
        **(base.metadata or {}),
        **(extra or {}),
        "failed_count": len(failures),
        "failed": dg.MetadataValue.json(failures),
    }
    check = dg.AssetCheckResult(
        check_name=SOURCE_FAILURES,
        asset_key=key,
        passed=not failures,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": dg.MetadataValue.json(failed), "count": len(failures)},
        description=None if not failures else f"could not fetch: {', '.join(failed)[:400]}",
    )
    return dg.MaterializeResult(
        asset_key=key,
        metadata=metadata,
        check_results=[*(base.check_results or []), check],
    )
