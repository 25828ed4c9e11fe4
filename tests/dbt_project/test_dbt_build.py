"""`dbt build` over a synthetic lake: the build and its dbt tests pass, and the marts agree with
independent polars computations of the same raw data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sentinance_assets.lib.indicators import OUTPUT_COLUMNS, compute_indicators
from tests.dbt_project.dbt_synthetic import HND_WINDOW, DbtRun, run_dbt_build

CANDLE_COLUMNS = [
    "exchange",
    "symbol",
    "timeframe",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "vwap",
    "trade_count",
]
HIGHER = {"5m": "5m", "15m": "15m", "1h": "1h", "4h": "4h", "1d": "1d"}
USD_QUOTES = ("USD", "USDT", "USDC")
TOL = 1e-9


def reference_1m(trades: pl.DataFrame) -> pl.DataFrame:
    """1-minute bars resampled from trades in polars: first/last trade by (ts, trade_id)."""
    return (
        trades.sort("exchange", "symbol", "ts", "trade_id")
        .group_by("exchange", "symbol", pl.col("ts").dt.truncate("1m"), maintain_order=True)
        .agg(
            open=pl.col("price").first(),
            high=pl.col("price").max(),
            low=pl.col("price").min(),
            close=pl.col("price").last(),
            volume=pl.col("amount").sum(),
            quote_volume=(pl.col("price") * pl.col("amount")).sum(),
            trade_count=pl.len().cast(pl.Int64),
        )
        .with_columns(vwap=pl.col("quote_volume") / pl.col("volume"))
    )


def assert_close(left: pl.DataFrame, right: pl.DataFrame, on: list[str], cols: list[str]):
    assert left.height == right.height, (left.height, right.height)
    joined = left.join(right, on=on, how="full", suffix="_ref", coalesce=True)
    assert joined.height == left.height, "key sets differ"
    for c in cols:
        a, b = joined[c], joined[f"{c}_ref"]
        assert (a.is_null() == b.is_null()).all(), f"{c}: NULL pattern differs"
        if a.dtype.is_float():
            rel = ((a - b).abs() / b.abs().clip(lower_bound=1.0)).max()
            assert rel is None or rel <= TOL, f"{c}: max relative diff {rel}"
        else:
            assert (a == b).fill_null(True).all(), f"{c} differs"


def test_build_succeeds_including_dbt_tests(built: DbtRun):
    results = built.results()
    statuses = {r["unique_id"]: r["status"] for r in results}
    tests = [u for u in statuses if u.startswith("test.")]
    assert len(tests) >= 80
    bad = {u: s for u, s in statuses.items() if s not in ("success", "pass")}
    # the only expected warning: kraken BTC/EUR has no USD rate in the seed
    assert bad == {"test.sentinance.trade_quotes_have_usd_rate": "warn"}, bad
    assert any(u == "model.sentinance.indicators" for u in statuses)
    print(f"dbt build took {built.seconds:.1f} s")


def test_staging_deduplicates_trades_keeping_first_ingested(built: DbtRun):
    trades = built.data["trades"]
    stg = built.query("select exchange, symbol, trade_id, price, source from staging.stg_trades")
    assert stg.height == trades.height
    assert stg["source"].unique().to_list() == ["test"]
    merged = stg.join(trades, on=["exchange", "symbol", "trade_id"], suffix="_raw")
    assert (merged["price"] == merged["price_raw"]).all()


def test_candles_1m_equal_polars_resampling_of_trades(built: DbtRun):
    trades = built.data["trades"]
    ref = reference_1m(trades)
    got = built.query(
        "select * from marts.candles where timeframe = '1m' and source = 'trades'"
    ).drop("timeframe")
    assert_close(
        got.select(ref.columns),
        ref,
        on=["exchange", "symbol", "ts"],
        cols=["open", "high", "low", "close", "volume", "quote_volume", "vwap", "trade_count"],
    )


def test_tied_timestamps_resolve_by_trade_id(built: DbtRun):
    trades = built.data["trades"].with_columns(minute=pl.col("ts").dt.truncate("1m"))
    # minutes whose first instant holds several trades at different prices: the tie-break
    # decides the open, which must be the price of the smallest trade_id at that instant
    first = trades.filter(pl.col("ts") == pl.col("ts").min().over("exchange", "symbol", "minute"))
    tied = (
        first.group_by("exchange", "symbol", "minute")
        .agg(
            n_prices=pl.col("price").n_unique(),
            expected_open=pl.col("price").sort_by("trade_id").first(),
        )
        .filter(pl.col("n_prices") > 1)
    )
    assert tied.height > 0
    got = built.query(
        "select exchange, symbol, ts as minute, open from marts.candles where timeframe = '1m'"
    )
    joined = tied.join(got, on=["exchange", "symbol", "minute"])
    assert joined.height == tied.height
    assert (joined["open"] == joined["expected_open"]).all()


def test_gap_minutes_have_no_bar(built: DbtRun):
    got = built.query(
        "select ts from marts.candles where timeframe = '1m' "
        "and exchange = 'binance' and symbol = 'BTC/USDT' "
        "and ts >= timestamptz '2026-11-14 22:30:00+00' "
        "and ts < timestamptz '2026-11-14 22:33:00+00'"
    )
    assert got.height == 0


def test_candle_only_market_comes_from_exchange_candles(built: DbtRun):
    src = built.data["candles"]
    kraken = src.filter((pl.col("exchange") == "kraken") & (pl.col("timeframe") == "1m"))
    got = built.query(
        "select * from marts.candles where exchange = 'kraken' and symbol = 'SOL/USD' "
        "and timeframe = '1m' order by ts"
    )
    assert got.height == kraken.height
    assert got["trade_count"].null_count() == got.height
    for c in ("open", "high", "low", "close", "volume"):
        assert got[c].to_list() == kraken.sort("ts")[c].to_list(), c  # later ingest won
    typical = (got["high"] + got["low"] + got["close"]) / 3
    assert ((got["vwap"] - typical).abs() <= TOL * typical).all()
    assert ((got["quote_volume"] - got["volume"] * got["vwap"]).abs() <= 1e-6).all()
    # binance BTC/USDT has trades, so its (bogus) exchange candles are ignored
    first = built.query(
        "select close from marts.candles where exchange = 'binance' and symbol = 'BTC/USDT' "
        "and timeframe = '1m' order by ts limit 5"
    )
    assert (first["close"] > 1000).all()


def test_higher_timeframes_consistent_with_1m(built: DbtRun):
    candles = built.query("select * from marts.candles")
    m1 = candles.filter(pl.col("timeframe") == "1m").sort("exchange", "symbol", "ts")
    for tf, every in HIGHER.items():
        ref = (
            m1.group_by("exchange", "symbol", pl.col("ts").dt.truncate(every), maintain_order=True)
            .agg(
                open=pl.col("open").first(),
                high=pl.col("high").max(),
                low=pl.col("low").min(),
                close=pl.col("close").last(),
                volume=pl.col("volume").sum(),
                quote_volume=pl.col("quote_volume").sum(),
                trade_count=pl.col("trade_count").sum().cast(pl.Int64),
                tc_nulls=pl.col("trade_count").null_count(),
            )
            .with_columns(
                trade_count=pl.when(pl.col("tc_nulls") > 0).then(None).otherwise("trade_count"),
                vwap=pl.col("quote_volume") / pl.col("volume"),
            )
            .drop("tc_nulls")
        )
        got = candles.filter(pl.col("timeframe") == tf).select(ref.columns)
        assert_close(
            got,
            ref,
            on=["exchange", "symbol", "ts"],
            cols=["open", "high", "low", "close", "volume", "quote_volume", "vwap", "trade_count"],
        )
    buckets = candles.filter(pl.col("timeframe") == "4h")["ts"].dt.hour().unique().sort()
    assert set(buckets.to_list()) == {20, 0}  # 4h buckets open at 20:00 and 00:00 UTC
    days = candles.filter(pl.col("timeframe") == "1d")["ts"]
    assert (days.dt.hour() == 0).all() and (days.dt.minute() == 0).all()


def test_candles_column_layout(built: DbtRun):
    cols = built.query("select * from marts.candles limit 0").columns
    assert cols[: len(CANDLE_COLUMNS)] == CANDLE_COLUMNS
    assert cols[len(CANDLE_COLUMNS) :] == [
        "base",
        "quote",
        "ingested_at",
        "source",
        "source_bars",
        "covered_minutes",
        "quality",
    ]


def test_spreads_hand_made_case(built: DbtRun):
    got = built.query(
        "select * from marts.spreads where base = 'HND' order by exchange_a, exchange_b"
    )
    assert got["window_start"].unique().to_list() == [HND_WINDOW]
    rows = {(r["exchange_a"], r["exchange_b"]): r for r in got.iter_rows(named=True)}
    vwap = {"binance": (101 * 1 + 103 * 3) / 4, "coinbase": 100.0, "kraken": 99.0}
    volume = {"binance": 4.0, "coinbase": 2.0, "kraken": 1.0}
    assert set(rows) == {("binance", "coinbase"), ("binance", "kraken"), ("coinbase", "kraken")}
    for (a, b), r in rows.items():
        expected = 100 * (vwap[a] - vwap[b]) / ((vwap[a] + vwap[b]) / 2)
        assert r["vwap_usd_a"] == pytest.approx(vwap[a], rel=1e-12)
        assert r["vwap_usd_b"] == pytest.approx(vwap[b], rel=1e-12)
        assert r["spread_pct"] == pytest.approx(expected, rel=1e-12)
        assert r["spread_pct"] > 0  # binance dearest, kraken cheapest
        assert (r["volume_a"], r["volume_b"]) == (volume[a], volume[b])
    # kraken's 22:00:30 trade opens the next window, where it is alone: no pair
    assert HND_WINDOW + timedelta(seconds=30) not in got["window_start"].to_list()


def test_spreads_match_polars_reference(built: DbtRun):
    trades = built.data["trades"].filter(pl.col("quote").is_in(USD_QUOTES))
    venue = trades.group_by(
        "base", "exchange", pl.col("ts").dt.truncate("30s").alias("window_start")
    ).agg(
        vwap=(pl.col("price") * pl.col("amount")).sum() / pl.col("amount").sum(),
        volume=pl.col("amount").sum(),
    )
    pairs = (
        venue.join(venue, on=["base", "window_start"], suffix="_b")
        .filter(pl.col("exchange") < pl.col("exchange_b"))
        .select(
            "base",
            "window_start",
            pl.col("exchange").alias("exchange_a"),
            "exchange_b",
            pl.col("vwap").alias("vwap_usd_a"),
            pl.col("vwap_b").alias("vwap_usd_b"),
            (
                100
                * (pl.col("vwap") - pl.col("vwap_b"))
                / ((pl.col("vwap") + pl.col("vwap_b")) / 2)
            ).alias("spread_pct"),
            pl.col("volume").alias("volume_a"),
            "volume_b",
        )
    )
    got = built.query("select * from marts.spreads").select(pairs.columns)
    assert pairs.height > 500
    key = ["base", "window_start", "exchange_a", "exchange_b"]
    joined = got.join(pairs, on=key, how="full", suffix="_ref", coalesce=True)
    assert joined.height == got.height == pairs.height
    for c in ("vwap_usd_a", "vwap_usd_b", "volume_a", "volume_b"):
        rel = ((joined[c] - joined[f"{c}_ref"]).abs() / joined[f"{c}_ref"].abs()).max()
        assert rel <= TOL, (c, rel)
    assert (joined["spread_pct"] - joined["spread_pct_ref"]).abs().max() <= 1e-7


def test_indicators_columns_and_values(built: DbtRun):
    ind = built.query("select * from marts.indicators")
    assert tuple(ind.columns) == OUTPUT_COLUMNS
    candles = built.query("select * from marts.candles")
    assert ind.height == candles.height
    expected = compute_indicators(candles)
    assert_frame_equal(
        ind.sort("exchange", "symbol", "timeframe", "ts"),
        expected.with_columns(pl.col("ts").cast(ind.schema["ts"])),
        check_exact=False,
        rel_tol=1e-12,
    )
    m1 = ind.filter((pl.col("timeframe") == "1m") & (pl.col("symbol") == "BTC/USD"))
    assert m1["rsi_14"].head(14).null_count() == 14
    assert m1["rsi_14"].slice(14).null_count() == 0
    assert m1["macd_signal"].slice(33).null_count() == 0


def test_news_sentiment_daily(built: DbtRun):
    got = built.query("select * from marts.news_sentiment_daily order by base, day")
    rows = {(r["base"], str(r["day"])): r for r in got.iter_rows(named=True)}
    # n1 (BTC): the transformer's later score (0.8, positive) beats vader's
    # n2 (BTC, ETH): -0.6 negative; n3 (ETH, SOL): 0.1 neutral; n4: no assets; n5 (BTC): unscored
    assert set(rows) == {
        ("BTC", "2026-11-14"),
        ("BTC", "2026-11-15"),
        ("ETH", "2026-11-14"),
        ("SOL", "2026-11-14"),
    }
    btc = rows[("BTC", "2026-11-14")]
    assert (btc["news_count"], btc["scored_count"]) == (2, 2)
    assert btc["mean_score"] == pytest.approx(0.1)
    assert (btc["share_positive"], btc["share_negative"]) == (0.5, 0.5)
    eth = rows[("ETH", "2026-11-14")]
    assert eth["mean_score"] == pytest.approx(-0.25)
    assert (eth["share_positive"], eth["share_negative"]) == (0.0, 0.5)
    late = rows[("BTC", "2026-11-15")]
    assert (late["news_count"], late["scored_count"], late["mean_score"]) == (1, 0, None)


def test_daily_market(built: DbtRun):
    got = built.query("select * from marts.daily_market")
    assert (
        got.height
        == built.query("select count(*) as n from marts.candles where timeframe = '1d'")["n"][0]
    )
    r = got.filter(pl.col("symbol") == "HND/USDT").row(0, named=True)
    assert r["return_pct"] == pytest.approx(100 * (103 - 101) / 101)
    assert r["range_pct"] == pytest.approx(100 * (103 - 101) / 101)
    assert {"open", "close", "return_pct", "range_pct", "volume", "quote_volume"} <= set(
        got.columns
    )


def test_asset_overview(built: DbtRun):
    got = built.query("select * from marts.asset_overview")
    assert sorted(got["base"].to_list()) == ["BTC", "ETH", "HND", "SOL"]
    rows = {r["base"]: r for r in got.iter_rows(named=True)}
    m1 = built.query(
        "select * from marts.candles where timeframe = '1m' and quote in ('USD', 'USDT')"
    )
    btc = m1.filter(pl.col("base") == "BTC").sort(["ts", "exchange"], descending=[True, False])
    last = btc.row(0, named=True)
    assert rows["BTC"]["last_price_usd"] == last["close"]
    assert rows["BTC"]["last_price_exchange"] == last["exchange"]
    assert rows["BTC"]["volume_24h_usd"] == pytest.approx(btc["quote_volume"].sum(), rel=1e-9)
    first = btc.sort(["ts", "exchange"]).row(0, named=True)
    assert rows["BTC"]["change_24h_pct"] == pytest.approx(
        100 * (last["close"] / first["open"] - 1), rel=1e-9
    )
    assert rows["BTC"]["venue_count"] == 2  # kraken's BTC/EUR has no USD rate
    assert rows["BTC"]["window_hours"] == pytest.approx(4.0)
    assert rows["HND"]["max_abs_spread_pct_24h"] == pytest.approx(100 * 3.5 / 100.75)
    assert rows["SOL"]["max_abs_spread_pct_24h"] is None
    # BTC's latest news day (11-15) is unscored: the latest scored day is shown
    assert str(rows["BTC"]["sentiment_day"]) == "2026-11-14"
    assert rows["BTC"]["sentiment_mean_score"] == pytest.approx(0.1)


def test_empty_lake_builds(tmp_path):
    """The first run of a fresh home has only placeholder files: the build must still pass."""
    run = run_dbt_build(tmp_path / "lake", tmp_path, {})
    assert run.returncode == 0, run.output[-6000:]
    assert run.query("select count(*) as n from marts.indicators")["n"][0] == 0
    assert run.query("select count(*) as n from marts.asset_overview")["n"][0] == 0


def test_candles_consolidated_volume_weighted_in_usd(built: DbtRun):
    candles = built.query(
        "select * from marts.candles where quote in ('USD', 'USDT', 'USDC')"
    )  # the seed's rates are all 1.0
    w = pl.col("volume")
    ref = (
        candles.group_by("base", "timeframe", "ts")
        .agg(
            *[
                pl.when(w.sum() > 0)
                .then((pl.col(c) * w).sum() / w.sum())
                .otherwise(pl.col(c).mean())
                .alias(c)
                for c in ("open", "high", "low", "close")
            ],
            volume=w.sum(),
            quote_volume_usd=pl.col("quote_volume").sum(),
            venue_count=pl.len().cast(pl.Int64),
        )
        .with_columns(
            vwap_usd=pl.when(pl.col("volume") > 0).then(
                pl.col("quote_volume_usd") / pl.col("volume")
            )
        )
    )
    got = built.query("select * from marts.candles_consolidated")
    assert (got["symbol"] == got["base"] + "/USD").all()
    assert ref.filter(pl.col("venue_count") > 1).height > 100  # really consolidating venues
    cols = ["open", "high", "low", "close", "volume", "quote_volume_usd", "vwap_usd"]
    assert_close(got.select(ref.columns), ref, ["base", "timeframe", "ts"], [*cols, "venue_count"])


def test_spread_divergence_episodes_match_polars(built: DbtRun):
    spreads = built.query("select * from marts.spreads")
    pair = ["base", "exchange_a", "exchange_b"]
    div = (
        spreads.filter(pl.col("spread_pct").abs() > 0.5)
        .with_columns(direction=pl.when(pl.col("spread_pct") > 0).then(1).otherwise(-1))
        .sort([*pair, "direction", "window_start"])
        .with_columns(
            new=(
                pl.col("window_start").diff().over([*pair, "direction"]) != timedelta(seconds=30)
            ).fill_null(True)
        )
        .with_columns(episode=pl.col("new").cum_sum().over([*pair, "direction"]))
    )
    ref = div.group_by([*pair, "direction", "episode"]).agg(
        started_at=pl.col("window_start").min(),
        window_count=pl.len().cast(pl.Int64),
        max_abs_spread_pct=pl.col("spread_pct").abs().max(),
    )
    got = built.query("select * from marts.spread_divergences")
    assert ref.height > 5 and (ref["window_count"] > 1).any()
    assert_close(
        got.select(ref.drop("episode").columns),
        ref.drop("episode"),
        [*pair, "started_at"],
        ["direction", "window_count", "max_abs_spread_pct"],
    )
    assert (got["duration_seconds"] == 30 * got["window_count"]).all()
    assert (
        (got["ended_at"] - got["started_at"]).dt.total_seconds() == got["duration_seconds"]
    ).all()


def test_daily_top_movers_and_correlations(built: DbtRun):
    cons = built.query("select * from marts.candles_consolidated")
    daily = cons.filter(pl.col("timeframe") == "1d").with_columns(
        day=pl.col("ts").dt.date(),
        return_pct=100 * (pl.col("close") - pl.col("open")) / pl.col("open"),
    )
    ref = (
        daily.sort(pl.col("return_pct").abs(), "base", descending=[True, False])
        .group_by("day", maintain_order=True)
        .head(5)
        .with_columns(mover_rank=pl.int_range(1, pl.len() + 1).over("day").cast(pl.Int64))
    )
    got = built.query("select * from marts.daily_top_movers")
    assert_close(
        got.select("day", "mover_rank", "base", "return_pct"),
        ref.select("day", "mover_rank", "base", "return_pct"),
        ["day", "mover_rank"],
        ["base", "return_pct"],
    )

    m1 = cons.filter(pl.col("timeframe") == "1m").sort("base", "ts")
    ret = m1.with_columns(
        r=(pl.col("close") / pl.col("close").shift(1)).log().over("base"),
        gap=(pl.col("ts") - pl.col("ts").shift(1)).over("base"),
    ).filter(pl.col("gap") == timedelta(minutes=1))
    corr = built.query("select * from marts.daily_correlations")
    assert sorted(set(zip(corr["base_a"], corr["base_b"], strict=True))) == [
        ("BTC", "ETH"),
        ("BTC", "SOL"),
        ("ETH", "SOL"),
    ]
    for row in corr.iter_rows(named=True):
        a = ret.filter(pl.col("base") == row["base_a"]).select("ts", "r")
        b = ret.filter(pl.col("base") == row["base_b"]).select("ts", "r")
        j = a.join(b, on="ts", suffix="_b").filter(pl.col("ts").dt.date() == row["day"])
        assert j.height == row["n_obs"]
        expected = np.corrcoef(j["r"].to_numpy(), j["r_b"].to_numpy())[0, 1]
        assert row["correlation"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
