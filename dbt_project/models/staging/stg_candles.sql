{#
  Exchange-served candles, typed and deduplicated on (exchange, symbol, timeframe, ts). A bar
  fetched while still open is later re-fetched complete, so the last ingested copy wins (ties:
  the larger volume, then the lower close, open, high and low, then source: a total order, so
  the same copy wins on every run and engine; real files hold copies that tie on volume and
  close and differ in open).

  Duplicates are kept as information, not silently dropped: `copies` counts the raw rows of the
  key and `conflicting` is true when those copies disagree on any of open, high, low, close or
  volume (same key, different values: a provisional fetch, or a source file holding the same bar
  twice). marts.candles flags such bars and marts.candle_completeness counts them.
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

),

ranked as (

    select
        typed.*,
        row_number() over (
            partition by exchange, symbol, timeframe, ts
            order by ingested_at desc, volume desc, close, open, high, low, source
        ) as copy_rank,
        count(*) over bar_key as copies,
        case
            when min(open) over bar_key <> max(open) over bar_key
              or min(high) over bar_key <> max(high) over bar_key
              or min(low) over bar_key <> max(low) over bar_key
              or min(close) over bar_key <> max(close) over bar_key
              or min(volume) over bar_key <> max(volume) over bar_key
            then true
            else false
        end as conflicting
    from typed
    window bar_key as (partition by exchange, symbol, timeframe, ts)

)

select
    exchange,
    symbol,
    base,
    quote,
    timeframe,
    ts,
    open,
    high,
    low,
    close,
    volume,
    source,
    ingested_at,
    copies,
    conflicting
from ranked
where copy_rank = 1
