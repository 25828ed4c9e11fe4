"""Replay recorded files through the same assets and contracts as live data.

Layout of ``SENTINANCE_REPLAY_DIR``::

    trades/*.csv|*.parquet   exchange,symbol,trade_id,timestamp,price,amount,side
    candles/*.csv|*.parquet  exchange,symbol,timeframe,timestamp,open,high,low,close,volume
    news/*.xml               RSS 2.0 or Atom

``timestamp`` is epoch milliseconds (seconds, microseconds and nanoseconds are recognised by
magnitude) or ISO-8601 (UTC when no offset is given). Files may sit in sub-folders.

Also accepted:

* Binance public data dumps (data.binance.vision): klines (12 columns) and aggTrades
  (7 or 8 columns), with or without a header, e.g. ``candles/BTCUSDT-1m-2023-03-01.csv``.
* Kraken's downloadable OHLCVT CSV (7 columns, no header).
* Files without ``exchange``/``symbol`` columns: the exchange comes from the sub-folder
  (``candles/binanceus/...``) or a file-name prefix (``binanceus_btcusdt.parquet``), Binance
  dumps default to ``binance``; the symbol from the file name (``BTCUSDT``, ``btcusd``).
  ``timeframe`` defaults to a ``1m``-like token of the file name, else ``1m``.

* News tables (CSV or Parquet) such as the exports of news sites and datasets: a title
  (``title``), a text (``text``, ``summary``, ``description``), a link (``url``, ``link``), a
  time (``date``, ``date_utc``, ``created_at``, ``published``; any form of
  ``lib/timestamps.py``, day-first dates included) and optionally a publisher (``source``,
  ``source_name``, ``publisher``; else the file name).

A row is returned only for the UTC day it falls in; files that cannot be read are reported in
``problems`` rather than failing the run. Rows no partition of the run reads are counted per
file (:meth:`ReplaySource.coverage`: before the window, after it, beyond the allowed clock
skew, without a time); the ones without a time or dated in the future beyond the skew are
handed to the contracts with the run's first day (they quarantine them with that reason), so
they are never silently dropped, whichever day of the file a run reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

import polars as pl

from sentinance_assets.lib.contracts import FUTURE_SKEW
from sentinance_assets.lib.news import ASSET_ALIASES as NEWS_ASSETS
from sentinance_assets.lib.news import news_id, tag_assets
from sentinance_assets.lib.schemas import RAW_CANDLES, RAW_MARKET_EVENTS, RAW_NEWS, RAW_TRADES, TS
from sentinance_assets.lib.sources.base import MarketKey, WholeDaySource, Window, day_bounds
from sentinance_assets.lib.sources.feeds import parse_feed, strip_html
from sentinance_assets.lib.timestamps import parse_series

DATA_SUFFIXES = (".csv", ".parquet")
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "BTC", "ETH")
KNOWN_BASES = {*NEWS_ASSETS, *KNOWN_QUOTES, "BNB", "LTC", "DOT", "AVAX", "LINK", "MATIC"}
ASSET_ALIASES = {"XBT": "BTC", "XXBT": "BTC", "XETH": "ETH", "ZUSD": "USD", "ZEUR": "EUR"}
BINANCE_KLINE_COLS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]  # fmt: skip
BINANCE_AGG_COLS = [
    "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
    "is_buyer_maker", "is_best_match",
]  # fmt: skip
KRAKEN_OHLCVT_COLS = ["timestamp", "open", "high", "low", "close", "volume", "count"]
TS_CANDIDATES = (
    "timestamp", "ts", "open_time", "transact_time", "unix", "unix_timestamp", "time", "start",
    "date",
)  # fmt: skip
FILE_COLUMN = "_file"  # which replay file a row came from, while the source reads them
COVERAGE_KEYS = ("rows", "before_window", "after_window", "future", "no_time")
_TF_RE = re.compile(r"^\d+[smhdwM]$")


class ReplayFormatError(ValueError):
    pass


def split_pair(text: str) -> tuple[str, str] | None:
    """``BTCUSDT`` -> (BTC, USDT); ``btc/usd``, ``XBTUSD`` -> (BTC, USD); None if unknown."""
    t = text.strip().upper()
    for sep in ("/", "-", "_"):
        if sep in t:
            base, quote = t.split(sep, 1)
            return ASSET_ALIASES.get(base, base), ASSET_ALIASES.get(quote, quote)
    splits = [
        (ASSET_ALIASES.get(t[: -len(q)], t[: -len(q)]), q)
        for q in KNOWN_QUOTES
        if t.endswith(q) and len(t) > len(q)
    ]
    # "XBTUSD" ends with TUSD and USD: prefer the split whose base is a known asset
    for base, quote in splits:
        if base in KNOWN_BASES:
            return base, quote
    return splits[0] if splits else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(path: Path) -> pl.DataFrame:
    """A CSV (with or without header) or Parquet file; headerless layouts get their names."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    with path.open("rb") as fh:
        first, second = (fh.readline().decode("utf-8-sig", errors="replace").strip() for _ in "12")
    # news exports are often ';'-separated; download sites put a banner line above the header
    # ("Created on ...,https://www.CryptoDataDownload.com")
    sep = ";" if first.count(";") > first.count(",") else ","
    skip = 1 if 0 < first.count(sep) + 1 <= 2 < second.count(sep) + 1 else 0
    if skip:
        first = second
    fields = first.split(sep)
    if fields and _is_number(fields[0]):
        df = pl.read_csv(path, has_header=False, infer_schema_length=1000, separator=sep)
        names = {12: BINANCE_KLINE_COLS, 8: BINANCE_AGG_COLS, 7: None}.get(df.width)
        if df.width == 7:
            # aggTrades of older dumps (no is_best_match... ) vs Kraken OHLCVT: aggTrades'
            # 7th column is a boolean
            names = BINANCE_AGG_COLS[:7] if df.dtypes[6] == pl.Boolean else KRAKEN_OHLCVT_COLS
        if names is None:
            raise ReplayFormatError(f"{path.name}: headerless CSV with {df.width} columns")
        return df.rename(dict(zip(df.columns, names, strict=True)))
    df = pl.read_csv(
        path, infer_schema_length=10000, try_parse_dates=False, separator=sep, skip_rows=skip
    )
    # "Unix Timestamp", "Volume BTC" (CryptoDataDownload) -> unix_timestamp, volume_btc
    return df.rename({c: re.sub(r"\s+", "_", c.strip().lower()) for c in df.columns})


