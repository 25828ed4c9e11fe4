{#
  The portable default__bucket_start and the engine's dispatched bucket_start agree on every
  sampled trade timestamp (every 97th trade in (exchange, symbol, ts, trade_id) order) and on edge cases around day/hour boundaries, for every candle timeframe and
  the spread window. On an engine without its own implementation this compares default to
  itself, harmlessly.
#}
{%- set timeframes = var('candle_timeframes', ['1m', '5m', '15m', '1h', '4h', '1d']) + [(var('spread_window_seconds', 30) | int) ~ 's'] -%}
{%- set edge_cases = [
    '2026-01-01 00:00:00', '2026-01-01 23:59:59.999', '2026-03-01 03:59:59', '2026-03-01 04:00:00',
    '2026-06-30 11:29:30', '2026-06-30 11:29:29.5', '2024-02-29 20:14:59.999999', '1999-12-31 23:55:01'
] -%}
with timestamps as (

    {#- a deterministic sample of trade times spread over the whole history -#}
    select distinct ts from (
        select ts, row_number() over (order by exchange, symbol, ts, trade_id) as n
        from {{ ref('stg_trades') }}
    ) as numbered
    where mod(n, 97) = 1
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
