{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['exchange', 'symbol', 'ts'],
    on_schema_change='fail',
    post_hook=[
        "{% if is_incremental() %}delete from {{ this }} where bar_source = 'exchange_candles' and {{ sentinance.market_key() }} in (select distinct {{ sentinance.market_key() }} from {{ source('raw', 'trades') }}){% endif %}"
    ]
) }}
{#
  1-minute bars per (exchange, symbol).

  * From trades wherever the market has trades: open/close = first/last trade of the minute by
    (ts, trade_id), volume = sum(amount), quote_volume = sum(price * amount),
    vwap = quote_volume / volume, trade_count = number of trades.
  * From the exchange's own 1m candles for (exchange, symbol) pairs with no trades at all (for
    example a venue ingested through candles only): trade_count is NULL, vwap is approximated
    by the typical price (high + low + close) / 3 and quote_volume by volume * vwap.

  A minute without trades has no row (no forward-filled bars). ingested_at = latest arrival of
  the rows behind the bar.

  Incremental (macros/incremental.sql): recomputes every market-minute holding a raw trade copy
  that arrived since the watermark minus the lookback (or inside the run window), from the
  deduplicated trades of those minutes (macros/trades.sql over every raw copy of their keys: the
  same winners as stg_trades, without deduplicating the whole lake), and the candle-only minutes
  whose exchange candle arrived since then. When a candle-only market gains trades, the post-hook
  drops its candle-sourced minutes, as a full refresh would.
#}
{%- set cutoff = sentinance.incremental_cutoff() %}
with
{%- if cutoff %}

changed_minutes as (

    {#- read from the raw lake, not the deduplicating staging view: the arrival filter prunes
        Parquet row groups there, and any raw copy that arrived marks its minute (a superset
        of the kept copies' minutes; recomputing a minute from all its trades is exact) #}
    select distinct exchange, symbol, {{ sentinance.bucket_start('ts', '1m') }} as ts
    from {{ source('raw', 'trades') }}
    where {{ sentinance.changed_rows_predicate(cutoff) }}

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

markets_with_trades as (

    select distinct exchange, symbol
    from {{ source('raw', 'trades') }}

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
        cast(null as bigint) as trade_count,
        ingested_at
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
          {%- if cutoff %}
          and {{ sentinance.changed_rows_predicate(cutoff, 'c.ingested_at', 'c.ts') }}
          {%- endif %}
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
    'trades' as bar_source,
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
    trade_count,
    'exchange_candles' as bar_source,
    ingested_at
from from_exchange_candles
