"""ml.drift: evidently flags a shifted distribution, not an identical one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ml.drift import InsufficientDataError, data_drift


def _sample(n: int, shift: float = 0.0, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "log_ret": rng.normal(shift, 1.0, n),
            "rv_24": rng.gamma(2.0, 1.0 + shift, n),
            "volume_z_24": rng.normal(0.0, 1.0, n),
        }
    )


def test_shifted_distribution_drifts_and_report_is_saved(tmp_path) -> None:
    ref, cur = _sample(400, seed=1), _sample(400, shift=1.5, seed=2)
    cols = ["log_ret", "rv_24", "volume_z_24"]
    html = tmp_path / "reports" / "drift.html"
    res = data_drift(ref, cur, cols, drift_share=0.5, html_path=html)
    assert res.per_feature["log_ret"]["drifted"] and res.per_feature["rv_24"]["drifted"]
    assert not res.per_feature["volume_z_24"]["drifted"]
    assert (res.n_features, res.drifted_features) == (3, 2)
    assert res.share_drifted == pytest.approx(2 / 3)
    assert res.dataset_drift
    assert res.per_feature["log_ret"]["method"].startswith("K-S")  # <= 1000 rows: K-S p-value
    assert res.per_feature["log_ret"]["drift_score"] < 0.05
    assert (res.reference_rows, res.current_rows) == (400, 400)
    assert html.exists() and html.stat().st_size > 10_000
    assert set(json.loads(res.details_json())) == set(cols)


def test_same_distribution_does_not_drift_and_pandas_works() -> None:
    ref = _sample(400, seed=1).to_pandas()
    res = data_drift(ref, ref.copy(), drift_share=0.5)
    assert res.drifted_features == 0 and not res.dataset_drift
    other = data_drift(ref, _sample(400, seed=3).to_pandas())
    assert not other.dataset_drift
    assert isinstance(ref, pd.DataFrame)


def test_too_few_rows_and_missing_columns_are_clear_errors() -> None:
    with pytest.raises(
        InsufficientDataError, match="current sample has 10 rows, fewer than the 30"
    ):
        data_drift(_sample(400), _sample(10), ["log_ret"])
    with pytest.raises(ValueError, match="lacks columns"):
        data_drift(_sample(400), _sample(400), ["nope"])
