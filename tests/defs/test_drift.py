"""Both drift assets judge their checks by ``Settings.drift_share`` (SENTINANCE_DRIFT_SHARE).

A drifted share of 0.25 passes under the default limit (0.5) and fails under 0.2, for the
sentiment drift (measured for real: one of its four columns drifts) and for the forecaster's
input and residual drift (measurements stubbed: a forecaster with a chosen drift share cannot
be trained in a test).
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import dagster as dg
import pytest

from ml import forecast_lifecycle
from ml.drift import DriftResult
from ml.errors import InsufficientDataError
from sentinance_assets.defs.ml.forecasting import forecast_drift
from sentinance_assets.defs.ml.sentiment import news_sentiment, sentiment_drift
from sentinance_assets.defs.resources import mlflow_store
from sentinance_assets.defs.skips import skips_in
from sentinance_assets.lib import forecast_io, lake
from sentinance_assets.lib.schemas import DRIFT
from sentinance_assets.settings import Settings
from tests.defs.test_sentiment import T0, TEMPLATES, write_news

# The templates' counterparts: the same number of words and the same sentiment words, longer
# neutral words. Only the character count drifts: 1 of the 4 sentiment drift columns.
LONGER = [
    ("Corporation publishes quarterly statements", "Good profit."),
    ("Cryptocurrency registered on a different marketplace", None),
    (
        "Validators liquidate portions of their inventories",
        "Prices fall slightly after a weak week.",
    ),
    ("Administration distributes recommendations", "Analysts call it a great step for the market."),
]


def _checks(asset: dg.AssetsDefinition, settings: Settings) -> dict[str, bool]:
    resources = {"settings": settings, "mlflow_store": mlflow_store(settings)}
    res = dg.materialize([asset], resources=resources, raise_on_error=True)
    return {c.check_name: c.passed for c in res.get_asset_check_evaluations()}


def test_sentiment_drift_check_follows_the_drift_share(tiny_settings: Settings) -> None:
    ref = [(*TEMPLATES[i % 4], T0 + timedelta(minutes=20 * i)) for i in range(60)]
    later = T0 + timedelta(days=3)
    cur = [(*LONGER[i % 4], later + timedelta(minutes=10 * i)) for i in range(40)]
    write_news(tiny_settings, ref + cur)
    dg.materialize(
        [news_sentiment],
        resources={"settings": tiny_settings, "mlflow_store": mlflow_store(tiny_settings)},
    )
    assert tiny_settings.drift_share == 0.5
    enough = {"enough_input": True}
    assert _checks(sentiment_drift, tiny_settings) == {
        "sentiment_drift_below_limit": True,
        **enough,
    }
    strict = tiny_settings.replace(drift_share=0.2)
    assert _checks(sentiment_drift, strict) == {"sentiment_drift_below_limit": False, **enough}
    rows = lake.read_dataset(tiny_settings.lake_dir, DRIFT)
    assert rows["share_drifted"].to_list() == [0.25, 0.25]
    # the row's dataset_drift flag is judged by the same limit as the check
    assert sorted(rows["dataset_drift"].to_list()) == [False, True]


@pytest.fixture
def stub_forecaster(monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitored forecaster whose inputs and residuals both drift by a share of 0.25."""
    model = SimpleNamespace(info={"registered_version": "3"})

    def drifted(model, candles, subject: str, drift_share: float) -> DriftResult:
        return DriftResult(
            n_features=4,
            drifted_features=1,
            share_drifted=0.25,
            dataset_drift=0.25 >= drift_share,
            drift_share=drift_share,
            reference_rows=50,
            current_rows=40,
        )

    monkeypatch.setattr(forecast_lifecycle, "monitored_model", lambda store: (model, "champion"))
    monkeypatch.setattr(forecast_io, "load_hourly_candles", lambda path, exchange: None)
    monkeypatch.setattr(forecast_lifecycle, "model_drift", drifted)


@pytest.mark.usefixtures("stub_forecaster")
def test_forecast_drift_checks_follow_the_drift_share(tiny_settings: Settings) -> None:
    both = ("input_drift_below_limit", "residual_drift_below_limit")
    enough = {"enough_input": True}
    assert _checks(forecast_drift, tiny_settings) == {**dict.fromkeys(both, True), **enough}
    strict = tiny_settings.replace(drift_share=0.2)
    assert _checks(forecast_drift, strict) == {**dict.fromkeys(both, False), **enough}
    rows = lake.read_dataset(tiny_settings.lake_dir, DRIFT)
    assert rows.height == 4  # a row per subject and run
    assert set(rows["model"]) == {
        "sentinance-forecaster:3:inputs",
        "sentinance-forecaster:3:residuals",
    }


def test_a_subject_with_too_little_data_is_skipped_and_the_other_measured(
    tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One shape for thin input: the residuals cannot be measured yet, the inputs can. The
    inputs' check is evaluated, the residuals' check and ``enough_input`` warn with the reason,
    and the materialization says what was skipped."""
    model = SimpleNamespace(info={"registered_version": "3"})
    monkeypatch.setattr(forecast_lifecycle, "monitored_model", lambda store: (model, "champion"))
    monkeypatch.setattr(forecast_io, "load_hourly_candles", lambda path, exchange: None)

    def measured(model, candles, subject: str, drift_share: float) -> DriftResult:
        if subject == "residuals":
            raise InsufficientDataError("the current sample has 4 rows, fewer than 30")
        return DriftResult(4, 0, 0.0, False, drift_share=drift_share)

    monkeypatch.setattr(forecast_lifecycle, "model_drift", measured)
    resources = {"settings": tiny_settings, "mlflow_store": mlflow_store(tiny_settings)}
    res = dg.materialize([forecast_drift], resources=resources)
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert checks["input_drift_below_limit"].passed
    thin = "the current sample has 4 rows, fewer than 30"
    reason = f"residuals: {thin}"
    for name, why in (("residual_drift_below_limit", thin), ("enough_input", reason)):
        assert not checks[name].passed and checks[name].severity == dg.AssetCheckSeverity.WARN
        assert checks[name].metadata["skipped"].value == why
    assert skips_in(res.all_events) == [("ml/forecast_drift", reason)]
    meta = res.asset_materializations_for_node("ml__forecast_drift")[0].metadata
    assert meta["share_drifted"].value == 0.0 and "residual_share_drifted" not in meta
    assert lake.read_dataset(tiny_settings.lake_dir, DRIFT)["model"].to_list() == [
        "sentinance-forecaster:3:inputs"
    ]
