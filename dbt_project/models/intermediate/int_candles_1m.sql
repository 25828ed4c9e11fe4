{{ config(materialized='table') }}
{#
  1-minute bars per (exchange, symbol).

  * From trades wherever the market has trades: open/close = first/last trade of the minute by
    (ts, trade_id) via trade_seq, volume = sum(amount), quote_volume = sum(price * amount),
    vwap = quote_volume / volume, trade_count = number of trades.
  * From the exchange's own 1m candles for (exchange, symbol) pairs with no trades at all (for
    example a venue ingested through candles only): trade_count is NULL, vwap is approximated
    by the typical price (high + low + close) / 3 and quote_volume by volume * vwap.

  A minute without trades has no row (no forward-filled bars). A table (small: one row per
  market-minute) so the candles mart and the tests do not re-aggregate every trade.
#}
with trades as (

    select * from {{ ref('stg_trades') }}

),

trade_minutes as (

    select
        exchange,
        symbol,
        base,
        quote,
        {{ sentinance.bucket_start('ts', '1m') }} as ts,
        trade_seq,
        price,
        amount
    from trades

),

from_trades as (

    select
        exchange,
        symbol,
        base,
        quote,
        ts,
        min_by(price, trade_seq) as open,
        max(price) as high,
        min(price) as low,
        max_by(price, trade_seq) as close,
        sum(amount) as volume,
        sum(price * amount) as quote_volume,
        count(*) as trade_count
    from trade_minutes
    group by exchange, symbol, base, quote, ts

),

markets_with_trades as (

    select distinct exchange, symbol
    from trades

),

from_exchange_candles as (

    select
        exchange,
        symbol,
        base,
        quote,
        ts,
        open,
        high,
        low,
        close,
        volume,
        volume * typical_price as quote_volume,
        typical_price as vwap,
        cast(null as bigint) as trade_count
    from (
        select
            c.*,
            (c.high + c.low + c.close) / 3 as typical_price
        from {{ ref('stg_candles') }} as c
        left join markets_with_trades as m
            on c.exchange = m.exchange
            and c.symbol = m.symbol
        where c.timeframe = '1m'
          and m.exchange is null
    ) as candle_only

)

select
    exchange,
    symbol,
    base,
    quote,
    ts,
    open,
    high,
    low,
    close,
    volume,
    quote_volume,
    quote_volume / nullif(volume, 0) as vwap,
    trade_count,
    'trades' as bar_source
from from_trades

union all

select
    exchange,
    symbol,
    base,
    quote,
    ts,
    open,
    high,
    low,
    close,
    volume,
    quote_volume,
    vwap,
    trade_count,
    'exchange_candles' as bar_source
from from_exchange_candles
