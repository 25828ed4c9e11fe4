"""Land one day of source data in the lake: contracts first, then atomic writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from sentinance_assets.lib import contracts, lake
from sentinance_assets.lib.schemas import Dataset


def land_day(
    df: pl.DataFrame,
    *,
    dataset: Dataset,
    quarantine: Dataset,
    rules: list[contracts.Rule],
    key: list[str],
    lake_dir: Path,
    day: str,
    source: str,
    run_id: str,
    now: datetime | None = None,
) -> contracts.Checked:
    """Check ``df`` and replace the day's partition of ``dataset`` and of its quarantine.

    Replacing both partitions together keeps a re-run idempotent: the same input gives the same
    clean rows and the same quarantine rows, never a second copy.
    """
    checked = contracts.check(
        df, rules, key, source=source, run_id=run_id, now=now or datetime.now(UTC)
    )
    lake.write_partition(lake_dir, dataset, checked.clean, partition=day)
    lake.write_partition(lake_dir, quarantine, checked.quarantined, partition=day)
    return checked
