{{ config(materialized='table') }}
{#
  USD volume-weighted average price per (base asset, exchange, window) from trades, the input of
  the spreads mart. Each trade's price is converted to USD with the quote_usd_rates seed before
  weighting, so a venue trading the same base against several quotes yields one USD price.
  Trades whose quote has no rate in the seed are left out.
  Window width: var spread_window_seconds (default 30). A table so its tests and the spreads
  self-join do not re-aggregate every trade.
#}
{%- set window = var('spread_window_seconds', 30) | int -%}
with trades as (

    select * from {{ ref('stg_trades') }}

),

rates as (

    select quote, usd_per_unit from {{ ref('quote_usd_rates') }}

),

priced as (

    select
        t.base,
        t.exchange,
        {{ sentinance.bucket_start('t.ts', window ~ 's') }} as window_start,
        t.price * r.usd_per_unit as price_usd,
        t.amount
    from trades as t
    inner join rates as r
        on t.quote = r.quote

)

select
    base,
    exchange,
    window_start,
    sum(price_usd * amount) / nullif(sum(amount), 0) as vwap_usd,
    sum(amount) as volume,
    sum(price_usd * amount) as volume_usd,
    count(*) as trade_count
from priced
group by base, exchange, window_start
