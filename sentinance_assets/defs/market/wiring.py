"""Dagster wiring shared by the market and news ingest assets: source failures and landing.

Plain helpers (no definitions): the assets call :func:`land` which picks replace-the-day
(simulated, replay: the source returns the whole day every time) or merge-into-the-day (live:
each refresh fetches only what is missing), then adds the ``source_failures`` check.
"""

import dagster as dg

from sentinance_assets.defs.ingest_wiring import ingest_check_specs, ingest_result
from sentinance_assets.lib.contracts import Checked

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