def _infer_market(path: Path, root: Path, binance_dump: bool) -> tuple[str | None, str | None]:
    rel = path.relative_to(root)
    exchange = rel.parts[0].lower() if len(rel.parts) > 1 else None
    tokens = [t for t in re.split(r"[_\-\s.]+", path.stem) if t]
    symbol = None
    for i, tok in enumerate(tokens):
        pair = split_pair(tok) if tok.isalnum() and not tok.isdigit() else None
        if pair and not _TF_RE.match(tok):
            symbol = f"{pair[0]}/{pair[1]}"
            if exchange is None and i > 0 and tokens[i - 1].isalpha():
                exchange = tokens[i - 1].lower()
            break
    if exchange is None and binance_dump:
        exchange = "binance"
    return exchange, symbol


def _timeframe_from_name(path: Path) -> str:
    for tok in re.split(r"[_\-\s.]+", path.stem):
        if _TF_RE.match(tok):
            return tok
    return "1m"


def _market_columns(df: pl.DataFrame, path: Path, root: Path, dump: bool) -> pl.DataFrame:
    ex_inferred, sym_inferred = _infer_market(path, root, dump)
    if "exchange" not in df.columns:
        if ex_inferred is None:
            raise ReplayFormatError(f"{path.name}: no exchange column and none in the path")
        df = df.with_columns(pl.lit(ex_inferred).alias("exchange"))
    if "symbol" not in df.columns:
        if sym_inferred is None:
            raise ReplayFormatError(f"{path.name}: no symbol column and none in the file name")
        df = df.with_columns(pl.lit(sym_inferred).alias("symbol"))
    symbols = df.get_column("symbol").cast(pl.String)
    mapping = {}
    for s in symbols.unique().to_list():
        if s is None:
            continue
        pair = split_pair(s)
        mapping[s] = f"{pair[0]}/{pair[1]}" if pair else s
    df = df.with_columns(
        pl.col("exchange").cast(pl.String).str.to_lowercase(),
        pl.col("symbol").cast(pl.String).replace_strict(mapping, default=None).alias("symbol"),
    )
    return df.with_columns(
        pl.col("symbol").str.split("/").list.get(0, null_on_oob=True).alias("base"),
        pl.col("symbol").str.split("/").list.get(1, null_on_oob=True).alias("quote"),
    )


