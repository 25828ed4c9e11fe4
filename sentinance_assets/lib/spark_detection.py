"""Detection backfill on Apache Spark (issue #20): the batch path's days re-detected in parallel.

One Spark task per ``(base asset, UTC day)``: every venue and quote of an asset meets in one
task (the cross-venue rules compare them), and each task runs the very engine of the single
machine (``lib.detection.days.detect_day`` around ``engine.detect_all``) over the rows the
single-machine batch path would read for that day, keeping the alerts of its asset. The union
of the tasks is therefore the single-machine result, alert for alert (same ids, same values):
``tests/lib/test_spark_detection.py`` checks it row for row.

What each task gets:

* the day's trades of its asset, plus the last :data:`~.days.WARM_UP` of the previous day's
  file (as ``batch.day_trades`` reads them);
* the stablecoins' USD legs (``USDC/USD``, ``USDT/USD``: :func:`~.rules.quote_legs`) of the
  same rows, whatever the task's asset: a divergence of ``BTC/USDC`` is measured at the live
  USDC rate those legs give. They are copied into every task of the day (a few markets);
  the legs' own alerts come from the task of their asset (``USDC``), like any other market's.

Inside a task the rows are put in the engine's canonical order (``days.in_trade_order``), so
the arbitrary order in which Spark delivers them changes nothing.

A rule backtest (``sentinance backtest --engine spark``) replays one span of trades in one pass,
not day by day: :func:`detect_trades_on_spark` runs the same tasks with one task per base asset
over the whole span (:data:`WHOLE_SPAN`), which equals ``engine.detect_all`` over all the
trades in canonical order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from sentinance_assets.lib.detection.days import WARM_UP, detect_day, in_trade_order, previous_day
from sentinance_assets.lib.detection.engine import detect_all
from sentinance_assets.lib.detection.rules import DetectorConfig, quote_legs
from sentinance_assets.lib.schemas import ALERTS, RAW_TRADES
from sentinance_assets.lib.spark import arrow_ddl, spark_type

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: the task's key columns, added to the trades and dropped again inside the task
TASK_BASE = "_task_base"
TASK_DAY = "_task_day"
#: the ``TASK_DAY`` of a task over a whole span (a backtest): every alert it finds is kept
WHOLE_SPAN = "whole-span"


def _spark_arrow(dtype: pa.DataType) -> pa.DataType:
    """The Arrow type Spark expects back from a grouped map (plain strings, microseconds)."""
    if pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("us", tz="UTC")
    return dtype


#: the alerts as a task returns them (``ALERTS`` in the types Spark takes)
ALERT_SCHEMA = pa.schema([(f.name, _spark_arrow(f.type)) for f in ALERTS.empty().to_arrow().schema])


@dataclass
class SparkDetection:
    """What :func:`detect_days_on_spark` did."""

    alerts: pl.DataFrame
    trades_scanned: int  # rows fed to the engine, as the single-machine run counts them
    tasks: int
    seconds: float


def _detect_task(cfg: DetectorConfig, detected_at: datetime) -> Callable[[pa.Table], pa.Table]:
    """The grouped-map function: one (asset, day)'s rows (Arrow) -> its alerts (Arrow); for
    the day :data:`WHOLE_SPAN`, all the asset's alerts of one pass over the rows."""

    def run(table: pa.Table) -> pa.Table:
        rows = pl.from_arrow(table)
        assert isinstance(rows, pl.DataFrame)
        base, day = rows[TASK_BASE][0], rows[TASK_DAY][0]
        trades = RAW_TRADES.conform(rows.drop(TASK_BASE, TASK_DAY))

        def detect(t: pl.DataFrame) -> pl.DataFrame:
            return detect_all(t, cfg, detected_at)

        if day == WHOLE_SPAN:
            alerts = detect(in_trade_order(trades))
        else:
            alerts = detect_day(trades, day, detect)
        mine = alerts.filter(pl.col("symbol").str.split("/").list.first() == base)
        return ALERTS.conform(mine).to_arrow().cast(ALERT_SCHEMA)

    return run


