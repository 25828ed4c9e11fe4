"""Registered models, their serving versions and held-out metrics, from the MLflow store.

Read straight from the SQLite file opened read-only (``mode=ro``), like the app's Models page:
the MLflow client would import MLflow (~4 s) and may migrate, i.e. write, the store. The
tables read (``model_versions``, ``registered_model_aliases``, ``model_version_tags``,
``latest_metrics``) are MLflow's stable registry schema.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.tracking import CHAMPION_ALIAS

#: The alias whose version serves, per registered model: the forecaster's forecasts come from the
#: serving plan of its latest trained version (``ml.serving``), whatever its promotion; every
#: other model serves its champion.
SERVING_ALIAS = {"sentinance-forecaster": "latest_trained"}

VERSIONS_SQL = """
select v.name, v.version, v.creation_time, v.run_id, v.status,
       (select group_concat(a.alias) from registered_model_aliases a
        where a.name = v.name and a.version = v.version) as aliases,
       (select t.value from model_version_tags t
        where t.name = v.name and t.version = v.version and t.key = 'promotion_decision')
           as decision,
       (select t.value from model_version_tags t
        where t.name = v.name and t.version = v.version and t.key = 'promotion_reason')
           as reason
from model_versions v
order by v.name, v.version desc
"""
METRICS_SQL = "select key, value from latest_metrics where run_uuid = ? order by key limit ?"
MAX_METRICS = 500


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)


def versions(db: Path) -> list[dict[str, Any]]:
    """Every registered version (newest first per model) with aliases, promotion decision and
    its run's metrics; empty when nothing was ever registered."""
    if not db.is_file():
        return []
    try:
        conn = _connect(db)
        try:
            conn.row_factory = sqlite3.Row
            out = []
            for row in conn.execute(VERSIONS_SQL).fetchall():
                aliases = sorted(filter(None, (row["aliases"] or "").split(",")))
                metrics = {}
                if row["run_id"]:
                    metrics = dict(conn.execute(METRICS_SQL, (row["run_id"], MAX_METRICS)))
                created = row["creation_time"]
                out.append(
                    {
                        "name": row["name"],
                        "version": str(row["version"]),
                        "aliases": aliases,
                        "serving": SERVING_ALIAS.get(row["name"], CHAMPION_ALIAS) in aliases,
                        "status": row["status"],
                        "created_at": (
                            datetime.fromtimestamp(created / 1000, UTC) if created else None
                        ),
                        "run_id": row["run_id"],
                        "decision": row["decision"],
                        "reason": row["reason"],
                        "metrics": metrics,
                    }
                )
            return out
        finally:
            conn.close()
    except sqlite3.Error:
        return []  # no registry tables yet (a store that never registered a model)


def serving(db: Path, name: str) -> str | None:
    """The version of ``name`` that serves (:data:`SERVING_ALIAS`), or ``None``."""
    for v in versions(db):
        if v["name"] == name and v["serving"]:
            return str(v["version"])
    return None
