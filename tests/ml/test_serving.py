"""ml.serving: the hold-out winner serves each target and horizon, with its intervals."""

from __future__ import annotations

import polars as pl

from ml.evaluation import EVALUATION_SCHEMA
from ml.serving import serve, serving_plan
from tests.ml.test_features import make_candles


def _ev(rows) -> pl.DataFrame:
    return pl.DataFrame(
        [("ALL", h, m, k, v, 100) for h, m, k, v in rows], schema=EVALUATION_SCHEMA, orient="row"
    )


Q = {
    ("log_return", "1h", m): {"80": [-1.2, 1.3], "95": [-2.0, 2.1]}
    for m in ("zero_return", "persistence", "lstm")
} | {
    ("realized_vol", "1h", m): {"80": [-0.5, 0.4], "95": [-0.9, 0.8]}
    for m in ("ewma_vol", "har", "lstm")
}


def test_lowest_loss_serves_ties_go_to_the_simpler_model() -> None:
    ev = _ev(
        [
            ("1h", "zero_return", "rmse", 1.0),
            ("1h", "persistence", "rmse", 1.3),
            ("1h", "lstm", "rmse", 1.0),  # a tie with zero return: the LSTM does not serve
            ("1h", "ewma_vol", "vol_qlike", -5.0),
            ("1h", "har", "vol_qlike", -5.2),
            ("1h", "lstm", "vol_qlike", -5.1),
            ("1h", "har", "vol_dm_pvalue:lstm", 0.04),
            ("1h", "har", "vol_coverage_80", 0.78),
        ]
    )
    plan = serving_plan(ev, Q, {"1h": 1})
    ret, vol = plan["log_return:1h"], plan["realized_vol:1h"]
    assert ret["model"] == "zero_return" and ret["runner_up"] == "lstm"
    assert vol["model"] == "har" and vol["runner_up"] == "lstm" and vol["dm_pvalue"] == 0.04
    assert vol["coverage_80"] == 0.78 and vol["coverage_95"] is None
    assert "DM p=0.04" in vol["reason"] and vol["quantiles"]["95"] == [-0.9, 0.8]
    ev2 = ev.with_columns(
        pl.when((pl.col("model") == "lstm") & (pl.col("metric") == "rmse"))
        .then(0.9)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    assert serving_plan(ev2, Q, {"1h": 1})["log_return:1h"]["model"] == "lstm"


def test_serve_writes_every_symbol_with_intervals_around_the_prediction() -> None:
    candles = make_candles(200)
    ev = _ev(
        [
            ("1h", "zero_return", "rmse", 1.0),
            ("1h", "persistence", "rmse", 1.3),
            ("1h", "ewma_vol", "vol_qlike", -5.0),
            ("1h", "har", "vol_qlike", -5.2),
        ]
    )
    plan = serving_plan(ev, Q, {"1h": 1})
    out = serve(plan, candles, None, "3")
    assert out.height == 4  # two symbols x two targets
    assert set(out["model"]) == {"zero_return", "har"} and set(out["model_version"]) == {"3"}
    assert (out["origin_ts"] == candles["ts"].max()).all()
    ret = out.filter(pl.col("target") == "log_return")
    assert (ret["prediction"] == 0).all() and (ret["lower_95"] < ret["lower_80"]).all()
    assert (ret["lower_80"] < 0).all() and (ret["upper_80"] > 0).all()
    vol = out.filter(pl.col("target") == "realized_vol")
    assert (vol["prediction"] > 0).all() and (vol["lower_95"] > 0).all()
    assert (vol["lower_80"] < vol["prediction"]).all() and (
        vol["prediction"] < vol["upper_80"]
    ).all()
    # the LSTM serves nothing when it is not loaded; the other rows still come
    plan["log_return:1h"]["model"] = "lstm"
    assert set(serve(plan, candles, None, "3")["target"]) == {"realized_vol"}