def day_rows(spark: SparkSession, files: dict[str, Path], days: list[str]) -> DataFrame:
    """Each trade under the day(s) whose detection reads it (``TASK_DAY``): its own file's
    day, and the next day when it lies in that day's warm-up (as ``batch.day_trades``)."""
    from pyspark.sql import functions as F

    wanted = set(days)
    previous = {previous_day(d) for d in days} & set(files)
    paths = sorted(str(files[d]) for d in wanted | previous)
    schema = ", ".join(f"`{c}` {spark_type(t)}" for c, t in RAW_TRADES.columns.items())
    file_day = F.regexp_extract(F.input_file_name(), r"date=(\d{4}-\d{2}-\d{2})/[^/]*$", 1)
    trades = spark.read.schema(schema).parquet(*paths).withColumn("_file_day", file_day)
    next_day = F.date_format(F.date_add(F.to_date("_file_day"), 1), "yyyy-MM-dd")
    warm_up_from = F.to_timestamp(next_day) - F.expr(
        f"INTERVAL {int(WARM_UP.total_seconds())} SECONDS"
    )
    wanted_days = F.array(*[F.lit(d) for d in sorted(wanted)])
    own = F.when(F.array_contains(wanted_days, F.col("_file_day")), F.col("_file_day"))
    warm = F.when((F.col("ts") >= warm_up_from) & F.array_contains(wanted_days, next_day), next_day)
    return (
        trades.withColumn(TASK_DAY, F.explode(F.array(own, warm)))
        .where(F.col(TASK_DAY).isNotNull())
        .drop("_file_day")
    )


def task_rows(by_day: DataFrame, legs: list[str]) -> DataFrame:
    """Each row of :func:`day_rows` under the asset(s) whose task needs it (``TASK_BASE``):
    its own asset; for a stablecoin leg, every asset traded that day."""
    from pyspark.sql import functions as F

    is_leg = F.col("symbol").isin(legs)
    assets = (
        by_day.where(~is_leg)
        .select(F.col(TASK_DAY).alias("_day"), F.col("base").alias("_base"))
        .distinct()
    )
    own = by_day.where(~is_leg).withColumn(TASK_BASE, F.col("base"))
    leg_rows = by_day.where(is_leg)
    to_assets = (
        leg_rows.join(assets, F.col(TASK_DAY) == F.col("_day"))
        .withColumn(TASK_BASE, F.col("_base"))
        .drop("_day", "_base")
    )
    # a leg whose own asset has no other market that day still needs a task of its own
    # (its own alerts); where that asset trades otherwise, the copy above reaches it
    alone = leg_rows.join(
        assets,
        (F.col(TASK_DAY) == F.col("_day")) & (F.col("base") == F.col("_base")),
        "left_anti",
    ).withColumn(TASK_BASE, F.col("base"))
    return own.unionByName(to_assets).unionByName(alone)


def _alerts_of_tasks(rows: DataFrame, cfg: DetectorConfig, detected_at: datetime) -> pl.DataFrame:
    """The engine in one grouped-map task per (``TASK_BASE``, ``TASK_DAY``) of ``rows``; the
    alerts collected, in one total order."""
    ddl = ", ".join(f"`{f.name}` {arrow_ddl(f.type)}" for f in ALERT_SCHEMA)
    result = rows.groupBy(TASK_BASE, TASK_DAY).applyInArrow(_detect_task(cfg, detected_at), ddl)
    found = pl.from_arrow(result.toArrow())
    assert isinstance(found, pl.DataFrame)
    return ALERTS.conform(found).sort("event_time", "type", "exchange", "symbol", "alert_id")


def detect_days_on_spark(
    spark: SparkSession,
    files: dict[str, Path],
    days: list[str],
    cfg: DetectorConfig,
    detected_at: datetime,
) -> SparkDetection:
    """The alerts of ``days`` (keys of ``files``: the raw.trades file of each stored day),
    detected on Spark with ``cfg``, one task per (base asset, day)."""
    t0 = time.perf_counter()
    if not days:
        return SparkDetection(ALERTS.empty(), 0, 0, 0.0)
    by_day = day_rows(spark, files, days)
    rows = task_rows(by_day, quote_legs(cfg))
    alerts = _alerts_of_tasks(rows, cfg, detected_at)
    tasks = rows.select(TASK_BASE, TASK_DAY).distinct().count()
    return SparkDetection(alerts, by_day.count(), tasks, time.perf_counter() - t0)


def detect_trades_on_spark(
    spark: SparkSession, trades: pl.DataFrame, cfg: DetectorConfig, detected_at: datetime
) -> pl.DataFrame:
    """The alerts of one pass of the engine over ``trades`` (raw.trades layout, e.g. a
    backtest's replay), detected on Spark: one task per base asset over the whole span, the
    stablecoin legs copied into every task. Equal to ``detect_all(in_trade_order(trades), cfg,
    detected_at)``, alert for alert."""
    from pyspark.sql import functions as F

    if trades.is_empty():
        return ALERTS.empty()
    table = RAW_TRADES.conform(trades).to_arrow()
    table = table.cast(pa.schema([(f.name, _spark_arrow(f.type)) for f in table.schema]))
    frame = spark.createDataFrame(table).withColumn(TASK_DAY, F.lit(WHOLE_SPAN))
    return _alerts_of_tasks(task_rows(frame, quote_legs(cfg)), cfg, detected_at)
