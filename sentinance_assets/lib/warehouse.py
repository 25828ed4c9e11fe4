"""The DuckDB warehouse: a write side owned by dbt and a published read side for everyone else.

* ``warehouse.duckdb`` is written only inside the serialized warehouse step (Dagster pool
  ``duckdb``): lake views are registered, dbt builds staging/intermediate/marts, then the file is
  published.
* ``warehouse.read.duckdb`` is the published copy. It is replaced atomically (copy, then
  ``os.replace``), so readers — the Streamlit app, notebooks, ``sentinance query``, ML assets —
  open it read-only and never meet a lock held by a writer.
* Lake datasets (raw, quarantine, ml, alerts) are views over Parquet globs, so new files written
  by ML assets or the watch loop are visible to readers without republishing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from sentinance_assets.lib.lake import dataset_dir, ensure_placeholders
from sentinance_assets.lib.schemas import ALL_DATASETS

SCHEMAS = ("raw", "quarantine", "staging", "intermediate", "marts", "ml", "alerts")


class WarehouseNotBuiltError(RuntimeError):
    """The read side does not exist yet: nothing has been materialized in this home."""


def _utc(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def sql_str(value: str) -> str:
    """A DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


def register_lake_views(conn: duckdb.DuckDBPyConnection, lake_dir: Path) -> None:
    """Create the zone schemas and one view per lake dataset (idempotent)."""
    ensure_placeholders(lake_dir)
    for schema in SCHEMAS:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for ds in ALL_DATASETS:
        glob = str(dataset_dir(lake_dir, ds).resolve() / "**" / "*.parquet")
        conn.execute(
            f"CREATE OR REPLACE VIEW {ds.qualified} AS "
            f"SELECT * FROM read_parquet({sql_str(glob)}, union_by_name = true, "
            "hive_partitioning = false)"
        )
    # The batch asset and the watch loop may both report an event: same alert_id. The feed
    # keeps its first detection (usually the watch loop's).
    conn.execute(
        "CREATE OR REPLACE VIEW alerts.alert_feed AS SELECT DISTINCT ON (alert_id) * "
        "FROM alerts.alerts ORDER BY alert_id, detected_at, event_time"
    )


@contextmanager
def write_connection(warehouse_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The single writer's connection; callers must hold the ``duckdb`` pool."""
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    conn = _utc(duckdb.connect(str(warehouse_path)))
    try:
        yield conn
        conn.execute("CHECKPOINT")
    finally:
        conn.close()


def publish(warehouse_path: Path, read_path: Path) -> Path:
    """Atomically replace the read side with a copy of the (closed, checkpointed) write side."""
    if not warehouse_path.exists():
        raise WarehouseNotBuiltError(f"no warehouse at {warehouse_path}")
    tmp = read_path.with_name(f".{read_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(warehouse_path, tmp)
        os.replace(tmp, read_path)
    finally:
        tmp.unlink(missing_ok=True)
    return read_path


def read_connection(read_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse."""
    if not read_path.exists():
        raise WarehouseNotBuiltError(
            f"the warehouse has not been built yet ({read_path} is missing): "
            "run `make demo` or `sentinance demo` first"
        )
    return _utc(duckdb.connect(str(read_path), read_only=True))


@contextmanager
def reading(read_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = read_connection(read_path)
    try:
        yield conn
    finally:
        conn.close()


def write_dbt_profile(profiles_dir: Path, warehouse_path: Path) -> Path:
    """Write the dbt profile that points dbt at this home's warehouse file.

    The profile in ``dbt_project/profiles.yml`` serves ``dbt parse`` and hand use; runs use this
    generated one so the warehouse path is absolute and comes from the one settings object.
    """
    profiles_dir.mkdir(parents=True, exist_ok=True)
    text = (
        "sentinance:\n"
        "  target: dev\n"
        "  outputs:\n"
        "    dev:\n"
        "      type: duckdb\n"
        f"      path: {sql_str(str(warehouse_path.resolve()))}\n"
        "      schema: main\n"
        "      threads: 1\n"
        "      settings:\n"
        "        TimeZone: UTC\n"
    )
    path = profiles_dir / "profiles.yml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
