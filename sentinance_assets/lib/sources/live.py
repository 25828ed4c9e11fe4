"""The live source: exchanges through ccxt and news through RSS/Atom feeds.

One (exchange, symbol) failing - the venue is down, answers 429s or garbage, lists no market -
never stops the others: the failure is recorded in :attr:`LiveSource.failures` (the assets put
it in materialization metadata and an asset check warns) and the other markets are fetched.

Windows: a day's fetch covers ``[day start, day end)`` clipped to the configured window
(``SENTINANCE_START``..``SENTINANCE_END``) and to the last complete minute, so an unfinished
candle is never stored. The assets pass narrower windows to resume from the last stored
timestamp and to backfill gaps (see ``sentinance_assets.lib.sources.incremental``): this is the
one incremental source (``incremental = True`` of the ``base.Source`` protocol), and the one with
a stream, :class:`~sentinance_assets.lib.sources.polling.LiveFeed` (REST polling).

Bad rows are never lost here: rows the venue sent that ccxt could not parse or time (see
``exchanges._salvage_rows``) come back from :meth:`LiveSource.candles` and
:meth:`LiveSource.trades` as rows with the values as sent (text) plus ``venue_record`` (the row
as the venue sent it, JSON) and ``venue_error``, so the contracts quarantine them with the
original payload. A whole page that cannot be read (malformed JSON) fails its market, which is
recorded in :attr:`LiveSource.failures`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import ccxt
import polars as pl

from sentinance_assets.lib.contracts import EARLIEST, FUTURE_SKEW
from sentinance_assets.lib.markets import Market, market_for
from sentinance_assets.lib.schemas import (
    RAW_CANDLES,
    RAW_MARKET_EVENTS,
    RAW_NEWS,
    RAW_TRADES,
    TS,
    Dataset,
)
from sentinance_assets.lib.sources import exchanges as exm
from sentinance_assets.lib.sources.base import (
    Failure,
    MarketKey,
    TradeFeed,
    Window,
    day_bounds,
    epoch_ms,
)
from sentinance_assets.lib.sources.feeds import FeedClient, read_feeds
from sentinance_assets.lib.sources.incremental import drop_seen_news
from sentinance_assets.lib.sources.polling import LiveFeed
from sentinance_assets.settings import Settings

VENUE_COLUMNS = ("venue_record", "venue_error")
_OHLCV = ("open", "high", "low", "close", "volume")


def _venue_fields(reject: dict) -> dict[str, str]:
    return {"venue_record": exm.raw_json(reject["raw"]), "venue_error": reject["error"]}


def _text(value: object) -> str | None:
    """A value as sent, as text (numbers via ``repr``: ``nan``, ``inf`` stay readable)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return exm.raw_json(value)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def trade_row(m: Market, t: dict) -> dict:
    """A parsed ccxt trade as a ``raw.trades`` row (before :meth:`LiveSource._frame` casts it):
    the one mapping for REST polling and websockets (``sources.streams``)."""
    return {
        "exchange": m.exchange,
        "symbol": m.symbol,
        "base": m.base,
        "quote": m.quote,
        "trade_id": exm.trade_key(t),
        "ts": int(t["timestamp"]),
        "price": t.get("price"),
        "amount": t.get("amount"),
        "cost": t.get("cost"),
        "side": t.get("side"),
    }


