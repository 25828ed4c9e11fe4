"""The code location loads, with the whole graph and unbroken lineage."""

import dagster as dg

from sentinance_assets.definitions import defs


def test_definitions_load_with_every_layer():
    d = defs()
    keys = {k.to_user_string() for k in d.resolve_all_asset_keys()}
    for expected in (
        "raw/trades",
        "raw/candles",
        "raw/news",
        "raw/market_events",
        "staging/stg_trades",
        "marts/candles",
        "marts/indicators",
        "ml/news_sentiment",
        "alerts/alerts",
    ):
        assert expected in keys, expected
    jobs = {j.name for j in d.resolve_all_job_defs()}
    assert {"ingest_job", "analytics_job"} <= jobs


def test_dbt_sources_are_the_python_assets():
    graph = defs().resolve_asset_graph()
    stg = graph.get(dg.AssetKey(["staging", "stg_trades"]))
    assert dg.AssetKey(["raw", "trades"]) in stg.parent_keys
    stg = graph.get(dg.AssetKey(["staging", "stg_news_sentiment"]))
    assert dg.AssetKey(["ml", "news_sentiment"]) in stg.parent_keys