def _ts_column(df: pl.DataFrame, path: Path) -> pl.Series:
    for name in TS_CANDIDATES:
        if name in df.columns:
            return parse_series(df.get_column(name), strict=False)
    raise ReplayFormatError(f"{path.name}: no timestamp column (tried {TS_CANDIDATES})")


def _base_volume(df: pl.DataFrame) -> pl.Expr:
    """Volume in the base asset when a file names it per asset (``volume_btc`` beside
    ``volume_usdt``): the column of the row's base; null when the file has none."""
    per_asset = {
        c.removeprefix("volume_").upper(): c for c in df.columns if c.startswith("volume_")
    }
    expr = pl.lit(None, dtype=pl.Float64)
    for asset, column in per_asset.items():
        expr = (
            pl.when(pl.col("base") == asset).then(pl.col(column).cast(pl.Float64)).otherwise(expr)
        )
    return expr


def normalise_candles(df: pl.DataFrame, path: Path, root: Path) -> pl.DataFrame:
    dump = "close_time" in df.columns and "taker_buy_quote_volume" in df.columns
    df = _market_columns(df, path, root, dump)
    ts = _ts_column(df, path)
    if "timeframe" not in df.columns:
        df = df.with_columns(pl.lit(_timeframe_from_name(path)).alias("timeframe"))
    if "volume" not in df.columns:
        df = df.with_columns(_base_volume(df).alias("volume"))
    return df.with_columns(
        ts.alias("ts"),
        pl.lit("replay").alias("source"),
        pl.lit(None, dtype=TS).alias("ingested_at"),
    ).select([pl.col(c).cast(t, strict=False) for c, t in RAW_CANDLES.received_columns.items()])


def normalise_trades(df: pl.DataFrame, path: Path, root: Path) -> pl.DataFrame:
    dump = "agg_trade_id" in df.columns
    if dump:
        df = df.with_columns(
            pl.col("agg_trade_id").alias("trade_id"),
            pl.col("quantity").alias("amount"),
            pl.when(pl.col("is_buyer_maker").cast(pl.String).str.to_lowercase() == "true")
            .then(pl.lit("sell"))
            .otherwise(pl.lit("buy"))
            .alias("side"),
        )
        df = df.with_columns(pl.col("transact_time").alias("timestamp"))
    if "trade_id" not in df.columns and "id" in df.columns:
        df = df.rename({"id": "trade_id"})
    df = _market_columns(df, path, root, dump)
    ts = _ts_column(df, path)
    if "side" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("side"))
    df = df.with_columns(
        ts.alias("ts"),
        pl.col("trade_id").cast(pl.String),
        pl.col("price").cast(pl.Float64, strict=False),
        pl.col("amount").cast(pl.Float64, strict=False),
        pl.col("side").cast(pl.String).str.to_lowercase(),
    )
    return df.with_columns(
        (pl.col("price") * pl.col("amount")).alias("cost"),
        pl.lit("replay").alias("source"),
        pl.lit(None, dtype=TS).alias("ingested_at"),
    ).select([pl.col(c).cast(t, strict=False) for c, t in RAW_TRADES.received_columns.items()])


NEWS_TITLE = ("title", "headline")
NEWS_TEXT = ("text", "summary", "description", "lede", "body")
NEWS_LINK = ("url", "link")
NEWS_TIME = ("published", "date_utc", "created_at", "date", "timestamp", "time")
NEWS_PUBLISHER = ("publisher", "source_name", "source")


def _first_column(df: pl.DataFrame, names: Sequence[str]) -> pl.Expr:
    found = [n for n in names if n in df.columns]
    return pl.col(found[0]).cast(pl.String) if found else pl.lit(None, dtype=pl.String)


