"""Real hourly prices through the marts: candles of every coarser timeframe, completeness
counts, and indicators equal to TA-Lib's.

The hourly CryptoDataDownload exports in ``../shared/data/crypto_prices_hourly_cdd`` (Binance
BTC/USDT and ETH/USDT 2017-2020, Gemini BTC/USD 2015-2020; see its PROVENANCE.md) land in the
lake as they are: one raw ``1h`` exchange candle per row, the files' duplicated timestamps, flat
zero-volume hours (maintenance, illiquid early hours), missing hours and broken first bars
included. The real dbt models build 1h, 4h and 1d candles, their indicators and
``marts.candle_completeness``; the tests check

* the 1h bars are the raw bars (the kept copy of a duplicated hour: the larger volume), and the
  completeness counts equal an independent polars count of the same files;
* 4h and 1d bars and indicators exist for every market, and no indicator is NaN or infinite;
* ``marts.indicators`` (1h) equals TA-Lib on the same bars, run separately on each contiguous
  segment of usable bars (the marts restart every indicator after a missing, implausible or
  maintenance hour): after a 250-bar warm-up within each segment, the maximum relative
  difference must be <= 1e-6.

Skipped (with the reason) when the shared data or TA-Lib is absent. Nothing is copied into the
repository: the lake and warehouse live in a temporary folder.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib.indicators import INDICATOR_COLUMNS
from sentinance_assets.lib.schemas import RAW_CANDLES, TS
from tests.dbt_project.dbt_synthetic import REPO, run_dbt_build

talib = pytest.importorskip("talib", reason="TA-Lib (ta-lib wheel) is not installed")

DATA = (
    Path(os.environ.get("SENTINANCE_SHARED_DATA", REPO.parent / "shared" / "data"))
    / "crypto_prices_hourly_cdd"
)
FILES = {
    # file: (exchange, symbol, header line)
    "Binance_BTCUSDT_1h.csv": ("binance", "BTC/USDT", 0),
    "Binance_ETHUSDT_1h.csv": ("binance", "ETH/USDT", 0),
    "Gemini_BTCUSD_1h.csv": ("gemini", "BTC/USD", 1),
}
WARM_UP = 250
MAX_REL = 1e-6
INGESTED = datetime(2026, 11, 1, tzinfo=UTC)

pytestmark = pytest.mark.skipif(
    not all((DATA / f).exists() for f in FILES),
    reason=f"real price data absent: {DATA} (see the shared data's PROVENANCE.md)",
)


def load_cdd(path: Path, exchange: str, symbol: str, skip: int) -> pl.DataFrame:
    """One CDD export as raw hourly candles, every row of the file (duplicates included),
    unix seconds/milliseconds normalised."""
    raw = pl.read_csv(path, skip_rows=skip, infer_schema_length=0)
    raw = raw.rename({raw.columns[0]: "unix"})
    u = pl.col("unix").cast(pl.Float64)
    ms = pl.when(u > 1e11).then(u).otherwise(u * 1000).round(0).cast(pl.Int64)
    base, quote = symbol.split("/")
    df = raw.select(
        ts=ms.cast(pl.Datetime("ms", "UTC")),
        open=pl.col("open" if "open" in raw.columns else "Open").cast(pl.Float64),
        high=pl.col("high" if "high" in raw.columns else "High").cast(pl.Float64),
        low=pl.col("low" if "low" in raw.columns else "Low").cast(pl.Float64),
        close=pl.col("close" if "close" in raw.columns else "Close").cast(pl.Float64),
        volume=pl.col(raw.columns[7]).cast(pl.Float64),
    )
    return df.with_columns(
        pl.col("ts").cast(TS),
        exchange=pl.lit(exchange),
        symbol=pl.lit(symbol),
        base=pl.lit(base),
        quote=pl.lit(quote),
        timeframe=pl.lit("1h"),
        source=pl.lit("cdd"),
        ingested_at=pl.lit(INGESTED).cast(TS),
    )


def kept_bars(raw: pl.DataFrame) -> pl.DataFrame:
    """The copy stg_candles keeps of each hour (one delivery: the larger volume, then the lower
    close, open, high and low), ascending, with the quality rules of macros/candles.sql
    evaluated independently. (Binance's files hold hours whose copies tie on volume and close
    and differ in open: 2020-08-25 00:00 BTC, 2020-08-12 07:00 ETH.)"""
    flat = (
        (pl.col("open") == pl.col("high"))
        & (pl.col("high") == pl.col("low"))
        & (pl.col("low") == pl.col("close"))
        & (pl.col("volume") == 0)
    )
    implausible = (
        (pl.min_horizontal("open", "high", "low", "close") <= 0)
        | (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") > 4 * pl.col("close"))
        | (pl.col("low") < pl.col("close") / 4)
    )
    conflicting = raw.group_by("ts").agg(
        conflicting=pl.struct("open", "high", "low", "close", "volume").n_unique() > 1
    )
    return (
        raw.sort(
            ["ts", "volume", "close", "open", "high", "low"],
            descending=[False, True, False, False, False, False],
        )
        .unique("ts", keep="first", maintain_order=True)
        .join(conflicting, on="ts")
        .with_columns(maintenance=flat, implausible=implausible)
        .sort("ts")
    )


def segments(bars: pl.DataFrame) -> list[pl.DataFrame]:
    """The usable bars split wherever the next one is not exactly one hour later."""
    usable = bars.filter(~pl.col("maintenance") & ~pl.col("implausible"))
    new = (usable["ts"].diff() != timedelta(hours=1)).fill_null(True)
    ids = new.cum_sum()
    return [usable.filter(ids == i) for i in ids.unique().sort()]


def talib_reference(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    c, h, lo = (bars[k].to_numpy().astype(float) for k in ("close", "high", "low"))
    lr = np.log(c[1:] / c[:-1])
    lr = np.concatenate([[np.nan], lr])
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    return {
        "log_return": lr,
        "sma_20": talib.SMA(c, 20),
        "sma_50": talib.SMA(c, 50),
        "sma_200": talib.SMA(c, 200),
        "ema_20": talib.EMA(c, 20),
        "ema_50": talib.EMA(c, 50),
        "ema_200": talib.EMA(c, 200),
        "rsi_14": talib.RSI(c, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "atr_14": talib.ATR(h, lo, c, 14),
        # TA-Lib's STDDEV is the population one: scale to the sample (ddof = 1) std
        "realized_vol": talib.STDDEV(lr, 20, 1.0) * math.sqrt(20 / 19) * math.sqrt(365 * 24),
    }


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("real_data")
    lake_dir = work / "lake"
    series = {}
    for name, (exchange, symbol, skip) in FILES.items():
        raw = load_cdd(DATA / name, exchange, symbol, skip)
        series[(exchange, symbol)] = kept_bars(raw)
        lake.write_partition(
            lake_dir, RAW_CANDLES, raw, partition="cdd", part=name.removesuffix(".csv")
        )
    run = run_dbt_build(
        lake_dir,
        work,
        {},
        "--exclude-resource-type",
        "test",
        "--select",
        "+candle_completeness",
    )
    assert run.returncode == 0, run.output[-6000:]
    return run, series


def test_real_hourly_candles_pass_through_with_coarser_timeframes(real):
    run, series = real
    for (exchange, symbol), bars in series.items():
        got = run.query(
            "select timeframe, ts, open, high, low, close, volume, source, quality "
            f"from marts.candles where exchange = '{exchange}' and symbol = '{symbol}' "
            "order by timeframe, ts"
        )
        assert set(got["timeframe"]) == {"1h", "4h", "1d"}, (exchange, symbol)
        h1 = got.filter(pl.col("timeframe") == "1h")
        assert h1.height == bars.height > 29_000
        assert set(h1["source"]) == {"exchange_1h"}
        for col in ("ts", "open", "high", "low", "close"):
            assert (h1[col] == bars[col]).all(), (exchange, symbol, col)
        # volumes go through exact_sum (DECIMAL(38, 18)): at most an ulp of rounding
        rel = ((h1["volume"] - bars["volume"]).abs() / bars["volume"].abs().clip(1e-9)).max()
        assert rel <= 1e-15, (exchange, symbol, rel)
        assert (h1["quality"].str.contains("maintenance") == bars["maintenance"]).all()
        assert (h1["quality"].str.contains("implausible") == bars["implausible"]).all()
        days = got.filter(pl.col("timeframe") == "1d")
        assert days.height > 1_000 and set(days["source"]) == {"exchange_1h"}
        assert got.filter(pl.col("timeframe") == "4h").height > 6 * 1_000


def test_completeness_counts_match_the_files(real):
    run, series = real
    got = run.query("select * from marts.candle_completeness")
    assert got.height == 3 * len(series)
    for (exchange, symbol), bars in series.items():
        row = got.filter(
            (pl.col("exchange") == exchange)
            & (pl.col("symbol") == symbol)
            & (pl.col("timeframe") == "1h")
        ).row(0, named=True)
        span = (bars["ts"].max() - bars["ts"].min()) // timedelta(hours=1) + 1
        expected = {
            "first_bar_ts": bars["ts"].min(),
            "last_bar_ts": bars["ts"].max(),
            "expected_bars": span,
            "present_bars": bars.height,
            "missing_bars": span - bars.height,
            "maintenance_bars": int(bars["maintenance"].sum()),
            "implausible_bars": int(bars["implausible"].sum()),
            "duplicate_bars": int(bars["conflicting"].sum()),
            "usable_bars": int((~bars["maintenance"] & ~bars["implausible"]).sum()),
        }
        assert {k: row[k] for k in expected} == expected, (exchange, symbol)
        print(exchange, symbol, {k: row[k] for k in expected if k.endswith("_bars")})
    # what PROVENANCE.md says about the files
    binance = got.filter((pl.col("symbol") == "BTC/USDT") & (pl.col("timeframe") == "1h"))
    assert binance["duplicate_bars"][0] == 2_649 and binance["missing_bars"][0] > 0
    gemini = got.filter((pl.col("exchange") == "gemini") & (pl.col("timeframe") == "1h"))
    assert gemini["implausible_bars"][0] >= 1  # the 0.0 open/low of its first bar
    assert gemini["maintenance_bars"][0] > 1_000  # flat zero-volume hours of 2015-2016


def test_indicators_exist_for_every_timeframe_and_are_finite(real):
    run, series = real
    ind = run.query("select * from marts.indicators")
    counts = ind.group_by("exchange", "symbol", "timeframe").agg(
        rows=pl.len(), rsi=pl.col("rsi_14").count(), ema=pl.col("ema_50").count()
    )
    assert counts.height == 3 * len(series)
    assert (counts["rsi"] > 0).all() and (counts["ema"] > 0).all(), counts
    for col in INDICATOR_COLUMNS:
        assert ind[col].drop_nulls().is_finite().all(), col
    assert set(ind["null_reason"].drop_nulls()) <= {"warm_up", "gap", "implausible", "maintenance"}


def test_marts_indicators_match_talib_on_real_prices(real):
    run, series = real
    report, compared = {}, {}
    for (exchange, symbol), bars in series.items():
        got = run.query(
            "select * from marts.indicators "
            f"where timeframe = '1h' and exchange = '{exchange}' and symbol = '{symbol}' "
            "order by ts"
        )
        assert got.height == bars.height
        n = 0
        for seg in segments(bars):
            if seg.height <= WARM_UP:
                continue
            ours_seg = got.join(seg.select("ts"), on="ts", how="semi").sort("ts")
            assert (ours_seg["bars_in_segment"] == np.arange(1, seg.height + 1)).all()
            close = seg["close"].to_numpy()[WARM_UP:]
            for col, ref in talib_reference(seg).items():
                ours = ours_seg[col].to_numpy().astype(float)[WARM_UP:]
                ref = ref[WARM_UP:]
                # the same rows are defined on both sides (TA-Lib has no NULL: NaN is its gap)
                assert np.array_equal(np.isfinite(ref), np.isfinite(ours)), (symbol, col)
                ok = np.isfinite(ref)
                # relative to the reference value; oscillating around 0 (MACD histogram, log
                # returns), relative to a billionth of the price level instead
                scale = np.maximum(np.abs(ref[ok]), 1e-9 * close[ok])
                if col in ("log_return", "rsi_14", "realized_vol"):
                    scale = np.maximum(np.abs(ref[ok]), 1e-12)
                if ok.any():
                    rel = float(np.max(np.abs(ours[ok] - ref[ok]) / scale))
                    key = f"{exchange} {symbol} {col}"
                    report[key] = max(report.get(key, 0.0), rel)
            n += seg.height - WARM_UP
        compared[(exchange, symbol)] = n
    print("bars compared after each segment's warm-up:", compared)
    assert all(n > 15_000 for n in compared.values()), compared
    worst = max(report, key=report.get)
    print(f"worst: {worst} {report[worst]:.2e}")
    bad = {k: v for k, v in report.items() if not v <= MAX_REL}
    assert not bad, bad
