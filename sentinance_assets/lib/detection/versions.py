"""Alert sets per rules version: re-detection writes beside, compares, then swaps.

The batch asset's active alerts live per UTC day in the lake dataset ``alerts/alerts``
(``date=<day>/batch.parquet``: what the warehouse shows), each day made by one rules version
(recorded in ``_rules_version.json`` beside it and in every row's ``rules_version``). Every set
is also kept under ``lake/alerts/rule_sets/date=<day>/<version>.parquet``, outside the
warehouse view, so versions never mix in the feed.

After a change of the rules, the batch run (1) copies each day made by another version beside
(:func:`prepare_rules_change`) and marks it for re-detection, (2) re-detects, (3) stores the new
sets beside the old ones and writes a comparison per old version,
``rule_sets/compare-<old>-<new>.json`` (:func:`record_rule_sets`): alerts *added* (ids only in
the new set), *removed* (only in the old) and *changed* (same id, i.e. same type, market and
event time, but another severity, value, threshold, message or details), by type and by day.
The new set is the active one; the old one stays beside it (re-running with the old rules
makes it active again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.rules import alert_ids
from sentinance_assets.lib.schemas import ALERTS

COMPARED = ("severity", "value", "threshold", "message", "details")


def rule_sets_dir(lake_dir: Path, part: str = "batch") -> Path:
    return Path(lake_dir) / ALERTS.schema / "rule_sets" / part


@dataclass
class Comparison:
    old_version: str | None
    new_version: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    path: str | None = None  # where the comparison was written (a rules change only)

    def summary(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "by_type": self.by_type,
        }


def compare_alerts(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Every alert of either set with ``change``: added, removed, changed or unchanged
    (columns of the new set, or of the old one for removed alerts)."""
    # ids recomputed: a set written before the stable ids compares by event, not by old id
    o = ALERTS.conform(old).with_columns(alert_ids(old)).unique("alert_id", keep="first")
    n = ALERTS.conform(new).with_columns(alert_ids(new)).unique("alert_id", keep="first")
    keyed = o.select("alert_id", *[pl.col(c).alias(f"{c}_old") for c in COMPARED])
    both = n.join(keyed, on="alert_id", how="left", coalesce=True)
    differs = pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}_old")) for c in COMPARED if c != "value"]
        + [(pl.col("value") - pl.col("value_old")).abs().fill_null(0) > 1e-9]
    )
    present = pl.col("alert_id").is_in(o["alert_id"].implode())
    marked = both.with_columns(
        pl.when(~present)
        .then(pl.lit("added"))
        .when(differs)
        .then(pl.lit("changed"))
        .otherwise(pl.lit("unchanged"))
        .alias("change")
    ).select(*ALERTS.columns, "change")
    removed = o.filter(~pl.col("alert_id").is_in(n["alert_id"].implode())).with_columns(
        pl.lit("removed").alias("change")
    )
    return pl.concat([marked, removed]).sort("event_time", "alert_id")


def summarize(diff: pl.DataFrame, old_version: str | None, new_version: str) -> Comparison:
    c = Comparison(old_version, new_version)
    for kind, change, n in diff.group_by("type", "change").len().sort("type", "change").iter_rows():
        c.by_type.setdefault(kind, {})[change] = int(n)
        setattr(c, change, getattr(c, change) + int(n))
    return c


def _version_of(df: pl.DataFrame) -> str | None:
    if "rules_version" not in df.columns or df.height == 0:
        return None
    versions = df["rules_version"].drop_nulls().unique().sort().to_list()
    return "+".join(versions) if versions else None


VERSION_RECORD = "_rules_version.json"
UNVERSIONED = "unversioned"


def day_sets(lake_dir: Path, part: str = "batch") -> dict[str, Path]:
    """{day: active alert file} of the batch asset's per-day sets."""
    root = lake.dataset_dir(lake_dir, ALERTS)
    return {
        p.parent.name.removeprefix("date="): p for p in sorted(root.glob(f"date=*/{part}.parquet"))
    }


