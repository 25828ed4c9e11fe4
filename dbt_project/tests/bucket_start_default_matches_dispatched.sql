{#
  The portable default__bucket_start and the engine's dispatched bucket_start agree on real
  trade times (the first and last trade of every market-minute, so values on both sides of
  every minute boundary the data has) and on edge cases around day/hour boundaries, for every
  candle timeframe and the spread window. On an engine without its own implementation this
  compares default to itself, harmlessly. The sample is one grouping pass over the raw lake:
  ranking every trade for a sample cost 10 s at 10 M trades.
#}
{%- set timeframes = var('candle_timeframes', ['1m', '5m', '15m', '1h', '4h', '1d']) + [(var('spread_window_seconds', 30) | int) ~ 's'] -%}
{%- set edge_cases = [
    '2026-01-01 00:00:00', '2026-01-01 23:59:59.999', '2026-03-01 03:59:59', '2026-03-01 04:00:00',
    '2026-06-30 11:29:30', '2026-06-30 11:29:29.5', '2024-02-29 20:14:59.999999', '1999-12-31 23:55:01',
    '1969-12-31 23:59:30.5', '1969-12-31 19:59:59'
] -%}
with timestamps as (

    {#- first and last trade time of every market-minute (grouped by the dispatched bucket:
        grouping only picks the sample; the comparison below is what is tested) -#}
    select distinct ts from (
        select min(ts) as ts
        from {{ source('raw', 'trades') }}
        group by exchange, symbol, {{ sentinance.bucket_start('ts', '1m') }}
        union all
        select max(ts) as ts
        from {{ source('raw', 'trades') }}
        group by exchange, symbol, {{ sentinance.bucket_start('ts', '1m') }}
    ) as minute_ends
    {%- for e in edge_cases %}
    union all
    select cast('{{ e }}' as {{ sentinance.type_timestamp_utc() }}) as ts
    {%- endfor %}

)

{% for tf in timeframes %}
select
    '{{ tf }}' as timeframe,
    ts,
    {{ sentinance.default__bucket_start('ts', tf) }} as default_bucket,
    {{ sentinance.bucket_start('ts', tf) }} as dispatched_bucket
from timestamps
where {{ sentinance.default__bucket_start('ts', tf) }} <> {{ sentinance.bucket_start('ts', tf) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