class LiveSource:
    name = "live"
    incremental = True

    def __init__(
        self,
        exchanges: Iterable[str],
        symbols: Iterable[str],
        *,
        window: tuple[datetime, datetime] | None = None,
        exchange_urls: dict[str, str] | None = None,
        policy: exm.FetchPolicy | None = None,
        news_feeds: Iterable[str] = (),
        feed_cache_dir: Path | None = None,
        feed_client: FeedClient | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.exchange_ids = tuple(exchanges)
        self.symbols = tuple(symbols)
        self.window = window
        self.exchange_urls = dict(exchange_urls or {})
        self.policy = policy or exm.FetchPolicy()
        self.news_feeds = tuple(news_feeds)
        self.feed_client = feed_client or FeedClient(
            cache_dir=feed_cache_dir or Settings().checkpoints_dir / "feeds"
        )
        self.now = now
        self.sleep = sleep
        self.failures: list[Failure] = []
        self.problems: list[Failure] = []  # no files: always empty
        self.news_report: dict[str, object] = {}
        self._clients: dict[str, ccxt.Exchange] = {}
        self._markets: dict[str, list[Market] | BaseException] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> LiveSource:
        kwargs.setdefault(
            "policy",
            exm.FetchPolicy(
                timeout_ms=int(settings.http_timeout * 1000),
                retries=settings.http_retries,
                backoff_s=settings.http_backoff,
            ),
        )
        kwargs.setdefault(
            "feed_client",
            FeedClient(
                cache_dir=settings.checkpoints_dir / "feeds",
                timeout=settings.http_timeout,
                retries=min(settings.http_retries, 2),
                backoff=settings.http_backoff,
            ),
        )
        return cls(
            settings.exchanges,
            settings.symbols,
            window=(settings.start, settings.end),
            exchange_urls=dict(settings.exchange_urls),
            news_feeds=settings.news_feeds,
            **kwargs,  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ markets

    def client(self, exchange_id: str) -> ccxt.Exchange:
        if exchange_id not in self._clients:
            self._clients[exchange_id] = exm.make_exchange(
                exchange_id, self.policy, self.exchange_urls.get(exchange_id)
            )
        return self._clients[exchange_id]

    def markets(self, exchange_id: str) -> list[Market]:
        """The venue's market for each configured symbol (quote chosen from its listings).

        Raises when the venue's market list cannot be loaded; symbols the venue does not
        list are recorded as failures and left out.
        """
        cached = self._markets.get(exchange_id)
        if isinstance(cached, BaseException):
            raise cached
        if cached is not None:
            return cached
        try:
            ex = self.client(exchange_id)
            exm.call_with_retries(ex.load_markets, policy=self.policy, sleep=self.sleep)
            available = set(ex.symbols or [])
        except Exception as exc:  # noqa: BLE001 - recorded per market by the caller
            self._markets[exchange_id] = exc
            raise
        found: list[Market] = []
        for sym in self.symbols:
            try:
                found.append(market_for(exchange_id, sym, available=available))
            except LookupError as exc:
                self._fail(exchange_id, sym, "markets", exc)
        self._markets[exchange_id] = found
        return found

    def _fail(self, exchange: str, symbol: str, dataset: str, exc: BaseException) -> None:
        record = {"exchange": exchange, "symbol": symbol, "dataset": dataset, "error": _error(exc)}
        if record not in self.failures:
            self.failures.append(record)

    def coverage(self, kind: str) -> dict[str, dict[str, int]]:
        return {}  # no files: every row fetched is inside the window asked for

    def day_window(self, day: date) -> Window | None:
        start, end = day_bounds(day)
        if self.window is not None:
            start, end = max(start, self.window[0]), min(end, self.window[1])
        now = self.now().replace(second=0, microsecond=0)  # last complete minute
        end = min(end, now)
        return (epoch_ms(start), epoch_ms(end)) if end > start else None

    def _each_market(self, dataset: str) -> Iterable[tuple[ccxt.Exchange, Market]]:
        for ex_id in self.exchange_ids:
            try:
                markets = self.markets(ex_id)
            except Exception as exc:  # noqa: BLE001 - one venue down never stops the others
                for sym in self.symbols:
                    self._fail(ex_id, sym, dataset, exc)
                continue
            for m in markets:
                yield self.client(ex_id), m

    # ------------------------------------------------------------------ candles / trades

    def candles(
        self, day: date, windows: Mapping[MarketKey, Sequence[Window]] | None = None
    ) -> pl.DataFrame:
        """1-minute candles of ``day``; ``windows`` narrows what is asked per market."""
        full = self.day_window(day)
        if full is None:
            return RAW_CANDLES.empty()
        rows: list[dict] = []
        rejected: list[dict] = []
        for ex, m in self._each_market("candles"):
            wins = (windows or {}).get((m.exchange, m.symbol), [full])
            for start, end in wins:
                start, end = max(start, full[0]), min(end, full[1])
                if end <= start:
                    continue
                bad: list[dict] = []
                try:
                    got = exm.fetch_candles(
                        ex, m.symbol, start, end, self.policy, sleep=self.sleep, rejects=bad
                    )
                except Exception as exc:  # noqa: BLE001 - isolate the market
                    self._fail(m.exchange, m.symbol, "candles", exc)
                    break
                for r in bad:
                    values = r["parsed"] if isinstance(r["parsed"], list) else []
                    values = (list(values) + [None] * 6)[:6]
                    rejected.append(
                        {
                            **self._market_fields(m),
                            "timeframe": "1m",
                            **dict(zip(("ts", *_OHLCV), values, strict=True)),
                            **_venue_fields(r),
                        }
                    )
                rows.extend(
                    {
                        "exchange": m.exchange,
                        "symbol": m.symbol,
                        "base": m.base,
                        "quote": m.quote,
                        "timeframe": "1m",
                        "ts": int(c[0]),
                        "open": c[1],
                        "high": c[2],
                        "low": c[3],
                        "close": c[4],
                        "volume": c[5],
                    }
                    for c in got
                )
        return self._with_rejected(self._frame(rows, RAW_CANDLES), rejected, RAW_CANDLES)

    def trades(self, day: date, since: Mapping[MarketKey, int] | None = None) -> pl.DataFrame:
        """Trades of ``day``; ``since`` (epoch ms per market) resumes where the lake ends."""
        full = self.day_window(day)
        if full is None:
            return RAW_TRADES.empty()
        return self.trades_between(full[0], full[1], since, with_rejected=True)

    def trades_between(
        self,
        lo_ms: int,
        hi_ms: int,
        since: Mapping[MarketKey, int] | None = None,
        *,
        with_rejected: bool = False,
    ) -> pl.DataFrame:
        """Trades of every configured market in ``[lo_ms, hi_ms)``; one market failing is
        recorded in :attr:`failures` and never stops the others. The watch loop polls with it.

        ``with_rejected`` adds the rows ccxt could not parse or time, as sent (for the
        contracts; the ingest asset asks for them). Without it the frame keeps the typed raw
        layout the watch loop's detectors need.
        """
        rows: list[dict] = []
        rejected: list[dict] = []
        for ex, m in self._each_market("trades"):
            start = max(lo_ms, (since or {}).get((m.exchange, m.symbol), lo_ms))
            if start >= hi_ms:
                continue
            bad: list[dict] = []
            try:
                got = exm.fetch_trades(
                    ex, m.symbol, start, hi_ms, self.policy, sleep=self.sleep, rejects=bad
                )
            except Exception as exc:  # noqa: BLE001 - isolate the market
                self._fail(m.exchange, m.symbol, "trades", exc)
                continue
            for r in bad:
                t = r["parsed"] if isinstance(r["parsed"], dict) else {}
                rejected.append(
                    {
                        **self._market_fields(m),
                        "trade_id": exm.trade_key(t) if t else None,
                        "ts": t.get("timestamp"),
                        **{k: t.get(k) for k in ("price", "amount", "cost", "side")},
                        **_venue_fields(r),
                    }
                )
            rows.extend(trade_row(m, t) for t in got)
        frame = self._frame(rows, RAW_TRADES)
        return self._with_rejected(frame, rejected, RAW_TRADES) if with_rejected else frame

    @staticmethod
    def _market_fields(m: Market) -> dict[str, str]:
        return {"exchange": m.exchange, "symbol": m.symbol, "base": m.base, "quote": m.quote}

    def _with_rejected(
        self, frame: pl.DataFrame, rejected: list[dict], ds: Dataset
    ) -> pl.DataFrame:
        """``frame`` plus the rejected rows, every value as text (as sent), and the venue's row.

        Only when there are rejects: the typed columns then become text (timestamps as epoch
        ms), which the contracts parse back exactly, so one frame holds both.
        """
        if not rejected:
            return frame
        cols = ds.received_columns
        arrived = str(epoch_ms(datetime.now(UTC)))  # epoch ms, like the typed rows' text below
        bad = pl.DataFrame(
            [{c: _text(r.get(c)) for c in [*cols, *VENUE_COLUMNS]} for r in rejected],
            schema={c: pl.String for c in [*cols, *VENUE_COLUMNS]},
        ).with_columns(pl.lit(self.name).alias("source"), pl.lit(arrived).alias("ingested_at"))
        as_text = [
            (pl.col(c).dt.epoch("ms") if t == TS else pl.col(c)).cast(pl.String).alias(c)
            for c, t in cols.items()
        ]
        good = frame.select(as_text).with_columns(
            [pl.lit(None, dtype=pl.String).alias(c) for c in VENUE_COLUMNS]
        )
        return pl.concat([good, bad.select(good.columns)], how="vertical")

    def _frame(self, rows: list[dict], ds: Dataset) -> pl.DataFrame:
        cols = ds.received_columns
        if not rows:
            return ds.empty()
        df = pl.DataFrame(rows, infer_schema_length=None)
        df = df.with_columns(
            pl.col("ts").cast(pl.Int64).cast(TS),
            pl.lit(self.name).alias("source"),
            pl.lit(datetime.now(UTC)).cast(TS).alias("ingested_at"),
        )
        if "cost" in cols:
            df = df.with_columns(
                pl.coalesce(
                    pl.col("cost").cast(pl.Float64), pl.col("price") * pl.col("amount")
                ).alias("cost")
            )
        # the stored layout (``late`` derived from ``ingested_at``), like every source: the watch
        # loop and the stream merger use these frames as they are; the contracts re-derive it
        return ds.conform(df.select([pl.col(c).cast(t, strict=False) for c, t in cols.items()]))

    # ------------------------------------------------------------------ news

    def news(self, day: date, seen: pl.DataFrame | None = None) -> pl.DataFrame:
        """Items of the feeds published on ``day`` (conditional GETs: a feed that has not
        changed is not downloaded again). With ``seen`` (what the lake holds), an item whose id,
        link or normalised title is already stored is a repeat: dropped and counted in
        ``news_report["repeats_of_stored"]``."""
        report = read_feeds(self.news_feeds, self.feed_client)
        for failure in report.failures:
            self.failures.append({"exchange": "", "symbol": "", "dataset": "news", **failure})
        self.news_report = {
            "feeds": len(self.news_feeds),
            "feeds_failed": len(report.failures),
            "feeds_not_modified": len(report.not_modified),
            "duplicates_dropped": report.duplicates,
        }
        start, end = day_bounds(day)
        published = pl.col("published")
        on_day = (published >= start) & (published < end)
        now = self.now()
        if day == now.date():
            # an item dated in the future (beyond the skew) or before 2009 belongs to no day
            # that will ever be ingested: today's partition takes it, so the contracts
            # quarantine it (not_in_future / time_plausible) instead of it vanishing
            nowhere = (published > now + FUTURE_SKEW) | (published < EARLIEST)
            on_day = on_day | nowhere
        items = report.items.filter(on_day).with_columns(
            pl.lit(self.name).alias("source"),
            pl.lit(datetime.now(UTC)).cast(TS).alias("ingested_at"),
        )
        items = RAW_NEWS.conform(items.select(list(RAW_NEWS.received_columns)))
        if seen is None:
            return items
        items, repeats = drop_seen_news(seen, items)
        self.news_report["repeats_of_stored"] = repeats
        return items

    def events(self, day: date) -> pl.DataFrame:
        return RAW_MARKET_EVENTS.empty()

    def stream(self, start: datetime | None = None) -> TradeFeed | None:
        """Trades as they happen, polled over REST (the transport every venue has; the
        websocket transport is ``sources.streams.StreamFeed`` over the same source)."""
        return LiveFeed(self, start=start)
