{#
  Trades, typed and deduplicated on (exchange, symbol, trade_id): a view over the raw Parquet
  lake, as staging is meant to be (a thin typed layer, no copy). The first ingested copy of a
  trade wins (macros/trades.sql, shared with the incremental bar models). The lake writers
  already keep one row per key within a day partition; this view is the guarantee across
  partitions and re-ingested files.

  Why a view and not an incremental table: copying the trades into DuckDB's own storage is the
  most expensive step of the whole build (13 s of 20 s for 10M trades in benchmarks/marts.py:
  DuckDB compresses every string column on write), while its readers (int_candles_1m,
  int_venue_vwap_usd) are incremental tables that aggregate trades into bars anyway. A view is
  also always exact: a trade removed from the lake disappears here at once.

  Ordering within a market is (ts, trade_id); no global sequence number is stored, because a
  late trade would renumber every later trade of its market.
#}
{{ sentinance.deduplicated_trades(source('raw', 'trades')) }}
