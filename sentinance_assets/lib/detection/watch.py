"""The watch loop: new trades -> streaming detectors -> alert sinks, continuously.

Feeds (all :class:`~sentinance_assets.lib.sources.base.TradeFeed`: trades in time order, in the
``raw.trades`` layout):

* :class:`SimulatedFeed` - the simulated market replayed at ``speed`` x real time (``speed=0``:
  as fast as possible) from ``start``;
* :class:`ReplayFeed` - replay trade files (CSV/Parquet, layout
  ``exchange,symbol,trade_id,timestamp,price,amount,side``) at ``speed``;
* ``sources.polling.LiveFeed`` (importable from here too) - live exchanges polled over ccxt
  REST, ``lag`` behind the wall clock so that trades have landed at the venue before their
  window is read. One venue failing never stops the others (its failure is recorded; its
  trades of that step are skipped).
* ``sources.streams.StreamFeed`` - the same venues over ccxt.pro websockets where available
  (``sentinance watch --transport auto``, the default), REST backfill of every gap a
  connection leaves, REST polling for venues without a (working) socket. Same interface.

A live feed's ``horizon()`` says how far the wall clock lets the loop read (a replayed feed's is
``None``: the loop paces it by ``speed``); a feed's ``status()``, when not ``None``, is shown at
the end of the progress line (e.g. which venues stream or poll).

Position and exactly-once. The stream position is a time cursor: every trade with
``ts < cursor`` has been processed. Each loop step takes the trades in ``[cursor, target)``,
pushes them through :class:`~sentinance_assets.lib.detection.engine.StreamingDetector`, hands the
alerts to the sinks (the lake file is named ``<cursor>-<target>``), and only then writes the
checkpoint (cursor + detector state, atomically) under ``settings.checkpoints_dir``. After a
kill -9 the loop restarts from the last checkpoint and first deletes the lake files of batches
that start at or after it (they were written but not committed); re-processing produces the
same alerts with the same ids. Readers deduplicate on ``alert_id`` anyway (the batch asset
writes the same ids for the same events), so the Streamlit app can use
``select distinct on (alert_id) * from alerts.alerts``.

SIGINT/SIGTERM finish the current step, checkpoint and exit 0. On every clean stop the lake
batch files (all committed by then) are compacted into one per stream
(``sinks.compact_alert_files``: atomic, idempotent; the ``watch_alerts_sensor`` also compacts
what it has recorded while the loop runs). A reader that lists the folder and then opens the
files may find one gone (compaction or crash recovery): it retries.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from sentinance_assets.lib.detection.delivery import Deliverer, DeliverySink
from sentinance_assets.lib.detection.engine import StreamingDetector
from sentinance_assets.lib.detection.rules import DetectorConfig
from sentinance_assets.lib.detection.rules_file import Rules
from sentinance_assets.lib.detection.sinks import AlertSink, JsonlSink, LakeSink, WebhookSink
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.schemas import RAW_TRADES
from sentinance_assets.lib.simulator import MarketSimulator
from sentinance_assets.lib.sources.base import TradeFeed
from sentinance_assets.lib.sources.polling import LiveFeed as LiveFeed  # re-exported for the CLI
from sentinance_assets.lib.timestamps import parse_series
from sentinance_assets.settings import Settings

REPLAY_COLUMNS = ("exchange", "symbol", "trade_id", "timestamp", "price", "amount", "side")


# --------------------------------------------------------------------------- replay files
def read_trades_file(path: Path) -> pl.DataFrame:
    """A replay trades file (CSV or Parquet) in the ``raw.trades`` layout, sorted by time.

    ``timestamp`` is any form :mod:`~sentinance_assets.lib.timestamps` reads; base and
    quote come from the unified symbol (``BTC/USDT``).
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pl.read_parquet(path)
    else:
        df = pl.read_csv(path, infer_schema=False)
    missing = [c for c in REPLAY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (need {', '.join(REPLAY_COLUMNS)})")
    ts = parse_series(df["timestamp"].rename("timestamp"), strict=True)
    sym = pl.col("symbol").str.to_uppercase()
    out = df.with_columns(
        ts.alias("ts"),
        sym.alias("symbol"),
        sym.str.split("/").list.first().alias("base"),
        sym.str.split("/").list.get(1, null_on_oob=True).alias("quote"),
        pl.col("exchange").str.to_lowercase(),
        pl.col("trade_id").cast(pl.String),
        pl.col("price").cast(pl.Float64),
        pl.col("amount").cast(pl.Float64),
        pl.col("side").str.to_lowercase(),
        pl.lit("replay").alias("source"),
    ).with_columns(
        (pl.col("price") * pl.col("amount")).alias("cost"), pl.col("ts").alias("ingested_at")
    )
    return RAW_TRADES.conform(out).sort("ts", "exchange", "symbol", "trade_id")


# --------------------------------------------------------------------------- feeds
class ReplayedFeed:
    """What the feeds of recorded and simulated trades share (the rest of ``TradeFeed``): no
    wall-clock limit (the loop paces them by its ``speed``), no status, nothing to release."""

    def horizon(self) -> datetime | None:
        return None

    def status(self) -> str | None:
        return None

    def close(self) -> None:
        pass


class ReplayFeed(ReplayedFeed):
    """Trades from in-memory frames or files, in time order."""

    def __init__(self, trades: pl.DataFrame) -> None:
        self.trades = trades.sort("ts", "exchange", "symbol", "trade_id")
        self.start = self.trades["ts"].min() if self.trades.height else datetime.now(UTC)
        self.end = (
            self.trades["ts"].max() + timedelta(milliseconds=1)
            if self.trades.height
            else self.start
        )

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> ReplayFeed:
        return cls(pl.concat([read_trades_file(p) for p in paths]))

    def between(self, lo: datetime, hi: datetime) -> pl.DataFrame:
        ts = self.trades["ts"]
        i = ts.search_sorted(lo, side="left")
        j = ts.search_sorted(hi, side="left")
        return self.trades.slice(i, j - i)


class SimulatedFeed(ReplayedFeed):
    """The simulated market, one generated UTC day at a time (deterministic)."""

    def __init__(
        self,
        exchanges: tuple[str, ...],
        symbols: tuple[str, ...],
        seed: int,
        trade_rate: float,
        start: datetime,
        end: datetime | None = None,
    ) -> None:
        self.sim = MarketSimulator(
            markets_for(exchanges, symbols), seed=seed, trade_rate=trade_rate
        )
        self.start = start
        self.end = end
        self._days: dict = {}

    def _day(self, d) -> pl.DataFrame:
        if d not in self._days:
            if len(self._days) > 2:
                self._days.pop(min(self._days))
            self._days[d] = self.sim.day(d).trades.sort("ts", "exchange", "symbol", "trade_id")
        return self._days[d]

    def between(self, lo: datetime, hi: datetime) -> pl.DataFrame:
        out = []
        d = lo.date()
        while datetime(d.year, d.month, d.day, tzinfo=UTC) < hi:
            day = self._day(d)
            ts = day["ts"]
            i = ts.search_sorted(lo, side="left")
            j = ts.search_sorted(hi, side="left")
            out.append(day.slice(i, j - i))
            d = d + timedelta(days=1)
        return pl.concat(out) if out else RAW_TRADES.empty()


# --------------------------------------------------------------------------- checkpoint
@dataclass
class Checkpoint:
    cursor: datetime
    detector: StreamingDetector
    batches: int = 0
    trades: int = 0
    alerts: int = 0

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "cursor_ms": int(self.cursor.timestamp() * 1000),
            "batches": self.batches,
            "trades": self.trades,
            "alerts": self.alerts,
        }
        blob = json.dumps(meta).encode() + b"\n" + self.detector.dumps()
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with tmp.open("wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        if not path.exists():
            return None
        raw = path.read_bytes()
        head, _, body = raw.partition(b"\n")
        meta = json.loads(head)
        return cls(
            cursor=datetime.fromtimestamp(meta["cursor_ms"] / 1000, UTC),
            detector=StreamingDetector.loads(body),
            batches=meta["batches"],
            trades=meta["trades"],
            alerts=meta["alerts"],
        )


def batch_key(lo: datetime, hi: datetime) -> str:
    return f"{int(lo.timestamp() * 1000):015d}-{int(hi.timestamp() * 1000):015d}"


def batch_start(path: Path) -> int | None:
    try:
        return int(path.stem.split("-")[0])
    except ValueError:
        return None


# --------------------------------------------------------------------------- the loop
@dataclass
class WatchStats:
    batches: int = 0
    trades: int = 0
    alerts: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # per alert, see run_watch
    compacted: int = 0  # batch files merged away at the clean stop


class StopFlag:
    def __init__(self) -> None:
        self.stop = False

    def install(self) -> None:
        def handler(signum, frame):  # noqa: ARG001
            self.stop = True

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def run_watch(
    feed: TradeFeed,
    sinks: list[AlertSink],
    checkpoint_path: Path,
    *,
    speed: float = 1.0,
    duration: float | None = None,
    until: datetime | None = None,
    step: float = 0.25,
    max_batch: timedelta = timedelta(minutes=5),
    cfg: DetectorConfig | None = None,
    stop: StopFlag | None = None,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
    compact: bool = True,
) -> WatchStats:
    """Run until ``duration`` wall seconds, the feed time ``until``, or a stop signal.

    ``speed`` maps feed time to wall time (a trade at feed time ``t`` "arrives" at
    ``wall0 + (t - start) / speed``); ``speed=0`` processes as fast as possible. Latency per
    alert is measured from the arrival of the oldest trade of its batch to the moment the alert
    file is visible: an upper bound of the trade-to-readable delay. On a clean stop (not on an
    exception) the lake batch files, all committed by then, are compacted into one
    (:func:`~sentinance_assets.lib.detection.sinks.compact_alert_files`) unless ``compact=False``.
    """
    stop = stop or StopFlag()
    ckpt = Checkpoint.load(checkpoint_path)
    if ckpt is None:
        ckpt = Checkpoint(cursor=feed.start, detector=StreamingDetector(cfg))
    elif cfg is not None:
        ckpt.detector.cfg = cfg  # the current rules file applies from the checkpoint on
    # Uncommitted batches from a crash: written after the last checkpoint, about to be redone.
    cursor_ms = int(ckpt.cursor.timestamp() * 1000)
    for sink in sinks:
        if isinstance(sink, LakeSink):
            for f in sink.files():
                start = batch_start(f)
                if start is not None and start >= cursor_ms:
                    f.unlink(missing_ok=True)
    stats = WatchStats()
    wall0 = clock()
    feed0 = ckpt.cursor
    last_print = wall0
    window_trades = 0
    while not stop.stop:
        now = clock()
        if duration is not None and now - wall0 >= duration:
            break
        horizon = feed.horizon()
        if horizon is not None:  # a live feed: as far as the wall clock allows
            target = horizon
        elif speed > 0:
            target = feed0 + timedelta(seconds=(now - wall0) * speed)
        else:
            target = ckpt.cursor + max_batch
        behind = target > ckpt.cursor + max_batch
        target = min(target, ckpt.cursor + max_batch)
        if until is not None:
            target = min(target, until)
        end = feed.end
        if end is not None:
            target = min(target, end)
        if target <= ckpt.cursor:
            if (until is not None and ckpt.cursor >= until) or (
                end is not None and ckpt.cursor >= end
            ):
                break
            time.sleep(min(step, 0.05))
            continue
        lo = ckpt.cursor
        trades = feed.between(lo, target)
        alerts = ckpt.detector.push(trades) if trades.height else None
        if alerts is not None and alerts.height:
            key = batch_key(lo, target)
            for sink in sinks:
                sink.send(alerts, key)
            published = clock()
            if horizon is not None:  # live: from the trade's own time (includes ``lag``)
                first = trades["ts"].min().timestamp()
                stats.latencies_ms.extend([(published - first) * 1000] * alerts.height)
            elif speed > 0:
                arrived = wall0 + (trades["ts"].min() - feed0).total_seconds() / speed
                stats.latencies_ms.extend([(published - arrived) * 1000] * alerts.height)
            stats.alerts += alerts.height
            ckpt.alerts += alerts.height
        ckpt.cursor = target
        ckpt.batches += 1
        ckpt.trades += trades.height
        ckpt.save(checkpoint_path)
        for sink in sinks:
            if isinstance(sink, DeliverySink):
                sink.tick()  # group waits expire without new alerts too
        stats.batches += 1
        stats.trades += trades.height
        window_trades += trades.height
        if progress is not None and clock() - last_print >= 1.0:
            t = clock()
            if horizon is not None:
                lag = t - target.timestamp()
            else:
                lag = (t - (wall0 + (target - feed0).total_seconds() / speed)) if speed > 0 else 0.0
            status = feed.status()
            progress(
                f"feed {target:%Y-%m-%d %H:%M:%S} | {window_trades / (t - last_print):,.0f} "
                f"trades/s | lag {max(lag, 0.0):.2f} s | {stats.alerts} alerts "
                f"| {ckpt.trades:,} trades total" + (f" | {status}" if status is not None else "")
            )
            last_print = t
            window_trades = 0
        if (speed > 0 or horizon is not None) and not behind:
            time.sleep(step)
    if compact:
        # clean stop: every batch file is committed up to the checkpoint; fold them into one
        upto = int(ckpt.cursor.timestamp() * 1000)
        for sink in sinks:
            if isinstance(sink, LakeSink):
                stats.compacted += sink.compact(upto)
    return stats


def checkpoint_cursor_ms(path: Path) -> int | None:
    """The committed stream position (epoch ms) of a watch checkpoint, None without one."""
    try:
        head = Path(path).read_bytes().split(b"\n", 1)[0]
        return int(json.loads(head)["cursor_ms"])
    except (OSError, ValueError, KeyError):
        return None


def alert_sinks(
    settings: Settings,
    name: str,
    *,
    jsonl: str | Path | None = None,
    webhook: str | None = None,
    webhook_timeout: float | None = None,
    dead_letter: str | Path | None = None,
    rules: Rules | None = None,
) -> list[AlertSink]:
    """The sinks of ``sentinance watch``: the lake folder ``watch-<name>``, then a JSON-lines
    file and a webhook when asked, then the people channels of ``rules`` (and
    ``SENTINANCE_ALERT_CHANNELS``) when there are any. Explicit arguments (the CLI options)
    override the settings ``SENTINANCE_ALERT_WEBHOOK``, ``SENTINANCE_ALERT_WEBHOOK_TIMEOUT``
    and ``SENTINANCE_ALERT_DEAD_LETTER``."""
    sinks: list[AlertSink] = [LakeSink(settings.lake_dir, folder=f"watch-{name}")]
    if jsonl:
        sinks.append(JsonlSink(Path(jsonl)))
    url = webhook or settings.alert_webhook
    if url:
        dead = Path(dead_letter or settings.alert_dead_letter)
        timeout = webhook_timeout if webhook_timeout is not None else settings.alert_webhook_timeout
        sinks.append(WebhookSink(url, dead, timeout=timeout))
    if rules is not None:
        deliverer = Deliverer.from_rules(rules, settings.home, settings.alert_channels)
        if deliverer is not None:
            sinks.append(DeliverySink(deliverer))
    return sinks


def stderr_progress(line: str) -> None:
    sys.stderr.write("\r" + line + "   ")
    sys.stderr.flush()
