{#
  One row per (exchange, symbol, day): the UTC day's 1d candle with its open-to-close return
  and high-low range. The current day is included while it is still forming. Days whose bar
  is flagged implausible or maintenance (marts.candles quality) have no row; marts.
  candle_completeness counts them.
#}
with daily as (

    select * from {{ ref('candles') }}
    where timeframe = '1d'
      and {{ sentinance.usable_candle('quality') }}

)

select
    exchange,
    symbol,
    base,
    quote,
    cast(ts as date) as day,
    open,
    high,
    low,
    close,
    100 * (close - open) / nullif(open, 0) as return_pct,
    100 * (high - low) / nullif(open, 0) as range_pct,
    volume,
    quote_volume,
    vwap,
    trade_count
from daily
