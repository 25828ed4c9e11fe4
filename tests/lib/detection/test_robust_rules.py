"""The volume-spike baseline is robust to heavy-tailed minutes; a sparse venue's divergence is
found from one diverging print (docs/alerts.md, "How the defaults were tuned")."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from sentinance_assets.lib.detection.engine import detect_bars
from sentinance_assets.lib.detection.rules import DetectorConfig
from sentinance_assets.lib.detection.rules_file import load_rules

NOW = datetime(2026, 11, 20, tzinfo=UTC)
T0 = datetime(2026, 11, 10, tzinfo=UTC)


def _bars(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "exchange": pl.String,
            "symbol": pl.String,
            "bucket": pl.Datetime("ms", "UTC"),
            "usd": pl.Float64,
            "amount": pl.Float64,
            "n": pl.UInt32,
        },
        orient="row",
    )


def test_spike_found_against_a_heavy_tailed_hour_that_the_mean_hides():
    rng = np.random.default_rng(3)
    price = 20_000.0
    rows = []
    spike_at = 150
    for m in range(180):
        n = int(rng.poisson(10))
        usd = float(n * 700 * np.exp(rng.normal(0, 0.3)))
        if m in (100, 101, 120, 130):  # a few huge real bursts: they inflate mean and std
            n, usd = 400, 2_500_000.0
        if m == spike_at:  # the simulator's spike: 9x the typical minute
            n, usd = 90, 63_000.0
        t = T0 + timedelta(minutes=m)
        rows.append(("kraken", "BTC/USD", t, usd, usd / price, n))
    bars = _bars(rows)
    hour = bars.filter(
        pl.col("bucket").is_between(T0 + timedelta(minutes=90), T0 + timedelta(minutes=149))
    )
    # the former rule's baseline: 4x the hourly mean was required, and this is far below it
    assert 63_000.0 < 4 * hour["usd"].mean()
    alerts = detect_bars(bars, DetectorConfig(), NOW).filter(pl.col("type") == "volume_spike")
    times = alerts["event_time"].to_list()
    assert T0 + timedelta(minutes=spike_at) in times
    # the robust baseline is not fooled by the normal Poisson minutes in between
    assert all(t in {T0 + timedelta(minutes=k) for k in (100, 120, 130, spike_at)} for t in times)


def test_sparse_market_spike_needs_the_count_not_only_the_usd():
    rows = []
    for m in range(120):
        t = T0 + timedelta(minutes=m)
        if m % 3 == 0:  # trades one minute in three, one trade
            rows.append(("kraken", "BTC/USDC", t, 2_000.0, 0.1, 1))
    t = T0 + timedelta(minutes=100)
    heavy_print = _bars([("kraken", "BTC/USDC", t, 90_000.0, 4.5, 2)])
    burst = _bars([("kraken", "BTC/USDC", t, 20_000.0, 1.0, 12)])
    base = _bars(rows).filter(pl.col("bucket") != t)
    for extra, expected in ((heavy_print, 0), (burst, 1)):
        found = detect_bars(pl.concat([base, extra]).sort("bucket"), DetectorConfig(), NOW)
        assert found.filter(pl.col("type") == "volume_spike").height == expected


def _venues(minutes: int, sparse_at: dict[int, float], busy_jump: dict[int, float]):
    rows = []
    for m in range(minutes):
        t = T0 + timedelta(minutes=m)
        for ex in ("binance", "coinbase"):
            px = 20_000.0 * (1 + (busy_jump.get(m, 0.0) if ex == "coinbase" else 0.0))
            rows.append((ex, "BTC/USD", t, px * 1.0, 1.0, 5))
        if m in sparse_at or m % 10 == 0:
            px = 20_000.0 * (1 + sparse_at.get(m, 0.0))
            rows.append(("kraken", "BTC/USD", t, px * 0.5, 0.5, 1))
    return _bars(rows)


def test_divergence_of_a_sparse_venue_from_one_diverging_print():
    # kraken trades every ten minutes; at minute 33 one print 1 % above, then silence
    found = detect_bars(_venues(60, {33: 0.01}, {}), DetectorConfig(), NOW).filter(
        pl.col("type") == "divergence"
    )
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["exchange"] == "kraken" and row["event_time"] == T0 + timedelta(minutes=33)
    # it stands until kraken's next trade, at most ``divergence_carry`` (4) windows after it
    assert '"duration_s":150' in row["details"].replace(" ", "")


def test_divergence_of_a_busy_venue_still_needs_two_windows():
    # 1-minute bars with a trade in every 30 s window: one diverging window is not enough
    rows = []
    for k in range(120):
        t = T0 + timedelta(seconds=30 * k)
        for ex in ("binance", "coinbase", "kraken"):
            off = 0.01 if (ex == "coinbase" and k == 50) else 0.0
            rows.append((ex, "BTC/USD", t, 20_000.0 * (1 + off), 1.0, 3))
    one = detect_bars(_bars(rows), DetectorConfig(), NOW)
    assert one.filter(pl.col("type") == "divergence").height == 0
    rows2 = [
        (
            ex,
            s,
            t,
            u * (1.01 if ex == "coinbase" and t == T0 + timedelta(seconds=30 * 51) else 1),
            a,
            n,
        )
        for ex, s, t, u, a, n in rows
    ]
    two = detect_bars(_bars(rows2), DetectorConfig(), NOW)
    assert two.filter(pl.col("type") == "divergence").height == 1


def _depeg(usdc: float, with_leg: bool) -> pl.DataFrame:
    """BTC at $20,000 on two USD venues and on a USDC venue where USDC trades at ``usdc``
    dollars (so BTC/USDC prints 20,000 / usdc); the USDC/USD leg on kraken when ``with_leg``."""
    rows = []
    for k in range(120):
        t = T0 + timedelta(seconds=30 * k)
        for ex in ("binance", "coinbase"):
            rows.append((ex, "BTC/USD", t, 20_000.0, 1.0, 3))
        # the engine's usd: the static rate (USDC = $1) times the USDC price
        rows.append(("kraken", "BTC/USDC", t, 20_000.0 / usdc, 1.0, 3))
        if with_leg:
            rows.append(("kraken", "USDC/USD", t, 1_000.0 * usdc, 1_000.0, 3))
    return _bars(rows)


def test_a_stale_leg_stops_valuing_its_quote_after_the_rules_max_age():
    # the USDC/USD leg trades for the first 5 minutes only; its last price values BTC/USDC for
    # divergence.quote_max_age_s (1 h: the whole hour here), then the static $1 is back
    rows = _depeg(0.88, with_leg=True).filter(
        (pl.col("symbol") != "USDC/USD") | (pl.col("bucket") < T0 + timedelta(minutes=5))
    )
    default = detect_bars(rows, DetectorConfig(), NOW)
    assert default.filter(pl.col("type") == "divergence").height == 0
    short = load_rules(text="[divergence]\nquote_max_age_s = 600\n").detector
    found = detect_bars(rows, short, NOW).filter(pl.col("type") == "divergence")
    assert found["symbol"].to_list() == ["BTC/USDC"]
    # the leg's last bar opens at 04:30: its price is more than 600 s old from the 15:00 bucket
    assert found["event_time"].to_list() == [T0 + timedelta(minutes=15)]


def test_divergence_values_a_stablecoin_at_its_live_leg():
    # USDC at $0.88 (March 2023): without its USD leg the USDC market stands 13.6 % apart
    alone = detect_bars(_depeg(0.88, with_leg=False), DetectorConfig(), NOW)
    assert alone.filter(pl.col("type") == "divergence")["symbol"].to_list() == ["BTC/USDC"]
    # with the leg in the same bars, BTC/USDC is valued at the live rate: no divergence
    both = detect_bars(_depeg(0.88, with_leg=True), DetectorConfig(), NOW)
    assert both.filter(pl.col("type") == "divergence").height == 0
    # and a real divergence inside the de-peg is still found: +1 % on the USDC venue
    rows = _depeg(0.88, with_leg=True).with_columns(
        pl.when(
            (pl.col("symbol") == "BTC/USDC")
            & pl.col("bucket").is_between(T0 + timedelta(minutes=20), T0 + timedelta(minutes=22))
        )
        .then(pl.col("usd") * 1.01)
        .otherwise(pl.col("usd"))
        .alias("usd")
    )
    found = detect_bars(rows, DetectorConfig(), NOW).filter(pl.col("type") == "divergence")
    assert found["symbol"].to_list() == ["BTC/USDC"]
    assert found["event_time"].to_list() == [T0 + timedelta(minutes=20)]
