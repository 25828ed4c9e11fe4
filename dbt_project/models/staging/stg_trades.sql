{{ config(materialized='table') }}
{#
  Trades, typed and deduplicated on (exchange, symbol, trade_id). Raw trades are append-only
  and immutable at the venue, so the first ingested copy wins. trade_seq orders each market's
  trades by (ts, trade_id) so "first/last trade" stays deterministic when timestamps tie.
  A table, unlike the other staging models: two models and a dozen tests read it, and as a view
  each of them re-ran the dedup and sequence windows over every trade (minutes of build time
  at a few million trades).
#}
with source as (

    select * from {{ source('raw', 'trades') }}

),

typed as (

    select
        cast(exchange as {{ dbt.type_string() }}) as exchange,
        cast(symbol as {{ dbt.type_string() }}) as symbol,
        cast(base as {{ dbt.type_string() }}) as base,
        cast(quote as {{ dbt.type_string() }}) as quote,
        cast(trade_id as {{ dbt.type_string() }}) as trade_id,
        cast(ts as {{ sentinance.type_timestamp_utc() }}) as ts,
        cast(price as {{ sentinance.type_double() }}) as price,
        cast(amount as {{ sentinance.type_double() }}) as amount,
        cast(cost as {{ sentinance.type_double() }}) as cost,
        cast(side as {{ dbt.type_string() }}) as side,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(ingested_at as {{ sentinance.type_timestamp_utc() }}) as ingested_at
    from source

),

deduplicated as (

    select *
    from typed
    qualify row_number() over (
        partition by exchange, symbol, trade_id
        order by ingested_at, ts, price, amount, side, source
    ) = 1

)

select
    exchange,
    symbol,
    base,
    quote,
    trade_id,
    row_number() over (partition by exchange, symbol order by ts, trade_id) as trade_seq,
    ts,
    price,
    amount,
    cost,
    side,
    source,
    ingested_at
from deduplicated
