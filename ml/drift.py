"""Data drift between a reference and a current sample, computed with evidently 0.7.

Used on model inputs (the forecaster's features, sentiment scores) and outputs (predictions):
the drift sensor compares the latest window with the window the champion was trained on and
asks for retraining when ``dataset_drift`` is true.

evidently decides everything statistical (one test per column, chosen by its defaults: for
numeric columns the Kolmogorov-Smirnov p-value up to 1,000 rows, the normed Wasserstein
distance above; chi-square / Z-test for categorical ones). Scores are not comparable across
methods: for a p-value small means drift, for a distance large means drift, so always read
``drifted`` and ``method`` together with ``drift_score``. ``dataset_drift`` follows evidently:
true when ``share_drifted >= drift_share``.

evidently is imported lazily: ``import evidently`` takes ~8 s, so nothing pays for it unless a
drift check actually runs.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from ml.errors import InsufficientDataError

#: Fewer rows than this (per column, after dropping nulls) make any two-sample test noise.
MIN_ROWS = 30

__all__ = ["MIN_ROWS", "DriftResult", "InsufficientDataError", "data_drift"]


@dataclass
class DriftResult:
    """Outcome of :func:`data_drift`; ``per_feature`` maps column -> ``{drift_score, drifted,
    method, threshold}``."""

    n_features: int
    drifted_features: int
    share_drifted: float
    dataset_drift: bool
    per_feature: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift_share: float = 0.5
    reference_rows: int = 0
    current_rows: int = 0

    def details_json(self) -> str:
        """``per_feature`` as JSON: the ``details`` column of ``ml.drift``."""
        return json.dumps(self.per_feature, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _to_pandas(df: pd.DataFrame | pl.DataFrame, columns: Sequence[str], which: str) -> pd.DataFrame:
    if isinstance(df, pl.DataFrame):
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{which} lacks columns {missing}")
        return df.select(columns).to_pandas()
    if isinstance(df, pd.DataFrame):
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{which} lacks columns {missing}")
        return df[list(columns)].reset_index(drop=True)
    raise TypeError(f"{which} must be a pandas or polars DataFrame, got {type(df).__name__}")


def _check_rows(df: pd.DataFrame, which: str, min_rows: int) -> None:
    counts = df.notna().sum()
    short = {c: int(n) for c, n in counts.items() if n < min_rows}
    if short:
        has = min(short.values())
        detail = f"; short columns: {short}" if len(set(short.values())) > 1 else ""
        raise InsufficientDataError(
            f"the {which} sample has {has} rows, fewer than the {min_rows} a drift test needs "
            f"on each side{detail}",
            needs=f"{min_rows} rows on each side",
            has=f"{has} {which} rows",
        )


def data_drift(
    reference: pd.DataFrame | pl.DataFrame,
    current: pd.DataFrame | pl.DataFrame,
    columns: Sequence[str] | None = None,
    drift_share: float = 0.5,
    html_path: str | Path | None = None,
    min_rows: int = MIN_ROWS,
    method: str | None = None,
    threshold: float | None = None,
) -> DriftResult:
    """Per-column and dataset drift of ``current`` against ``reference``.

    Args:
        reference, current: pandas or polars frames holding ``columns``.
        columns: columns to test (default: every column of ``reference``). Numeric dtypes are
            tested as numerical, everything else as categorical.
        drift_share: dataset drift when at least this share of columns drifted.
        html_path: also write evidently's HTML report there (atomically).
        min_rows: minimum non-null rows per column on each side.
        method, threshold: override evidently's per-column test / threshold (e.g. ``"psi"``).

    Raises:
        InsufficientDataError: a column has fewer than ``min_rows`` non-null rows.
        ValueError: missing columns or nothing to test.
    """
    if columns is None:
        columns = list(reference.columns)
    columns = list(columns)
    if not columns:
        raise ValueError("no columns to test for drift")
    ref = _to_pandas(reference, columns, "reference")
    cur = _to_pandas(current, columns, "current")
    _check_rows(ref, "reference", min_rows)
    _check_rows(cur, "current", min_rows)

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(ref[c])]
    numeric = [c for c in numeric if not pd.api.types.is_bool_dtype(ref[c])]
    categorical = [c for c in columns if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = Report(
        [
            DataDriftPreset(
                columns=columns, drift_share=drift_share, method=method, threshold=threshold
            )
        ],
        include_tests=True,
    )
    snapshot = report.run(
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
        current_data=Dataset.from_pandas(cur, data_definition=definition),
    )
    per_feature = _parse_snapshot(snapshot.dict(), columns)

    if html_path is not None:
        path = Path(html_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(snapshot.get_html_str(as_iframe=False), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    n = len(per_feature)
    drifted = sum(1 for v in per_feature.values() if v["drifted"])
    share = drifted / n
    return DriftResult(
        n_features=n,
        drifted_features=drifted,
        share_drifted=share,
        dataset_drift=bool(share >= drift_share),
        per_feature=per_feature,
        drift_share=drift_share,
        reference_rows=len(ref),
        current_rows=len(cur),
    )


def _parse_snapshot(snap: dict[str, Any], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Read per-column score/method (ValueDrift metrics) and verdict (their tests).

    evidently 0.7 puts the drift score in the ``ValueDrift`` metric's value and the verdict
    only in the test bound to it (FAIL = drift detected); they are joined on the metric id.
    """
    metrics: dict[str, dict[str, Any]] = {}
    for m in snap.get("metrics", []):
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            metrics[m["id"]] = {
                "column": cfg["column"],
                "drift_score": float(m["value"]),
                "method": cfg.get("method"),
                "threshold": cfg.get("threshold"),
            }
    verdicts: dict[str, bool] = {}
    for t in snap.get("tests", []):
        mid = t.get("metric_config", {}).get("metric_id")
        if mid in metrics:
            verdicts[mid] = t.get("status") == "FAIL"
    out: dict[str, dict[str, Any]] = {}
    for mid, info in metrics.items():
        if mid not in verdicts:
            raise RuntimeError(
                f"evidently returned no drift verdict for column {info['column']!r}; "
                "the installed evidently API may have changed (expected 0.7.x)"
            )
        col = info.pop("column")
        out[col] = {**info, "drifted": verdicts[mid]}
    missing = [c for c in columns if c not in out]
    if missing:
        raise RuntimeError(f"evidently returned no drift result for columns {missing}")
    return {c: out[c] for c in columns}