def normalise_news(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """A news table (CSV or Parquet) in the ``raw.news`` layout: one item per row."""
    df = df.rename({c: c.strip().lower() for c in df.columns})
    if not any(n in df.columns for n in NEWS_TITLE + NEWS_TEXT):
        raise ReplayFormatError(f"{path.name}: no title or text column (tried {NEWS_TITLE})")
    times = [n for n in NEWS_TIME if n in df.columns]
    if not times:
        raise ReplayFormatError(f"{path.name}: no time column (tried {NEWS_TIME})")
    items = df.select(
        _first_column(df, NEWS_TITLE).fill_null("").alias("title"),
        _first_column(df, NEWS_TEXT).fill_null("").alias("summary"),
        _first_column(df, NEWS_LINK).alias("link"),
        pl.col(times[0]).alias("_time"),
        _first_column(df, NEWS_PUBLISHER).fill_null(path.stem).alias("publisher"),
    )
    published = parse_series(items["_time"], strict=False)
    rows = [
        {
            "news_id": news_id(None, link, title),
            "title": strip_html(title),
            "summary": strip_html(summary),
            "link": link,
            "published": when,
            "published_missing": when is None,
            "publisher": publisher,
            "assets": ",".join(tag_assets(f"{title} {summary}")),
        }
        for title, summary, link, when, publisher in zip(
            items["title"],
            items["summary"],
            items["link"],
            published,
            items["publisher"],
            strict=True,
        )
    ]
    frame = pl.DataFrame(rows, schema={**RAW_NEWS.received_columns, "published": TS}, strict=False)
    return frame.with_columns(
        pl.lit("replay").alias("source"), pl.lit(None, dtype=TS).alias("ingested_at")
    ).select(list(RAW_NEWS.received_columns))


def data_files(root: Path, kind: str) -> list[Path]:
    folder = root / kind
    if not folder.is_dir():
        return []
    suffixes = (".xml", *DATA_SUFFIXES) if kind == "news" else DATA_SUFFIXES
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


class ReplaySource(WholeDaySource):
    """Every call returns the whole day the files hold (the watermarks are ignored: a file can
    change under the same name, so the day is re-read and replaced, never merged)."""

    name = "replay"

    def __init__(self, root: Path, window: tuple[datetime, datetime] | None = None) -> None:
        """``window``: the run's ``[start, end)``; rows outside it are counted in
        :meth:`coverage`, and rows no day can take go to its first day (see the module)."""
        super().__init__()
        self.root = Path(root)
        self.window = window
        # per kind: the state of its files (path, mtime, size) and their rows put together
        self._loaded: dict[str, tuple[tuple[tuple[Path, int, int], ...], pl.DataFrame]] = {}

    # Files are parsed once per (path, mtime, size) for the life of the source.
    @lru_cache(maxsize=64)  # noqa: B019
    def _load(self, kind: str, path: Path, stamp: tuple[int, int]) -> pl.DataFrame:
        if kind == "news" and path.suffix.lower() != ".xml":
            return normalise_news(read_table(path), path)
        if kind == "news":
            fetched = datetime.fromtimestamp(stamp[0] / 1e9, tz=UTC)
            items = parse_feed(path.read_bytes(), feed_url=path.as_uri(), fetched_at=fetched)
            return (
                items.drop("guid")
                .with_columns(
                    pl.lit("replay").alias("source"), pl.lit(None, dtype=TS).alias("ingested_at")
                )
                .select(list(RAW_NEWS.received_columns))
            )
        root = self.root / kind
        df = read_table(path)
        return (
            normalise_candles(df, path, root)
            if kind == "candles"
            else normalise_trades(df, path, root)
        )

    def load(self, kind: str) -> pl.DataFrame:
        """Every row of one kind (trades | candles | news), all days.

        Asked once per day landed (and for the coverage), so the rows of the files are put
        together once per state of the folder (which files, each file's mtime and size): a
        file that changes, appears or goes is read again (an unreadable one too, its problem
        reported once)."""
        files = [(path, path.stat()) for path in data_files(self.root, kind)]
        state = tuple((path, st.st_mtime_ns, st.st_size) for path, st in files)
        cached = self._loaded.get(kind)
        if cached is not None and cached[0] == state:
            return cached[1]
        ds = {"trades": RAW_TRADES, "candles": RAW_CANDLES, "news": RAW_NEWS}[kind]
        frames = []
        for path, st in files:
            try:
                frame = self._load(kind, path, (st.st_mtime_ns, st.st_size))
                frames.append(frame.with_columns(pl.lit(str(path)).alias(FILE_COLUMN)))
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the replay
                problem = {"file": str(path), "error": f"{type(exc).__name__}: {exc}"[:500]}
                if problem not in self.problems:
                    self.problems.append(problem)
        if not frames:
            rows = ds.empty().with_columns(pl.lit(None, dtype=pl.String).alias(FILE_COLUMN))
        else:
            rows = pl.concat(frames, how="vertical_relaxed")
        self._loaded[kind] = (state, rows)
        return rows

    def coverage(self, kind: str) -> dict[str, dict[str, int]]:
        col = "published" if kind == "news" else "ts"
        rows = self.load(kind)
        if rows.height == 0:
            return {}
        t = pl.col(col)
        future = t > pl.lit(self._future_after()).cast(TS)
        if self.window is None:
            before, after = pl.lit(False), pl.lit(False)
        else:
            before = t < pl.lit(self.window[0]).cast(TS)
            after = (t >= pl.lit(self.window[1]).cast(TS)) & ~future
        counts = rows.group_by(FILE_COLUMN).agg(
            pl.len().alias("rows"),
            before.sum().alias("before_window"),
            after.sum().alias("after_window"),
            future.sum().alias("future"),
            t.is_null().sum().alias("no_time"),
        )
        return {
            str(r[FILE_COLUMN]): {k: int(r[k]) for k in COVERAGE_KEYS}
            for r in counts.sort(FILE_COLUMN).iter_rows(named=True)
        }

    @staticmethod
    def _future_after() -> datetime:
        return datetime.now(UTC) + FUTURE_SKEW

    def _day(self, kind: str, day: date, col: str) -> pl.DataFrame:
        ds = {"trades": RAW_TRADES, "candles": RAW_CANDLES, "news": RAW_NEWS}[kind]
        rows = self.load(kind)
        if rows.height == 0:  # no file of this kind (or none readable): nothing to filter
            return ds.empty()
        start, end = day_bounds(day)
        t = pl.col(col)
        in_day = (t >= start) & (t < end)
        if day == self._anchor_day(kind, rows, col):
            # rows whose time does not parse, or that are dated beyond the allowed skew in the
            # future (and outside the window), belong to no day of the run: hand them to the
            # contracts once, with its first day, so they are quarantined with that reason
            homeless = t.is_null() | (t > pl.lit(self._future_after()).cast(TS))
            if self.window is not None:
                homeless = homeless & ~((t >= self.window[0]) & (t < self.window[1])).fill_null(
                    False
                )
            in_day = in_day | homeless
        df = rows.filter(in_day)
        arrived = df.with_columns(pl.lit(datetime.now(UTC)).cast(TS).alias("ingested_at"))
        # the stored layout, like every source (``late`` from this arrival; the contract
        # re-derives it anyway)
        return ds.conform(arrived.select(list(ds.received_columns)))

    def _anchor_day(self, kind: str, rows: pl.DataFrame, col: str) -> date | None:
        if self.window is not None:
            return self.window[0].date()
        first = rows.get_column(col).min()
        if first is not None:
            return first.date()
        files = data_files(self.root, kind)
        if not files:
            return None
        newest = max(p.stat().st_mtime for p in files)
        return datetime.fromtimestamp(newest, tz=UTC).date()

    def trades(self, day: date, since: Mapping[MarketKey, int] | None = None) -> pl.DataFrame:
        return self._day("trades", day, "ts")

    def candles(
        self, day: date, windows: Mapping[MarketKey, Sequence[Window]] | None = None
    ) -> pl.DataFrame:
        return self._day("candles", day, "ts")

    def news(self, day: date, seen: pl.DataFrame | None = None) -> pl.DataFrame:
        return self._day("news", day, "published")

    def events(self, day: date) -> pl.DataFrame:
        return RAW_MARKET_EVENTS.empty()  # only the simulator knows its events


def file_days(path: Path, root: Path) -> set[str]:
    """The UTC days (YYYY-MM-DD) a replay file has rows for (what the sensor asks to ingest)."""
    path, root = Path(path), Path(root)
    kind = path.relative_to(root).parts[0]
    src = ReplaySource(root)
    st = path.stat()
    df = src._load(kind, path, (st.st_mtime_ns, st.st_size))
    col = "published" if kind == "news" else "ts"
    days = df.select(pl.col(col).dt.date().unique().drop_nulls()).to_series().to_list()
    return {d.isoformat() for d in days}
