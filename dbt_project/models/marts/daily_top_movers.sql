{#
  The day's biggest movers: per UTC day, the var top_movers_n (default 5) base assets with the
  largest absolute open-to-close return of their consolidated USD daily candle
  (candles_consolidated, 1d), ranked 1..n (ties broken by base). direction is up / down / flat.
#}
{%- set n = var('top_movers_n', 5) | int -%}
with daily as (

    select
        cast(ts as date) as day,
        base,
        open,
        close,
        high,
        low,
        volume,
        quote_volume_usd,
        100 * (close - open) / nullif(open, 0) as return_pct,
        100 * (high - low) / nullif(open, 0) as range_pct
    from {{ ref('candles_consolidated') }}
    where timeframe = '1d'

),

ranked as (

    select
        *,
        {#- bigint on every engine (Spark's row_number is an int) #}
        cast(row_number() over (
            partition by day order by abs(return_pct) desc, base
        ) as bigint) as mover_rank
    from daily
    where return_pct is not null

)

select
    day,
    mover_rank,
    base,
    return_pct,
    case when return_pct > 0 then 'up' when return_pct < 0 then 'down' else 'flat' end as direction,
    range_pct,
    open,
    close,
    volume,
    quote_volume_usd
from ranked
where mover_rank <= {{ n }}
