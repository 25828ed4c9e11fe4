"""The daily retention cleanup (``lib/operations/retention.py``), as an asset that records what
it removed. Run daily by its automation condition (``defs/automation.py``, live mode), or by
hand from the UI; never part of ``analytics_job`` (a demo must not prune the window it built)."""

from datetime import UTC, datetime

import dagster as dg

from sentinance_assets.lib.operations.retention import cleanup, cutoffs, summary
from sentinance_assets.settings import Settings

RETENTION_KEY = dg.AssetKey(["operations", "retention"])


def _table(removed: list) -> str:
    lines = ["| zone | path | bytes | rows |", "|---|---|---|---|"]
    for r in removed[:200]:
        lines.append(f"| {r.zone} | {r.path} | {r.bytes} | {'' if r.rows is None else r.rows} |")
    if len(removed) > 200:
        lines.append(f"| ... | {len(removed) - 200} more | | |")
    return "\n".join(lines)


@dg.asset(
    key=RETENTION_KEY,
    group_name="operations",
    kinds={"python"},
    description="Removes raw trades, quarantine and alert files older than the retention "
    "settings (SENTINANCE_RETAIN_TRADES_DAYS, _QUARANTINE_DAYS, _ALERTS_DAYS) and records what "
    "it removed; marts, models and ML outputs are never touched.",
)
def retention(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    today = datetime.now(UTC).date()
    removed = cleanup(settings, today)
    per_zone = summary(removed)
    context.log.info(f"retention removed {len(removed)} entries: {per_zone}")
    return dg.MaterializeResult(
        metadata={
            "removed": len(removed),
            "bytes_freed": sum(r.bytes for r in removed),
            "by_zone": dg.MetadataValue.json(per_zone),
            "kept_from": dg.MetadataValue.json(
                {zone: day.isoformat() for zone, day in cutoffs(settings, today).items()}
            ),
            "removed_entries": dg.MetadataValue.md(_table(removed)),
        }
    )
