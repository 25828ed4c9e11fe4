"""Technical indicators per (exchange, symbol, timeframe, ts), computed in polars.

The math lives in ``sentinance_assets.lib.indicators`` (TA-Lib conventions, warm-up rows NULL);
this model only moves data: dbt-duckdb's ``dbt.ref`` returns a DuckDB relation, ``.pl()`` turns
it into a polars frame, and the returned polars frame is registered with DuckDB and written as a
table. Recursive indicators (EMA, Wilder RSI/ATR, MACD signal) are why this is Python: a
recursive CTE would tie the project to DuckDB.

Bars flagged implausible or maintenance in ``candles.quality`` are excluded, and every
indicator restarts after a gap of more than ``indicator_max_gap_bars`` (var, default 0) missing
or excluded bars, so no window spans one; ``bars_in_segment`` and ``null_reason`` say why a row
is NULL (see the library's docstring).
"""


def model(dbt, session):
    dbt.config(materialized="table")

    from sentinance_assets.lib.indicators import compute_indicators

    # dbt passes only the config keys read with a plain dbt.config.get("...") call
    max_gap_bars = dbt.config.get("max_gap_bars")
    candles = (
        dbt.ref("candles").select("exchange, symbol, timeframe, ts, high, low, close, quality").pl()
    )
    return compute_indicators(candles, max_gap_bars=int(max_gap_bars or 0))
