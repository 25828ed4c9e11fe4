"""Land one day of source data in the lake: contracts first, then atomic writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from sentinance_assets.lib import contracts, lake
from sentinance_assets.lib.schemas import Dataset

FILE_UNREADABLE = "file_unreadable"


def land_day(
    df: pl.DataFrame,
    *,
    dataset: Dataset,
    quarantine: Dataset,
    rules: contracts.Contract,
    key: list[str],
    lake_dir: Path,
    day: str,
    source: str,
    run_id: str,
    now: datetime | None = None,
    problems: Sequence[Mapping[str, str]] = (),
) -> contracts.Checked:
    """Check ``df`` against the contract ``rules`` and replace the day's partition of
    ``dataset`` and of its quarantine.

    Replacing both partitions together keeps a re-run idempotent: the same input gives the same
    clean rows and the same quarantine rows, never a second copy. Rows whose time is outside
    ``day`` are quarantined (``in_partition``) rather than written to the wrong partition.

    ``problems`` are inputs the source could not read at all (the replay source's
    ``problems``: ``{"file": ..., "error": ...}``). Each becomes one quarantine row
    (``file_unreadable``) and counts as one received record, so an unreadable file is visible
    in the quarantine, the counts and the quality score instead of vanishing.
    """
    now = now or datetime.now(UTC)
    checked = contracts.check(df, rules, key, source=source, run_id=run_id, now=now, day=day)
    if problems:
        records = pl.DataFrame(
            [{"file": str(p.get("file", "")), "error": str(p.get("error", ""))} for p in problems],
            schema={"file": pl.String, "error": pl.String},
        )
        unreadable = contracts.quarantine_rows(
            records,
            FILE_UNREADABLE,
            pl.concat_str(pl.lit("file could not be read: "), pl.col("error")),
            source=source,
            run_id=run_id,
            now=now,
        )
        checked.quarantined = pl.concat([checked.quarantined, unreadable])
        checked.received += records.height
        checked.unreadable_files = records.height
    with lake.locked(lake.partition_path(lake_dir, dataset, day)):  # the pair as one
        lake.write_partition(lake_dir, dataset, checked.clean, partition=day)
        lake.write_partition(lake_dir, quarantine, checked.quarantined, partition=day)
    return checked
