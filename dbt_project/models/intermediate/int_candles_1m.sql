{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['exchange', 'symbol', 'ts'],
    on_schema_change='fail'
) }}
{#
  1-minute bars per (exchange, symbol, ts): the finest source wins, minute by minute.

  * source 'trades': every minute with at least one clean trade (raw.trades holds only rows that
    passed the trade contract). open/close = first/last trade of the minute by (ts, trade_id),
    volume = sum(amount), quote_volume = sum(price * amount), vwap = quote_volume / volume,
    trade_count = number of trades.
  * source 'exchange_1m': every other minute for which the exchange served a 1m candle (a
    candle-only market, or a minute whose trades all failed their contract or never came), so
    the 1m grid matches the exchange's. trade_count is NULL, vwap is approximated by the typical
    price (high + low + close) / 3 and quote_volume by volume * vwap. `conflicting` tells that
    the candle's raw copies disagreed (stg_candles).

  A minute with neither has no row: nothing is forward-filled. ingested_at = latest arrival of
  the rows behind the bar.

  Incremental (macros/incremental.sql): recomputes every market-minute holding a raw trade copy
  or a raw 1m candle copy that arrived since the watermark minus the lookback (or inside the run
  window), from the deduplicated trades of those minutes (macros/trades.sql over every raw copy
  of their keys: the same winners as stg_trades, without deduplicating the whole lake) and their
  exchange candles. A minute that gains trades is rebuilt from them, replacing its candle bar.
#}
{%- set cutoff = sentinance.incremental_cutoff() %}
with
{%- if cutoff %}

changed_minutes as (

    {#- read from the raw lake, not the deduplicating staging views: the arrival filter prunes
        Parquet row groups there, and any raw copy that arrived marks its minute (a superset
        of the kept copies' minutes; recomputing a minute from all its inputs is exact) #}
    select exchange, symbol, {{ sentinance.bucket_start('ts', '1m') }} as ts
    from {{ source('raw', 'trades') }}
    where {{ sentinance.changed_rows_predicate(cutoff) }}

    union

    select
        cast(exchange as {{ dbt.type_string() }}) as exchange,
        cast(symbol as {{ dbt.type_string() }}) as symbol,
        cast(ts as {{ sentinance.type_timestamp_utc() }}) as ts
    from {{ source('raw', 'candles') }}
    where timeframe = '1m'
      and {{ sentinance.changed_rows_predicate(cutoff) }}

),

trades as (

    {{ sentinance.deduplicated_changed_trades(
        source('raw', 'trades'),
        'changed_minutes',
        "r.exchange = c.exchange and r.symbol = c.symbol and "
            ~ sentinance.bucket_start('r.ts', '1m') ~ " = c.ts",
        '(select min(ts) from changed_minutes)',
    ) }}

),
{%- else %}

trades as (

    select * from {{ ref('stg_trades') }}

),
{%- endif %}

trade_minutes as (

    select
        exchange,
        symbol,
        base,
        quote,
        {{ sentinance.bucket_start('ts', '1m') }} as ts,
        ts as trade_ts,
        trade_id,
        price,
        amount,
        ingested_at
    from trades

),

scoped_trades as (

    select t.*
    from trade_minutes as t
    {%- if cutoff %}
    inner join changed_minutes as c
        on t.exchange = c.exchange
        and t.symbol = c.symbol
        and t.ts = c.ts
    {%- endif %}

),

from_trades as (

    select
        exchange,
        symbol,
        base,
        quote,
        ts,
        min_by(price, {{ sentinance.order_key(['trade_ts', 'trade_id']) }}) as open,
        max(price) as high,
        min(price) as low,
        max_by(price, {{ sentinance.order_key(['trade_ts', 'trade_id']) }}) as close,
        {{ sentinance.exact_sum('amount') }} as volume,
        {{ sentinance.exact_sum('price * amount') }} as quote_volume,
        count(*) as trade_count,
        max(ingested_at) as ingested_at
    from scoped_trades
    group by exchange, symbol, base, quote, ts

),

exchange_minutes as (

    select c.*
    from {{ ref('stg_candles') }} as c
    {%- if cutoff %}
    inner join changed_minutes as m
        on c.exchange = m.exchange
        and c.symbol = m.symbol
        and c.ts = m.ts
    {%- endif %}
    where c.timeframe = '1m'

),

from_exchange_candles as (

    select
        c.exchange,
        c.symbol,
        c.base,
        c.quote,
        c.ts,
        c.open,
        c.high,
        c.low,
        c.close,
        c.volume,
        c.volume * (c.high + c.low + c.close) / 3 as quote_volume,
        (c.high + c.low + c.close) / 3 as vwap,
        c.conflicting,
        c.ingested_at
    from exchange_minutes as c
    left join from_trades as t
        on c.exchange = t.exchange
        and c.symbol = t.symbol
        and c.ts = t.ts
    where t.exchange is null

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
    'trades' as source,
    false as conflicting,
    ingested_at
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
    cast(null as bigint) as trade_count,
    'exchange_1m' as source,
    conflicting,
    ingested_at
from from_exchange_candles
