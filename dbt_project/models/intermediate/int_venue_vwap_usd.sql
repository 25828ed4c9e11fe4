{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['base', 'exchange', 'window_start'],
    on_schema_change='fail'
) }}
{#
  USD volume-weighted average price per (base asset, exchange, window) from trades, the input of
  the spreads mart. Each trade's price is converted to USD with the quote_usd_rates seed before
  weighting, so a venue trading the same base against several quotes yields one USD price.
  Trades whose quote has no rate in the seed are left out.
  Window width: var spread_window_seconds (default 30). ingested_at = latest arrival of the
  window's trades.

  Incremental (macros/incremental.sql): recomputes every (base, exchange, window) holding a raw
  trade copy that arrived since the watermark minus the lookback, or inside the run window, from
  the deduplicated trades of those windows (macros/trades.sql, as int_candles_1m). Changing
  the seed's rates or spread_window_seconds needs a --full-refresh.
#}
{%- set window = var('spread_window_seconds', 30) | int -%}
{%- set cutoff = sentinance.incremental_cutoff() %}
with rates as (

    select quote, usd_per_unit from {{ ref('quote_usd_rates') }}

),
{%- if cutoff %}

changed_windows as (

    select distinct
        base,
        exchange,
        {{ sentinance.bucket_start('ts', window ~ 's') }} as window_start
    from {{ source('raw', 'trades') }}  {#- arrival filter prunes the lake; see int_candles_1m #}
    where {{ sentinance.changed_rows_predicate(cutoff) }}

),

trades as (

    {{ sentinance.deduplicated_changed_trades(
        source('raw', 'trades'),
        'changed_windows',
        "r.base = c.base and r.exchange = c.exchange and "
            ~ sentinance.bucket_start('r.ts', window ~ 's') ~ " = c.window_start",
        '(select min(window_start) from changed_windows)',
    ) }}

),
{%- else %}

trades as (

    select * from {{ ref('stg_trades') }}

),
{%- endif %}

priced as (

    select
        t.base,
        t.exchange,
        {{ sentinance.bucket_start('t.ts', window ~ 's') }} as window_start,
        t.price * r.usd_per_unit as price_usd,
        t.amount,
        t.ingested_at
    from trades as t
    inner join rates as r
        on t.quote = r.quote

),

scoped as (

    select p.*
    from priced as p
    {%- if cutoff %}
    inner join changed_windows as c
        on p.base = c.base
        and p.exchange = c.exchange
        and p.window_start = c.window_start
    {%- endif %}

)

select
    base,
    exchange,
    window_start,
    {{ sentinance.exact_sum('price_usd * amount') }}
        / nullif({{ sentinance.exact_sum('amount') }}, 0) as vwap_usd,
    {{ sentinance.exact_sum('amount') }} as volume,
    {{ sentinance.exact_sum('price_usd * amount') }} as volume_usd,
    count(*) as trade_count,
    max(ingested_at) as ingested_at
from scoped
group by base, exchange, window_start
