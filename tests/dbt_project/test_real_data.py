"""Indicators from the marts on real prices, against TA-Lib.

The hourly CryptoDataDownload exports in ``../shared/data/crypto_prices_hourly_cdd`` (Binance
BTC/USDT and ETH/USDT 2017-2020, Gemini BTC/USD 2015-2020; see its PROVENANCE.md) go through
the real dbt models: each hourly bar lands in the lake as an exchange candle stamped at its
hour's open, so ``marts.candles`` rolls it up into a 1h bar equal to it, and
``marts.indicators`` computes the 1h indicators on the real hourly series. TA-Lib computes the
same indicators on the same bars (deduplicated on the timestamp, ascending, gaps kept as in the
marts); after a 250-bar warm-up the maximum relative difference must be <= 1e-6.

Skipped (with the reason) when the shared data or TA-Lib is absent. Nothing is copied into the
repository: the lake and warehouse live in a temporary folder.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sentinance_assets.lib import lake
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
    """One CDD export as ascending hourly bars, deduplicated on the open time (first row of
    the file wins), unix seconds/milliseconds normalised."""
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
    return (
        df.unique("ts", keep="first", maintain_order=True)
        .sort("ts")
        .with_columns(
            pl.col("ts").cast(TS),
            exchange=pl.lit(exchange),
            symbol=pl.lit(symbol),
            base=pl.lit(base),
            quote=pl.lit(quote),
            timeframe=pl.lit("1m"),  # one bar per hour, stamped at the hour's open
            source=pl.lit("cdd"),
            ingested_at=pl.lit(INGESTED).cast(TS),
        )
    )


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
        bars = load_cdd(DATA / name, exchange, symbol, skip)
        series[(exchange, symbol)] = bars
        lake.write_partition(
            lake_dir, RAW_CANDLES, bars, partition="cdd", part=name.removesuffix(".csv")
        )
    run = run_dbt_build(
        lake_dir,
        work,
        {},
        "--exclude-resource-type",
        "test",
        "--select",
        "+indicators",
        "--vars",
        json.dumps({"candle_timeframes": ["1m", "1h"]}),
    )
    assert run.returncode == 0, run.output[-6000:]
    return run, series


def test_real_hourly_candles_pass_through_unchanged(real):
    run, series = real
    for (exchange, symbol), bars in series.items():
        got = run.query(
            "select ts, open, high, low, close, volume from marts.candles "
            f"where timeframe = '1h' and exchange = '{exchange}' and symbol = '{symbol}' "
            "order by ts"
        )
        assert got.height == bars.height > 29_000
        ref = bars.select(got.columns)
        for col in ("ts", "open", "high", "low", "close"):
            assert (got[col] == ref[col]).all(), (exchange, symbol, col)
        # volumes are summed with exact_sum (DECIMAL(38, 18)): at most an ulp of rounding
        rel = ((got["volume"] - ref["volume"]).abs() / ref["volume"].abs().clip(1e-9)).max()
        assert rel <= 1e-15, (exchange, symbol, rel)


def test_marts_indicators_match_talib_on_real_prices(real):
    run, series = real
    report = {}
    for (exchange, symbol), bars in series.items():
        got = run.query(
            "select * from marts.indicators "
            f"where timeframe = '1h' and exchange = '{exchange}' and symbol = '{symbol}' "
            "order by ts"
        )
        assert got.height == bars.height
        assert (got["ts"] == bars["ts"]).all()
        close = bars["close"].to_numpy()
        for col, ref in talib_reference(bars).items():
            ours = got[col].to_numpy().astype(float)[WARM_UP:]
            ref = ref[WARM_UP:]
            ok = np.isfinite(ref) & np.isfinite(ours)
            # the same rows are defined on both sides (TA-Lib has no NULL: NaN is its gap)
            assert np.array_equal(np.isfinite(ref), np.isfinite(ours)), (symbol, col)
            assert ok.sum() > 25_000, (symbol, col)
            # relative to the reference value; oscillating around 0 (MACD histogram, log
            # returns), relative to a billionth of the price level instead
            scale = np.maximum(np.abs(ref[ok]), 1e-9 * close[WARM_UP:][ok])
            if col in ("log_return", "rsi_14", "realized_vol"):
                scale = np.maximum(np.abs(ref[ok]), 1e-12)
            rel = float(np.max(np.abs(ours[ok] - ref[ok]) / scale))
            report[f"{exchange} {symbol} {col}"] = rel
    worst = max(report, key=report.get)
    print(f"worst: {worst} {report[worst]:.2e}")
    bad = {k: v for k, v in report.items() if not v <= MAX_REL}
    assert not bad, bad
