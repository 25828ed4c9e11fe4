"""Trades for the detection tests: rows as ``raw.trades``, and the replay-file layout."""

from __future__ import annotations

import polars as pl

from sentinance_assets.lib.detection.backtest import replay_layout
from sentinance_assets.lib.schemas import RAW_TRADES

__all__ = ["replay_layout", "trades_of"]


def trades_of(rows: list[tuple]) -> pl.DataFrame:
    """``(exchange, symbol, trade_id, ts epoch ms, price, amount, side)`` rows as raw trades."""
    ts = pl.col("ts").cast(pl.Int64).cast(pl.Datetime("ms", "UTC"))
    df = pl.DataFrame(
        rows,
        schema=["exchange", "symbol", "trade_id", "ts", "price", "amount", "side"],
        orient="row",
    ).with_columns(
        ts,
        pl.col("symbol").str.split("/").list.first().alias("base"),
        pl.col("symbol").str.split("/").list.last().alias("quote"),
        (pl.col("price") * pl.col("amount")).alias("cost"),
        pl.lit("test").alias("source"),
        ts.alias("ingested_at"),
    )
    return RAW_TRADES.conform(df)
