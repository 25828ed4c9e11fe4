{#
  Per UTC day, the Pearson correlation of 1-minute log returns between each pair of the
  var correlation_bases (default BTC, ETH, SOL), from the consolidated USD 1m candles. A return
  is ln(close / previous close) over exactly one minute (a return across a gap is dropped);
  pairs are matched on the minute; n_obs = matched returns. A day with fewer than
  var correlation_min_obs (30) matched returns has no row (too little data for a correlation:
  a thin or one-day history yields an empty table, not an error); correlation is NULL for a
  constant series. The consolidated candles already leave out implausible and maintenance bars.
#}
{%- set bases = var('correlation_bases', ['BTC', 'ETH', 'SOL']) -%}
{%- set min_obs = var('correlation_min_obs', 30) | int -%}
with bars as (

    select
        base,
        ts,
        close,
        lag(close) over (partition by base order by ts) as prev_close,
        lag(ts) over (partition by base order by ts) as prev_ts
    from {{ ref('candles_consolidated') }}
    where timeframe = '1m'
      and base in ({% for b in bases %}'{{ b }}'{% if not loop.last %}, {% endif %}{% endfor %})

),

returns as (

    select base, ts, ln(close / prev_close) as log_return
    from bars
    where prev_ts is not null
      and {{ sentinance.epoch_seconds_diff('prev_ts', 'ts') }} = 60
      and close > 0
      and prev_close > 0

)

select
    cast(a.ts as date) as day,
    a.base as base_a,
    b.base as base_b,
    {{ sentinance.exact_corr('a.log_return', 'b.log_return') }} as correlation,
    count(*) as n_obs
from returns as a
inner join returns as b
    on a.ts = b.ts
    and a.base < b.base
group by cast(a.ts as date), a.base, b.base
having count(*) >= {{ [min_obs, 2] | max }}
