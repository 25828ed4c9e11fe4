"""Quality as Dagster asset checks: reconciliation, quality score, and dbt tests as checks."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from sentinance_assets.defs.ingest.checks import QUALITY_FAIL, QUALITY_WARN, ingest_result
from sentinance_assets.defs.ingest.market import raw_candles, raw_trades
from sentinance_assets.defs.ingest.news import raw_news
from sentinance_assets.defs.transform.assets import sentinance_dbt
from sentinance_assets.lib.contracts import Checked, empty_quarantine

KEY = dg.AssetKey(["raw", "trades"])


def checked(received: int, clean: int, quarantined: int, duplicates: int = 0) -> Checked:
    q = pl.DataFrame(
        {"check": ["price_positive"] * quarantined}, schema={"check": pl.String}
    ).with_columns(
        pl.lit(None, dtype=t).alias(c) for c, t in empty_quarantine().schema.items() if c != "check"
    )
    return Checked(pl.DataFrame({"x": range(clean)}), q, received, duplicates, late=3)


def results(c: Checked) -> tuple[dg.MaterializeResult, dict[str, dg.AssetCheckResult]]:
    r = ingest_result(KEY, c, source="test")
    return r, {cr.check_name: cr for cr in r.check_results or []}


@pytest.mark.parametrize(
    ("clean", "passed", "severity"),
    [
        (1000, True, None),
        (990, True, None),  # exactly the warn threshold passes
        (989, False, dg.AssetCheckSeverity.WARN),
        (950, False, dg.AssetCheckSeverity.WARN),  # exactly the fail threshold only warns
        (949, False, dg.AssetCheckSeverity.ERROR),
        (0, False, dg.AssetCheckSeverity.ERROR),
    ],
)
def test_quality_score_thresholds(clean: int, passed: bool, severity) -> None:
    assert (QUALITY_WARN, QUALITY_FAIL) == (0.99, 0.95)
    r, checks = results(checked(1000, clean, 1000 - clean))
    q = checks["quality_score"]
    assert q.passed is passed
    if not passed:
        assert q.severity == severity
    assert q.metadata["quality"].value == pytest.approx(clean / 1000)
    assert checks["counts_reconcile"].passed
    assert r.metadata["received"] == 1000 and r.metadata["late"] == 3
    assert r.metadata["quarantine_by_check"] == (
        {"price_positive": 1000 - clean} if clean < 1000 else {}
    )


def test_counts_that_do_not_add_up_fail_the_reconcile_check() -> None:
    _, checks = results(checked(received=10, clean=5, quarantined=3, duplicates=1))  # 1 lost
    rc = checks["counts_reconcile"]
    assert not rc.passed and rc.severity == dg.AssetCheckSeverity.ERROR
    assert {k: v.value for k, v in rc.metadata.items()} == {
        "received": 10,
        "clean": 5,
        "quarantined": 3,
        "exact_duplicates": 1,
        "rounded_duplicates": 0,
        "late": 3,
    }
    _, ok = results(checked(received=10, clean=6, quarantined=3, duplicates=1))
    assert ok["counts_reconcile"].passed


def test_empty_batch_is_perfect_quality() -> None:
    _, checks = results(checked(0, 0, 0))
    assert checks["quality_score"].passed and checks["counts_reconcile"].passed


@pytest.fixture(scope="module")
def check_keys() -> dict[str, set[str]]:
    """Check keys straight from the asset definitions (what the UI lists under each asset)."""
    out: dict[str, set[str]] = {}
    for assets_def in (raw_trades, raw_candles, raw_news, sentinance_dbt):
        for k in assets_def.check_keys:
            out.setdefault(k.asset_key.to_user_string(), set()).add(k.name)
    return out


@pytest.mark.parametrize("asset", ["raw/trades", "raw/candles", "raw/news"])
def test_ingest_assets_declare_reconcile_and_quality_checks(check_keys, asset: str) -> None:
    assert {"counts_reconcile", "quality_score"} <= check_keys[asset]


def test_dbt_tests_are_dagster_asset_checks(check_keys) -> None:
    """unique, not_null, accepted_values, relationships and OHLC consistency, each as an
    asset check on the dbt model it tests (dagster-dbt translator, enable_asset_checks), and
    the raw trades' value tests on the Python asset that writes them (source tests)."""

    def has(asset: str, prefix: str) -> bool:
        return any(name.startswith(prefix) for name in check_keys.get(asset, ()))

    assert has("raw/trades", "source_not_null_raw_trades_price")
    assert has("raw/trades", "source_accepted_values_raw_trades_side")
    assert has("raw/trades", "source_accepted_range_raw_trades_amount")
    assert has("staging/stg_trades", "unique_combination_of_columns_stg_trades_exchange")
    assert has("staging/stg_news", "unique_stg_news_news_id")
    assert has("staging/stg_news_sentiment", "relationships_stg_news_sentiment_news_id")
    assert has("staging/stg_candles", "ohlc_consistent_")
    assert has("marts/candles", "ohlc_consistent_")
    dbt_checks = sum(
        len([c for c in v if c not in {"counts_reconcile", "quality_score"}])
        for v in check_keys.values()
    )
    assert dbt_checks >= 40


def test_dbt_source_checks_run_with_analytics_not_with_ingest() -> None:
    """The dbt step runs raw.trades' source tests, so the analytics job selects those checks
    (else Dagster warns that unselected check results were yielded), and the ingest job does
    not (else every ingest run would run the dbt step too); the ingest assets' own checks stay
    with ingest."""
    from sentinance_assets.definitions import defs
    from sentinance_assets.defs.jobs import ANALYTICS, INGEST

    loaded = defs()
    graph = loaded.resolve_asset_graph()
    raw_trades = dg.AssetKey(["raw", "trades"])
    source_check = dg.AssetCheckKey(raw_trades, "source_not_null_raw_trades_price")
    analytics, ingest = ANALYTICS.resolve_checks(graph), INGEST.resolve_checks(graph)
    assert source_check in analytics and source_check not in ingest
    assert dg.AssetCheckKey(raw_trades, "counts_reconcile") in ingest - analytics
    ingest_steps = {node.name for node in loaded.resolve_job_def("ingest_job").graph.nodes}
    assert "sentinance_dbt" not in ingest_steps
