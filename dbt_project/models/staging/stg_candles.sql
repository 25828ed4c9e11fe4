{#
  Exchange-served candles, typed and deduplicated on (exchange, symbol, timeframe, ts). A bar
  fetched while still open is later re-fetched complete, so the last ingested copy wins.
#}
with source as (

    select * from {{ source('raw', 'candles') }}

),

typed as (

    select
        cast(exchange as {{ dbt.type_string() }}) as exchange,
        cast(symbol as {{ dbt.type_string() }}) as symbol,
        cast(base as {{ dbt.type_string() }}) as base,
        cast(quote as {{ dbt.type_string() }}) as quote,
        cast(timeframe as {{ dbt.type_string() }}) as timeframe,
        cast(ts as {{ sentinance.type_timestamp_utc() }}) as ts,
        cast(open as {{ sentinance.type_double() }}) as open,
        cast(high as {{ sentinance.type_double() }}) as high,
        cast(low as {{ sentinance.type_double() }}) as low,
        cast(close as {{ sentinance.type_double() }}) as close,
        cast(volume as {{ sentinance.type_double() }}) as volume,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(ingested_at as {{ sentinance.type_timestamp_utc() }}) as ingested_at
    from source

)

select *
from typed
qualify row_number() over (
    partition by exchange, symbol, timeframe, ts
    order by ingested_at desc, volume desc, close, source
) = 1
