"""Technical indicators per (exchange, symbol, timeframe, ts), computed in polars.

The math lives in ``sentinance_assets.lib.indicators`` (TA-Lib conventions, warm-up rows NULL);
this model only moves data: dbt-duckdb's ``dbt.ref`` returns a DuckDB relation, ``.pl()`` turns
it into a polars frame, and the returned polars frame is registered with DuckDB and written as a
table. Recursive indicators (EMA, Wilder RSI/ATR, MACD signal) are why this is Python: a
recursive CTE would tie the project to DuckDB.
"""


def model(dbt, session):
    dbt.config(materialized="table")

    from sentinance_assets.lib.indicators import compute_indicators

    candles = dbt.ref("candles").select("exchange, symbol, timeframe, ts, high, low, close").pl()
    return compute_indicators(candles)
