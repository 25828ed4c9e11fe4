"""Detection quality against the simulator's ground truth: precision and recall per type.

Matching rule (one alert matches one ground-truth event when all hold):

* same exchange and symbol - except ``divergence`` with two venues of the asset, where the
  spread is a pair property and an alert on the other venue of the same base also matches;
* the alert's ``event_time`` lies in the event's window widened by the detector's resolution:
  ``whale`` within 1 s of the trade; ``volume_spike`` in [start - 60 s, end];
  ``divergence`` in [start - 30 s, end]; ``pump_and_dump`` in [start - 5 min, end].
* A ``volume_spike`` alert inside a ``pump_and_dump`` window of the same market (the pump's
  volume surge is real) is counted as *explained*: it is neither a true nor a false positive
  for ``volume_spike`` precision, and is reported in the ``explained`` column.

An event is *unobservable* when ``trades`` are given and its market has no trade at all inside
the event window (at low trade rates a divergence on a quiet venue leaves no trace): it is
excluded from the recall denominator and counted in the ``unobservable`` column, so raw recall
can be recomputed as matched_events / events.

Recall = events matched by at least one alert / observable events; precision = alerts
matching an event of their type / (alerts - explained). ``wash_trading`` has no injected
ground truth on the simulated market: every wash alert there is a false positive (expected:
none; ``events`` = 0).
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

TOLERANCE: dict[str, tuple[timedelta, timedelta]] = {
    "whale": (timedelta(seconds=1), timedelta(seconds=1)),
    "volume_spike": (timedelta(seconds=60), timedelta(0)),
    "divergence": (timedelta(seconds=30), timedelta(0)),
    "pump_and_dump": (timedelta(minutes=5), timedelta(0)),
}
TYPES = ("whale", "volume_spike", "divergence", "pump_and_dump", "wash_trading")


def _base(col: str) -> pl.Expr:
    return pl.col(col).str.split("/").list.first()


def _venues(e: pl.DataFrame) -> pl.DataFrame:
    return (
        e.filter(pl.col("type") != "divergence")
        .group_by("base")
        .agg(pl.col("exchange").n_unique().alias("n_venues"))
    )


def _pairs(at: pl.DataFrame, et: pl.DataFrame, t: str, venues: pl.DataFrame) -> pl.DataFrame:
    """(alert, event) pairs of one type that match by the rule of the module docstring."""
    before, after = TOLERANCE.get(t, (timedelta(0), timedelta(0)))
    pairs = at.join(et, on="base", suffix="_e").filter(
        pl.col("event_time").is_between(pl.col("start_ts") - before, pl.col("end_ts") + after)
    )
    if t == "divergence":
        return pairs.join(venues, on="base", how="left").filter(
            (pl.col("exchange") == pl.col("exchange_e")) | (pl.col("n_venues").fill_null(0) == 2)
        )
    return pairs.filter(
        (pl.col("exchange") == pl.col("exchange_e")) & (pl.col("symbol") == pl.col("symbol_e"))
    )


def match_pairs(alerts: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Every matching (alert, event) pair: alert_id, event_id, type, start_ts."""
    a = alerts.select("alert_id", "type", "exchange", "symbol", "event_time").with_columns(
        _base("symbol").alias("base")
    )
    e = events.select("event_id", "type", "exchange", "symbol", "start_ts", "end_ts").with_columns(
        _base("symbol").alias("base")
    )
    venues = _venues(e)
    frames = [
        _pairs(a.filter(pl.col("type") == t), e.filter(pl.col("type") == t), t, venues).select(
            "alert_id", "event_id", "type", "start_ts"
        )
        for t in TYPES
    ]
    return pl.concat(frames)


def score_alerts(
    alerts: pl.DataFrame, events: pl.DataFrame, trades: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per alert type: events, unobservable, alerts, explained, tp_alerts,
    matched_events, precision, recall."""
    a = alerts.select("alert_id", "type", "exchange", "symbol", "event_time").with_columns(
        _base("symbol").alias("base")
    )
    e = events.select("event_id", "type", "exchange", "symbol", "start_ts", "end_ts").with_columns(
        _base("symbol").alias("base")
    )
    venues = _venues(e)
    unobservable: set[str] = set()
    if trades is not None and events.height:
        seen = (
            events.select("event_id", "exchange", "symbol", "start_ts", "end_ts")
            .join(trades.select("exchange", "symbol", "ts"), on=["exchange", "symbol"])
            .filter((pl.col("ts") >= pl.col("start_ts")) & (pl.col("ts") <= pl.col("end_ts")))
        )["event_id"]
        unobservable = set(events["event_id"]) - set(seen)
    rows = []
    for t in TYPES:
        at = a.filter(pl.col("type") == t)
        et = e.filter(pl.col("type") == t)
        pairs = _pairs(at, et, t, venues)
        tp = pairs["alert_id"].n_unique()
        matched = pairs["event_id"].n_unique()
        explained = 0
        if t == "volume_spike":
            pump = e.filter(pl.col("type") == "pump_and_dump")
            rest = at.filter(~pl.col("alert_id").is_in(pairs["alert_id"].implode()))
            explained = (
                rest.join(pump, on=["exchange", "symbol"], suffix="_p")
                .filter(pl.col("event_time").is_between(pl.col("start_ts"), pl.col("end_ts")))[
                    "alert_id"
                ]
                .n_unique()
            )
        counted = at.height - explained
        hidden = sum(1 for x in et["event_id"] if x in unobservable)
        observable = et.height - hidden
        matched_obs = pairs.filter(~pl.col("event_id").is_in(list(unobservable)))[
            "event_id"
        ].n_unique()
        rows.append(
            {
                "type": t,
                "events": et.height,
                "unobservable": hidden,
                "alerts": at.height,
                "explained": explained,
                "tp_alerts": tp,
                "matched_events": matched,
                "precision": tp / counted if counted else None,
                "recall": matched_obs / observable if observable else None,
            }
        )
    return pl.DataFrame(rows)
