"""Incremental live ingest: resume from the lake, find candle gaps, merge without duplicates.

A day partition of ``raw.trades`` / ``raw.candles`` / ``raw.news`` is refreshed many times in
live mode (every 15 minutes for today). Each refresh:

1. reads what the partition already holds;
2. asks the source only for what is missing: trades after the last stored trade per market,
   candles for the minutes missing anywhere in the day so far (the tail *and* holes left by
   an earlier outage), news as served by the feeds;
3. checks the new rows with the contracts, then merges them with the stored rows on the
   natural key (a re-fetched row replaces its stored copy, so nothing is ever doubled) and
   atomically replaces the partition (clean and quarantine alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from sentinance_assets.lib import contracts, lake
from sentinance_assets.lib.news import normalise_title
from sentinance_assets.lib.schemas import Dataset
from sentinance_assets.lib.sources.base import MarketKey, Window

MINUTE_MS = 60_000


def stored(lake_dir: Path, ds: Dataset, day: str) -> pl.DataFrame:
    path = lake.partition_path(lake_dir, ds, day)
    return ds.conform(pl.read_parquet(path)) if path.exists() else ds.empty()


def _ms(col: str) -> pl.Expr:
    return pl.col(col).dt.epoch("ms")


def resume_points(trades: pl.DataFrame) -> dict[MarketKey, int]:
    """Per (exchange, symbol): the last stored trade time (inclusive; ids dedupe the overlap)."""
    if trades.height == 0:
        return {}
    last = trades.group_by("exchange", "symbol").agg(_ms("ts").max().alias("last"))
    return {(e, s): int(t) for e, s, t in last.iter_rows()}


def coalesce(windows: list[Window], max_span_ms: int) -> list[Window]:
    """Merge neighbouring windows while the merged span fits in one page request."""
    out: list[Window] = []
    for start, end in sorted(windows):
        if out and end - out[-1][0] <= max_span_ms:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def missing_minutes(
    candles: pl.DataFrame, start_ms: int, end_ms: int
) -> dict[MarketKey, list[int]]:
    """Per market present in ``candles`` (1m): open times missing from ``[start_ms, end_ms)``."""
    expected = set(range(start_ms - start_ms % MINUTE_MS, end_ms, MINUTE_MS))
    expected = {m for m in expected if m >= start_ms}
    out: dict[MarketKey, list[int]] = {}
    if candles.height == 0:
        return out
    one_m = candles.filter(pl.col("timeframe") == "1m")
    for (ex, sym), grp in one_m.group_by("exchange", "symbol"):
        have = set(grp.select(_ms("ts")).to_series().to_list())
        out[(ex, sym)] = sorted(expected - have)
    return out


def candle_windows(
    candles: pl.DataFrame, start_ms: int, end_ms: int, max_span_ms: int = 300 * MINUTE_MS
) -> dict[MarketKey, list[Window]]:
    """What to ask per stored market: every missing run of minutes, coalesced into pages.

    Markets with nothing stored are absent from the result (the source fetches their whole
    window).
    """
    plan: dict[MarketKey, list[Window]] = {}
    for key, minutes in missing_minutes(candles, start_ms, end_ms).items():
        runs: list[Window] = []
        for m in minutes:
            if runs and runs[-1][1] == m:
                runs[-1] = (runs[-1][0], m + MINUTE_MS)
            else:
                runs.append((m, m + MINUTE_MS))
        plan[key] = coalesce(runs, max_span_ms)
    return plan


def gap_report(candles: pl.DataFrame, start_ms: int, end_ms: int) -> dict[str, int]:
    """``exchange symbol`` -> minutes still missing (e.g. venue had no trade, or an outage)."""
    return {
        f"{ex} {sym}": len(minutes)
        for (ex, sym), minutes in sorted(missing_minutes(candles, start_ms, end_ms).items())
        if minutes
    }


def merge(
    old: pl.DataFrame, new: pl.DataFrame, key: list[str], prefer: str = "new"
) -> pl.DataFrame:
    """Union on the natural key: one row per key, the new copy (or the old) winning."""
    if old.height == 0:
        return new
    if new.height == 0:
        return old
    both = pl.concat([old, new], how="vertical_relaxed")
    return both.unique(subset=key, keep="last" if prefer == "new" else "first", maintain_order=True)


def drop_seen_news(old: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """New items whose id, link or normalised title is already stored are repeats."""
    if old.height == 0 or new.height == 0:
        return new, 0
    ids = set(old["news_id"].to_list())
    links = set(old["link"].drop_nulls().to_list())
    titles = {normalise_title(t) for t in old["title"].drop_nulls().to_list()}
    keep = [
        i not in ids
        and (link is None or link not in links)
        and normalise_title(t or "") not in titles
        for i, link, t in new.select("news_id", "link", "title").iter_rows()
    ]
    out = new.filter(pl.Series(keep, dtype=pl.Boolean))
    return out, new.height - out.height


@dataclass
class Landed:
    checked: contracts.Checked
    frame: pl.DataFrame  # the partition as now stored


def land_merged(
    new: pl.DataFrame,
    *,
    dataset: Dataset,
    quarantine: Dataset,
    rules: contracts.Contract,
    key: list[str],
    lake_dir: Path,
    day: str,
    source: str,
    run_id: str,
    prefer: str = "new",
    now: datetime | None = None,
) -> Landed:
    """Check ``new`` and merge it into the day's partition (and its quarantine), under the
    partition's lock: the stored day is read again inside it, so two runs landing the same
    day (a refresh and a backfill) keep each other's rows."""
    now = now or datetime.now(UTC)
    with lake.locked(lake.partition_path(lake_dir, dataset, day)):
        old = stored(lake_dir, dataset, day)
        checked = contracts.check(new, rules, key, source=source, run_id=run_id, now=now)
        clean = merge(old, dataset.conform(checked.clean), key, prefer=prefer)
        old_q = stored(lake_dir, quarantine, day)
        quarantined = pl.concat(
            [old_q, quarantine.conform(checked.quarantined)], how="vertical_relaxed"
        )
        # the same bad record fetched again differs only in its ingested_at: keep it once
        quarantined = (
            quarantined.with_columns(
                pl.col("payload").str.replace(r'"ingested_at":[^,}]*,?', "").alias("__k")
            )
            .unique(subset=["check", "__k"], keep="first", maintain_order=True)
            .drop("__k")
        )
        lake.write_partition(lake_dir, dataset, clean, partition=day)
        lake.write_partition(lake_dir, quarantine, quarantined, partition=day)
        return Landed(checked, clean)
