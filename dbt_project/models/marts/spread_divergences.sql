{#
  How long each cross-venue divergence lasted: one row per episode of consecutive spread windows
  of a venue pair (marts.spreads) with |spread_pct| > var spread_divergence_threshold_pct
  (default 0.5, the divergence detector's default) and the same sign. A window in which one of
  the venues did not trade ends the episode (no carry-over), as does a window back under the
  threshold or a sign flip. started_at = open of the first window, ended_at = close of the last
  (window_start + spread_window_seconds), duration_seconds = ended_at - started_at.
  direction = +1 when exchange_a is the dearer venue. The last episode of a pair may still be
  running (is_open: it ends at the pair's latest window).
#}
{%- set window = var('spread_window_seconds', 30) | int -%}
{%- set threshold = var('spread_divergence_threshold_pct', 0.5) | float -%}
with spreads as (

    select
        base,
        exchange_a,
        exchange_b,
        window_start,
        spread_pct,
        max(window_start) over (partition by base, exchange_a, exchange_b) as pair_last_window
    from {{ ref('spreads') }}

),

diverging as (

    select
        *,
        case when spread_pct > 0 then 1 else -1 end as direction,
        cast({{ sentinance.epoch_seconds('window_start') }} / {{ window }} as bigint) as window_number
    from spreads
    where abs(spread_pct) > {{ threshold }}

),

islands as (

    select
        *,
        window_number - row_number() over (
            partition by base, exchange_a, exchange_b, direction order by window_start
        ) as island
    from diverging

)

select
    base,
    exchange_a,
    exchange_b,
    direction,
    min(window_start) as started_at,
    {{ dbt.dateadd('second', window, 'max(window_start)') }} as ended_at,
    cast(count(*) * {{ window }} as bigint) as duration_seconds,
    count(*) as window_count,
    max(abs(spread_pct)) as max_abs_spread_pct,
    {{ sentinance.exact_avg('spread_pct') }} as mean_spread_pct,
    max(window_start) = max(pair_last_window) as is_open
from islands
group by base, exchange_a, exchange_b, direction, island