def active_version(path: Path) -> str:
    """The rules version a day's active set was made with (its record, else its rows)."""
    try:
        return str(json.loads((path.parent / VERSION_RECORD).read_text())["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        found = _version_of(pl.read_parquet(path, columns=["rules_version"]))
    except (OSError, pl.exceptions.PolarsError):
        found = None  # a file from before the column existed
    return found or UNVERSIONED


def prepare_rules_change(
    lake_dir: Path, version: str, stale_marker: str, part: str = "batch"
) -> dict[str, str]:
    """Before re-detection with rules ``version``: every day whose active set was made by
    another version is copied beside (``rule_sets/date=<day>/<old>.parquet``) and marked for
    re-detection (its ``stale_marker`` file, the batch run's input record, is removed).
    Returns {day: old version}."""
    previous: dict[str, str] = {}
    for day, path in day_sets(lake_dir, part).items():
        old = active_version(path)
        if old == version:
            continue
        keep = rule_sets_dir(lake_dir, f"date={day}") / f"{old}.parquet"
        if not keep.exists():
            lake.atomic_write_parquet(ALERTS.conform(pl.read_parquet(path)), keep)
        (path.parent / stale_marker).unlink(missing_ok=True)
        previous[day] = old
    return previous


def record_rule_sets(
    lake_dir: Path,
    days: list[str],
    version: str,
    previous: dict[str, str],
    part: str = "batch",
) -> list[Comparison]:
    """After re-detection of ``days`` with rules ``version``: keep each new set beside
    (``rule_sets/date=<day>/<version>.parquet``), record its version, and compare the days
    that changed version with their old sets; one ``compare-<old>-<new>.json`` per old
    version, in ``rule_sets/``, with the totals, the counts per type and per day and up to
    5,000 of the alerts that differ. Returns those comparisons."""
    sets = day_sets(lake_dir, part)
    diffs: dict[str, list[pl.DataFrame]] = {}
    per_day: dict[str, dict[str, dict[str, int]]] = {}
    for day in days:
        path = sets.get(day)
        if path is None:
            continue
        new = ALERTS.conform(pl.read_parquet(path))
        lake.atomic_write_parquet(
            new, rule_sets_dir(lake_dir, f"date={day}") / f"{version}.parquet"
        )
        _write_json(path.parent / VERSION_RECORD, {"version": version})
        old_version = previous.get(day)
        if old_version is None:
            continue
        old_path = rule_sets_dir(lake_dir, f"date={day}") / f"{old_version}.parquet"
        old = ALERTS.conform(pl.read_parquet(old_path)) if old_path.exists() else ALERTS.empty()
        diff = compare_alerts(old, new)
        diffs.setdefault(old_version, []).append(diff)
        counts = diff.group_by("change").len().iter_rows()
        per_day.setdefault(old_version, {})[day] = {c: int(n) for c, n in counts}
    out = []
    for old_version, frames in sorted(diffs.items()):
        diff = pl.concat(frames)
        comparison = summarize(diff, old_version, version)
        changed = diff.filter(pl.col("change") != "unchanged").select(
            "change", "alert_id", "type", "exchange", "symbol", "event_time", "severity", "value"
        )
        target = rule_sets_dir(lake_dir, "") / f"compare-{old_version}-{version}.json"
        _write_json(
            target,
            {
                **comparison.summary(),
                "by_day": per_day[old_version],
                "alerts": changed.head(5000)
                .with_columns(pl.col("event_time").cast(pl.String))
                .to_dicts(),
            },
        )
        comparison.path = str(target)
        out.append(comparison)
    return out


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    tmp.replace(path)


def comparisons(lake_dir: Path) -> list[dict[str, Any]]:
    """Every stored comparison (newest first by file time): what the app can list."""
    root = rule_sets_dir(lake_dir, "")
    files = sorted(root.glob("compare-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    out = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        data.pop("alerts", None)
        out.append({"file": f.name, **data})
    return out


def _legacy(path: Path) -> bool:
    ids = pl.read_parquet(path, columns=["alert_id"])["alert_id"]
    return bool((ids.str.len_chars() != 64).any())


def migrate_legacy_ids(lake_dir: Path) -> int:
    """Rewrite, atomically, every alert file of the lake whose ids predate the stable SHA-256
    ids (polars-hash ids, 20 digits) with the ids recomputed from (type, exchange, symbol,
    event time); the number of files rewritten. Idempotent; cheap when there is nothing to do
    (only the id column is read)."""
    done = 0
    for path in lake.data_files(lake_dir, ALERTS):
        try:
            if not _legacy(path):
                continue
            df = ALERTS.conform(pl.read_parquet(path))
        except (OSError, pl.exceptions.PolarsError):
            continue  # removed meanwhile (a watch loop compacting or recovering)
        lake.atomic_write_parquet(df.with_columns(alert_ids(df)), path)
        done += 1
    return done
