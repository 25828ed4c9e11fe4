"""Data access for the analyst app: read-only, parameterised, cached.

Every query goes through :func:`query`, which opens the *published* read-only copy of the
warehouse (``Settings.read_path``) for the duration of one statement. The app never opens
``Settings.warehouse_path`` and never writes. User-chosen values always travel as bound
parameters (``?``); the only identifiers spliced into SQL come from constants in this module.

Errors never reach the page as a stack trace: :class:`DataUnavailable` carries a friendly
message, and the pages render it with ``st.warning``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from sentinance_assets.lib.warehouse import WarehouseNotBuiltError, read_connection
from sentinance_assets.settings import Settings

log = logging.getLogger("sentinance.app")

TTL_SECONDS = 30
LIVE_TTL_SECONDS = 5

# Tables the data-health page counts; a constant whitelist (never user input).
COUNTED_TABLES: tuple[str, ...] = (
    "raw.trades",
    "raw.candles",
    "raw.news",
    "raw.market_events",
    "quarantine.trades",
    "quarantine.candles",
    "quarantine.news",
    "staging.stg_news",
    "marts.candles",
    "marts.candle_completeness",
    "marts.indicators",
    "marts.spreads",
    "marts.daily_market",
    "marts.news_sentiment_daily",
    "marts.asset_overview",
    "ml.news_sentiment",
    "ml.forecasts",
    "ml.forecast_evaluation",
    "ml.drift",
    "alerts.alerts",
)

# (clean table, quarantine table, name) pairs for the quality score.
QUALITY_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("raw.trades", "quarantine.trades", "trades"),
    ("raw.candles", "quarantine.candles", "candles"),
    ("raw.news", "quarantine.news", "news"),
)
QUARANTINE_TABLES = {name: q for _, q, name in QUALITY_PAIRS}

DISCLAIMER = (
    "Sentinance is analytics for research, not financial advice. Figures come from "
    "the configured sources (a simulated market by default) and may be delayed or wrong."
)


class DataUnavailable(RuntimeError):
    """The warehouse could not answer; the message is safe to show to an analyst."""


@st.cache_resource
def settings() -> Settings:
    return Settings.from_env()


def read_path() -> Path:
    return settings().read_path


class _Published:
    """One read-only DuckDB instance on one published file version (identified by its inode).

    ``publish`` replaces the read file atomically, so a changed inode or mtime means a new
    version: a new instance is opened and the old one is left to the garbage collector (queries
    still running on it finish on the old, consistent snapshot). Each query runs on its own
    cursor, so concurrent sessions never share a connection.
    """

    _lock = threading.Lock()
    _current: tuple[tuple[int, int, str], duckdb.DuckDBPyConnection] | None = None

    @classmethod
    def cursor(cls, path: Path) -> duckdb.DuckDBPyConnection:
        st_ = path.stat() if path.exists() else None
        if st_ is None:
            raise WarehouseNotBuiltError(f"{path} is missing")
        key = (st_.st_ino, st_.st_mtime_ns, str(path))
        with cls._lock:
            if cls._current is None or cls._current[0] != key:
                cls._current = (key, read_connection(path))
            root = cls._current[1]
            cur = root.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur


def _run(sql: str, params: tuple) -> pd.DataFrame:
    cur = _Published.cursor(read_path())
    try:
        return cur.execute(sql, list(params)).df()
    finally:
        cur.close()


def _query_uncached(sql: str, params: tuple = ()) -> pd.DataFrame:
    """Run one read-only statement; retry briefly on I/O races with a publishing writer."""
    last: Exception | None = None
    for attempt in range(3):
        try:
            return _run(sql, params)
        except WarehouseNotBuiltError as exc:
            raise DataUnavailable(
                "The warehouse has not been built yet: run `make demo` (or `sentinance demo`)."
            ) from exc
        except (duckdb.IOException, duckdb.InvalidInputException, OSError) as exc:
            # the published copy or a lake file was replaced while we opened it: try again
            last = exc
            time.sleep(0.2 * (attempt + 1))
        except duckdb.CatalogException as exc:
            raise DataUnavailable(
                "A table this page needs is not in the warehouse yet; materialize the asset "
                "graph (`make demo`) and reload."
            ) from exc
        except duckdb.Error as exc:
            last = exc
            break
    log.warning("warehouse query failed: %s: %s", type(last).__name__, last)
    raise DataUnavailable(
        "The warehouse could not answer right now (it may be being refreshed). Reload in a moment."
    ) from last


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def query(sql: str, params: tuple = ()) -> pd.DataFrame:
    """A cached, parameterised, read-only query (``?`` placeholders, values in ``params``)."""
    return _query_uncached(sql, params)


@st.cache_data(ttl=LIVE_TTL_SECONDS, show_spinner=False)
def query_live(sql: str, params: tuple = ()) -> pd.DataFrame:
    """Like :func:`query` with a short TTL, for the live alert feed."""
    return _query_uncached(sql, params)


# ---------------------------------------------------------------- warehouse state


def warehouse_state() -> tuple[str, str]:
    """``(state, detail)`` where state is ``missing``, ``empty``, ``unreadable`` or ``ready``."""
    path = read_path()
    if not path.exists():
        return "missing", f"No published warehouse at {path}."
    try:
        n = _count_candles()
    except DataUnavailable as exc:
        return "unreadable", str(exc)
    if n == 0:
        return "empty", f"The warehouse at {path} holds no candles yet."
    return "ready", str(path)


@st.cache_data(ttl=10, show_spinner=False)
def _count_candles() -> int:
    df = _query_uncached("select count(*) as n from marts.candles")
    return int(df["n"].iloc[0])


# ---------------------------------------------------------------- small helpers


def bases() -> list[str]:
    df = query("select distinct base from marts.candles order by base")
    return df["base"].tolist()


def markets_for(base: str) -> pd.DataFrame:
    return query(
        "select distinct exchange, symbol from marts.candles where base = ? "
        "order by exchange, symbol",
        (base,),
    )


def distinct_values(table_column: str) -> list[str]:
    """Distinct non-null values of a whitelisted ``schema.table.column`` for filter widgets."""
    allowed = {
        "alerts.alerts.type",
        "alerts.alerts.symbol",
        "alerts.alerts.exchange",
        "alerts.alerts.severity",
        "ml.news_sentiment.model",
    }
    if table_column not in allowed:
        raise ValueError(f"not a filterable column: {table_column}")
    schema, table, column = table_column.split(".")
    df = query(
        f"select distinct {column} as v from {schema}.{table} where {column} is not null order by 1"
    )
    return df["v"].astype(str).tolist()


def news_confidence_sql(alias: str = "s") -> str:
    """The select expression for the calibrated confidence of ``ml.news_sentiment`` rows
    (``alias`` = the query's alias of that table, a constant of the calling page).

    A read side whose lake predates the ``confidence`` column (old score files and the old
    empty placeholder, until the news scorer or the warehouse step rewrites them) has no such
    column: the page then gets a typed NULL instead of an error.
    """
    if not alias.isidentifier():
        raise ValueError(f"not an SQL alias: {alias!r}")
    cols = query("select * from ml.news_sentiment limit 0").columns
    if "confidence" in cols:
        return f"{alias}.confidence"
    return "null::double as confidence"


def table_counts() -> pd.DataFrame:
    rows = []
    for name in COUNTED_TABLES:
        try:
            n = int(query(f"select count(*) as n from {name}")["n"].iloc[0])
            rows.append({"table": name, "rows": n, "status": "ok" if n else "empty"})
        except DataUnavailable:
            rows.append({"table": name, "rows": None, "status": "not built"})
    return pd.DataFrame(rows)


def quality_scores() -> pd.DataFrame:
    """Per dataset: clean rows, quarantined rows, and the share that passed the checks."""
    rows = []
    for clean, quarantined, name in QUALITY_PAIRS:
        try:
            df = query(
                f"select (select count(*) from {clean}) as clean, "
                f"(select count(*) from {quarantined}) as quarantined"
            )
        except DataUnavailable:
            continue
        c, q = int(df["clean"].iloc[0]), int(df["quarantined"].iloc[0])
        score = 100.0 * c / (c + q) if c + q else None
        rows.append({"dataset": name, "clean": c, "quarantined": q, "quality_pct": score})
    return pd.DataFrame(rows)


# Completeness of the candles per market and timeframe (marts.candle_completeness), finest
# timeframe first.
COMPLETENESS_SQL = """
select exchange, symbol, timeframe, first_bar_ts, last_bar_ts, expected_bars, present_bars,
       missing_bars, gap_count, longest_gap_bars, trade_bars, filled_bars, maintenance_bars,
       implausible_bars, duplicate_bars, incomplete_bars, usable_bars, indicator_gap_rows,
       completeness_pct
from marts.candle_completeness
order by exchange, symbol,
         case timeframe when '1m' then 1 when '5m' then 2 when '15m' then 3 when '1h' then 4
                        when '4h' then 5 when '1d' then 6 else 7 end,
         timeframe
"""


def candle_completeness() -> pd.DataFrame | None:
    """Per (exchange, symbol, timeframe): expected, present, missing, filled and flagged bars;
    ``None`` when the warehouse predates the completeness mart (or is not built)."""
    try:
        return query(COMPLETENESS_SQL)
    except DataUnavailable:
        return None


def overall_quality() -> float | None:
    df = quality_scores()
    if df.empty:
        return None
    total = df["clean"].sum() + df["quarantined"].sum()
    return float(100.0 * df["clean"].sum() / total) if total else None


def _asset_key_path(raw: str) -> str:
    try:
        parts = json.loads(raw)
    except (TypeError, ValueError):
        return str(raw)
    return "/".join(map(str, parts)) if isinstance(parts, list) else str(parts)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def last_materializations(limit: int = 50) -> pd.DataFrame:
    """Latest materialization per asset from this home's Dagster instance, opened read-only.

    Reads the SQLite event-log index with ``mode=ro``; an instance on another storage (or none
    yet) yields an empty frame.
    """
    candidates = [
        settings().dagster_home / "history" / "runs" / "index.db",
        settings().dagster_home / "storage" / "index.db",
    ]
    for db in candidates:
        if not db.exists():
            continue
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            try:
                df = pd.read_sql_query(
                    "select asset_key, last_materialization_timestamp as ts "
                    "from asset_keys where last_materialization_timestamp is not null "
                    "order by last_materialization_timestamp desc limit ?",
                    conn,
                    params=(limit,),
                )
            finally:
                conn.close()
        except (sqlite3.Error, pd.errors.DatabaseError):
            continue
        if df.empty:
            return df
        df["asset"] = df["asset_key"].map(_asset_key_path)
        df["materialized_at"] = pd.to_datetime(df["ts"], utc=True, errors="coerce")
        return df[["asset", "materialized_at"]]
    return pd.DataFrame(columns=["asset", "materialized_at"])


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def model_registry() -> pd.DataFrame:
    """Registered model versions with aliases from the MLflow SQLite store, opened read-only.

    Never goes through the MLflow client (which migrates and writes its store).
    """
    db = settings().mlflow_db
    if not db.exists():
        return pd.DataFrame()
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return pd.read_sql_query(
                "select v.name, v.version, v.creation_time, v.last_updated_time, v.run_id, "
                "v.current_stage, group_concat(a.alias) as aliases "
                "from model_versions v left join registered_model_aliases a "
                "on a.name = v.name and a.version = v.version "
                "group by v.name, v.version, v.creation_time, v.last_updated_time, v.run_id, "
                "v.current_stage order by v.name, v.version desc",
                conn,
            ).assign(
                created_at=lambda d: pd.to_datetime(d["creation_time"], unit="ms", utc=True),
            )
        finally:
            conn.close()
    except (sqlite3.Error, pd.errors.DatabaseError):
        return pd.DataFrame()
