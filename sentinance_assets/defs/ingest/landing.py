"""How every ingest asset lands its day: one flow, whatever the source.

A source that is not incremental (simulated, replay) hands over the whole day every time: the
day is checked and replaces the partition. An incremental one (live) is asked only for what the
stored day lacks (a watermark read from the partition): that is checked and merged in on the
natural key. Which of the two follows ``source.incremental``, never the source's name. Each
asset says only what it lands (:class:`Target`) and how to ask for the missing part (a
:data:`Fetch`); :func:`ingest_asset` makes the asset.

The source is built per run from the settings (``build_source``), so a run always sees the
configured mode.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import dagster as dg
import polars as pl

from sentinance_assets.defs.ingest.checks import check_specs, ingest_result
from sentinance_assets.defs.partitions import daily
from sentinance_assets.lib.contracts import Checked, Contract, combine
from sentinance_assets.lib.ingest import land_day
from sentinance_assets.lib.schemas import Dataset
from sentinance_assets.lib.sources import build_source
from sentinance_assets.lib.sources.base import Failure, Source
from sentinance_assets.lib.sources.incremental import land_merged, stored
from sentinance_assets.settings import Settings

MAX_DAYS_PER_RUN = 92  # a quarter: a run's metadata still reads as one batch


@dataclass(frozen=True)
class Target:
    """What one ingest asset lands, where, and under which contract."""

    asset: dg.AssetKey
    kind: str  # the sources' name for the data: "trades" | "candles" | "news"
    dataset: Dataset
    quarantine: Dataset
    key: tuple[str, ...]  # natural key: one row per key in the partition
    contract: Callable[[Settings, datetime], Contract]  # (settings, now) -> the rules
    keep: Literal["new", "old"] = "new"  # on a merge, which copy of a stored key stays


@dataclass(frozen=True)
class Fetched:
    """What a source handed over, and the asset metadata that explains an incremental fetch
    (given the partition as stored after the merge, e.g. to report the gaps still open)."""

    rows: pl.DataFrame
    report: Callable[[pl.DataFrame], Mapping[str, Any]] = field(default=lambda _stored: {})


# (source, day, what the partition holds) -> the rows it lacks. Asked of a whole-day source as
# if nothing were stored, so one function serves both kinds of source.
Fetch = Callable[[Source, date, pl.DataFrame], Fetched]


def unreadable_files(source: Source, kind: str) -> list[Failure]:
    """The files of this kind the source could not read (replay: ``<dir>/<kind>/...``)."""
    folder = f"/{kind}/"
    return [{"dataset": kind, **p} for p in source.problems if folder in p.get("file", "")]


def source_failures(source: Source, kind: str) -> list[Failure]:
    """Everything the source could not fetch or read for this kind of data."""
    fetched = [f for f in source.failures if f.get("dataset") in (kind, "markets")]
    return fetched + unreadable_files(source, kind)


def raise_if_nothing_fetched(failures: list[Failure], settings: Settings, kind: str) -> None:
    """Fail the run when every configured feed (news) or market (the rest) failed: a partial
    outage is a warning, a total one must not look like a quiet day."""
    if kind == "news":
        total = bool(settings.news_feeds) and len(failures) >= len(settings.news_feeds)
        message = "no configured news feed could be read"
    else:
        markets = {(f.get("exchange"), f.get("symbol")) for f in failures}
        total = bool(failures) and len(markets) >= len(settings.exchanges) * len(settings.symbols)
        message = f"no {kind} could be fetched from any configured exchange"
    if total:
        raise dg.Failure(message, metadata={"failed": dg.MetadataValue.json(failures)})


def outside_window(coverage: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """Metadata on the rows of a whole-day source's files that no day of the run reads: per
    file, those before and after the window, in the future beyond the allowed skew and without
    a time (the last two are quarantined with the run's first day)."""
    if not coverage:
        return {}
    outside = ("before_window", "after_window", "future", "no_time")
    per_file = {f: dict(c) for f, c in coverage.items() if any(c.get(k, 0) for k in outside)}
    return {
        "files_read": len(coverage),
        "rows_outside_window": sum(c.get(k, 0) for c in coverage.values() for k in outside),
        "outside_window": dg.MetadataValue.json(per_file),
    }


def land(
    context: dg.AssetExecutionContext,
    settings: Settings,
    source: Source,
    target: Target,
    fetch: Fetch,
) -> dg.MaterializeResult:
    """Fetch and land every day of the run's partitions (one day, or a range: a long replay
    or backfill lands many days in one run, each day still its own partition) and report them
    as one batch. Per day: replace it with what a whole-day source handed over, or merge what
    an incremental one fetched into the stored day (failing first if nothing could be
    fetched). Replay files that could not be read become quarantine rows of the first day."""
    days = context.partition_keys
    rules = target.contract(settings, datetime.now(UTC))
    parts: list[Checked] = []
    failures: list[Failure] = []
    extra: dict[str, Any] = {}
    for i, day in enumerate(days):
        # what both landings are told: dataset, contract, key, partition and provenance
        landing: dict[str, Any] = {
            "dataset": target.dataset,
            "quarantine": target.quarantine,
            "rules": rules,
            "key": list(target.key),
            "lake_dir": settings.lake_dir,
            "day": day,
            "source": source.name,
            "run_id": context.run_id,
        }
        if not source.incremental:
            fetched = fetch(source, date.fromisoformat(day), target.dataset.empty())
            problems = unreadable_files(source, target.kind) if i == 0 else []
            parts.append(land_day(fetched.rows, problems=problems, **landing))
        else:
            existing = stored(settings.lake_dir, target.dataset, day)
            fetched = fetch(source, date.fromisoformat(day), existing)
            failures = source_failures(source, target.kind)
            raise_if_nothing_fetched(failures, settings, target.kind)
            landed = land_merged(fetched.rows, prefer=target.keep, **landing)
            parts.append(landed.checked)
            extra = {"stored_rows": landed.frame.height, **fetched.report(landed.frame)}
        if len(days) > 1 and (i + 1) % 100 == 0:
            context.log.info(f"{target.kind}: {i + 1}/{len(days)} days landed")
    if not source.incremental:
        # the files as read for the whole run: reported once, after its last day
        failures = source_failures(source, target.kind)
        extra = outside_window(source.coverage(target.kind))
    checked = combine(parts)
    if len(days) > 1:
        extra = {**extra, "days": len(days), "first_day": days[0], "last_day": days[-1]}
    context.log.info(f"{days[0]}..{days[-1]}: {checked.metadata()} failures={len(failures)}")
    return ingest_result(target.asset, checked, source=source.name, failures=failures, extra=extra)


def ingest_asset(
    target: Target, fetch: Fetch, *, group: str, description: str
) -> dg.AssetsDefinition:
    """The daily ingest asset of ``target``, with its three checks (see ``checks``): the three
    ingest assets differ only in what they land and how they ask for it."""

    @dg.asset(
        key=target.asset,
        group_name=group,
        partitions_def=daily,
        # a backfill (or a long replay: `sentinance demo`) lands many days in one run
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN),
        check_specs=check_specs(target.asset),
        kinds={"polars", "parquet"},
        description=description,
        pool="ingest",  # day partitions land side by side (lib/operations/supervision.py)
    )
    def ingest(
        context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
    ) -> dg.MaterializeResult:
        return land(context, settings, build_source(settings), target, fetch)

    return ingest
