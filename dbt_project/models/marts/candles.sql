{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['exchange', 'symbol', 'timeframe', 'ts'],
    on_schema_change='fail',
    post_hook=[
        "{% if is_incremental() %}{{ sentinance.delete_rows(this, 'source is null') }}{% endif %}"
    ]
) }}
{#
  OHLCV bars per (exchange, symbol, timeframe, ts) for every timeframe of var candle_timeframes
  (1m, 5m, 15m, 1h, 4h, 1d), from whatever the market has: trades, exchange candles of any of
  those timeframes, or both. ts is the bar open time (UTC), buckets aligned to the UTC day
  (bucket_start macro).

  The ladder, finest first (macros/candles.sql): each level's bars are
    1. rolled up from the usable bars of the next finer level whose length divides it
       (open/close = first/last bar, high/low = extremes, volume/quote_volume/trade_count = sums,
       vwap = quote_volume / volume), wherever the bucket has any; else
    2. the exchange's own candle of that timeframe (vwap ~ typical price, trade_count NULL).
  So the finest source wins per bar: a market with only hourly candles gets 1h, 4h and 1d bars,
  one with trades gets every timeframe from its trades, and a minute with no clean trades takes
  the exchange's 1m candle (int_candles_1m). Nothing is forward-filled: a bucket without data
  has no bar.

  Per row: `source` (trades | exchange_<tf> | mixed when a roll-up combined several),
  `source_bars` (source bars behind it), `covered_minutes` (minutes of the bar those bars
  cover: a roll-up of 50 of 60 minutes says 50) and `quality`: 'ok' or a comma-separated list of
    implausible  non-positive price, inconsistent OHLC, or high > 4 x close / low < close / 4
                 (var implausible_ratio);
    maintenance  part of a run of flat zero-volume source bars (1m bars, exchange candles) in
                 consecutive slots lasting >= var maintenance_min_minutes (60): exchange
                 maintenance or no trading, the price only carried over;
    duplicate    the exchange candle had raw copies with different values (stg_candles);
    filled       built (partly) from exchange candles in a market that has trades;
    incomplete   covered_minutes < the timeframe's minutes.
  Implausible and maintenance bars stay visible here but are left out of every roll-up, of
  the indicators and of the consolidated candles and returns downstream; a bucket holding only
  such bars has no coarser bar unless the exchange served one. marts.candle_completeness counts
  all of it per market and timeframe.

  Incremental (macros/incremental.sql) by market-day: every bar lies inside one UTC day of its
  market, and depends only on that day's 1m bars and exchange candles, on whether its source
  bars are in a maintenance run, and on whether the market has trades. A run rebuilds every
  timeframe of each market-day holding a 1m bar or a raw candle copy that arrived since the
  watermark minus the lookback (or inside the run window), plus the days where a bar's
  maintenance status changed (a run grown past the minimum) and every day of a market that
  started trading (its exchange bars become `filled`). A bar of a rebuilt day that no longer
  exists (its bucket lost its last usable bar) is removed: the run inserts a marker row
  (source NULL) for its key, which the post-hook deletes. Maintenance runs are looked for among
  the flat source bars only (a handful of rows), and a level gets the exchange-candle branch
  only when raw candles of its timeframe exist (sentinance.exchange_candle_timeframes, asked at
  run time; every branch at parse time).
#}
{%- set ladder = sentinance.candle_timeframe_ladder() -%}
{%- set maintenance_minutes = var('maintenance_min_minutes', 60) | int -%}
{%- set served = sentinance.exchange_candle_timeframes() -%}
{%- set cutoff = sentinance.incremental_cutoff() -%}
{%- set in_changed_days -%}
        inner join changed_days as d
            on {alias}.exchange = d.exchange
            and {alias}.symbol = d.symbol
            and {{ sentinance.bucket_start('{alias}.ts', '1d') }} = d.day
{%- endset -%}
{%- set minutes -%}
    case timeframe
        {%- for l in ladder %}
        when '{{ l["tf"] }}' then {{ l['minutes'] }}
        {%- endfor %}
    end
{%- endset -%}
with exchange_candles as (

    select *
    from {{ ref('stg_candles') }}
    where timeframe in ({% for l in ladder if l['tf'] != '1m' %}'{{ l["tf"] }}'{% if not loop.last %}, {% endif %}{% else %}'-'{% endfor %})

),

markets_with_trades as (

    select distinct exchange, symbol
    from {{ ref('int_candles_1m') }}
    where source = 'trades'

),

flat_source_bars as (

    {#- the bars that enter the ladder (1m bars, exchange candles) and are flat with no volume #}
    select exchange, symbol, '1m' as timeframe, ts, 1 as minutes
    from {{ ref('int_candles_1m') }}
    where {{ sentinance.candle_flat() }}

    union all

    select exchange, symbol, timeframe, ts, {{ minutes }} as minutes
    from exchange_candles
    where {{ sentinance.candle_flat() }}

),

flat_runs as (

    {#- a run = flat bars in consecutive slots of their timeframe (a missing bar ends it) #}
    select
        f.exchange,
        f.symbol,
        f.timeframe,
        f.ts,
        f.minutes,
        sum(f.starts_run) over (
            partition by f.exchange, f.symbol, f.timeframe
            order by f.ts
            rows between unbounded preceding and current row
        ) as run_id
    from (
        select
            b.*,
            case
                when {{ sentinance.epoch_seconds_diff('b.previous_ts', 'b.ts') }} = 60 * b.minutes
                then 0
                else 1
            end as starts_run
        from (
            select
                s.*,
                lag(s.ts) over (partition by s.exchange, s.symbol, s.timeframe order by s.ts)
                    as previous_ts
            from flat_source_bars as s
        ) as b
    ) as f

),

maintenance_bars as (

    select r.exchange, r.symbol, r.timeframe, r.ts
    from flat_runs as r
    inner join (
        select exchange, symbol, timeframe, run_id
        from flat_runs
        group by exchange, symbol, timeframe, run_id
        having sum(minutes) >= {{ maintenance_minutes }}
    ) as long_runs
        on r.exchange = long_runs.exchange
        and r.symbol = long_runs.symbol
        and r.timeframe = long_runs.timeframe
        and r.run_id = long_runs.run_id

),
{%- if cutoff %}

maintenance_changes as (

    {#- source bars whose maintenance status differs from what the table holds #}
    select exchange, symbol, timeframe, ts
    from (
        select exchange, symbol, timeframe, ts from maintenance_bars
        except
        select exchange, symbol, timeframe, ts from {{ this }} where quality like '%maintenance%'
    ) as newly_flagged

    union all

    select exchange, symbol, timeframe, ts
    from (
        select exchange, symbol, timeframe, ts from {{ this }} where quality like '%maintenance%'
        except
        select exchange, symbol, timeframe, ts from maintenance_bars
    ) as no_longer_flagged

),

newly_trading as (

    select exchange, symbol from markets_with_trades
    except
    select distinct exchange, symbol from {{ this }} where source = 'trades'

),

changed_days as (

    select exchange, symbol, {{ sentinance.bucket_start('ts', '1d') }} as day
    from {{ ref('int_candles_1m') }}
    where {{ sentinance.changed_rows_predicate(cutoff) }}

    union

    {#- any raw copy that arrived (a losing or conflicting copy too): read from the raw lake,
        as int_candles_1m does #}
    select
        cast(exchange as {{ dbt.type_string() }}) as exchange,
        cast(symbol as {{ dbt.type_string() }}) as symbol,
        {{ sentinance.bucket_start('cast(ts as ' ~ sentinance.type_timestamp_utc() ~ ')', '1d') }} as day
    from {{ source('raw', 'candles') }}
    where timeframe in ({% for l in ladder %}'{{ l["tf"] }}'{% if not loop.last %}, {% endif %}{% endfor %})
      and {{ sentinance.changed_rows_predicate(cutoff) }}

    union

    select exchange, symbol, {{ sentinance.bucket_start('ts', '1d') }} as day
    from maintenance_changes

    union

    select t.exchange, t.symbol, {{ sentinance.bucket_start('t.ts', '1d') }} as day
    from {{ this }} as t
    inner join newly_trading as n
        on t.exchange = n.exchange
        and t.symbol = n.symbol

),
{%- endif %}
{%- for l in ladder %}
{%- set i = l['id'] %}
{%- if l['tf'] == '1m' %}

level_{{ i }} as (

    select
        c.exchange,
        c.symbol,
        c.base,
        c.quote,
        c.ts,
        c.open,
        c.high,
        c.low,
        c.close,
        c.volume,
        c.quote_volume,
        c.vwap,
        c.trade_count,
        c.source,
        cast(1 as bigint) as source_bars,
        cast(1 as bigint) as covered_minutes,
        c.conflicting,
        c.ingested_at,
        {{ sentinance.candle_implausible('c') }} as is_implausible,
        case when x.exchange is null then false else true end as is_maintenance
    from {{ ref('int_candles_1m') }} as c
    {%- if cutoff %}
    {{ in_changed_days | replace('{alias}', 'c') }}
    {%- endif %}
    left join maintenance_bars as x
        on c.exchange = x.exchange
        and c.symbol = x.symbol
        and c.ts = x.ts
        and x.timeframe = '1m'

),
{%- else %}
{%- set parent = (ladder | selectattr('tf', 'equalto', l['parent']) | first)['id'] %}

rolled_{{ i }} as (

    select
        exchange,
        symbol,
        base,
        quote,
        bucket_ts as ts,
        min_by(open, ts) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, ts) as close,
        {{ sentinance.exact_sum('volume') }} as volume,
        {{ sentinance.exact_sum('quote_volume') }} as quote_volume,
        coalesce(
            {{ sentinance.exact_sum('quote_volume') }} / nullif({{ sentinance.exact_sum('volume') }}, 0),
            (max(high) + min(low) + max_by(close, ts)) / 3
        ) as vwap,
        cast(sum(trade_count) as bigint) as trade_count,
        case when min(source) = max(source) then min(source) else 'mixed' end as source,
        cast(sum(source_bars) as bigint) as source_bars,
        cast(sum(covered_minutes) as bigint) as covered_minutes,
        false as conflicting,
        max(ingested_at) as ingested_at
    from (
        select
            p.*,
            {{ sentinance.bucket_start('p.ts', l['tf']) }} as bucket_ts
        from level_{{ parent }} as p
        where not p.is_implausible
          and not p.is_maintenance
    ) as usable
    group by exchange, symbol, base, quote, bucket_ts

),

level_{{ i }} as (

    select
        r.*,
        {{ sentinance.candle_implausible('r') }} as is_implausible,
        false as is_maintenance
    from rolled_{{ i }} as r
{%- if l['tf'] in served %}

    union all

    {#- the exchange's own candle where no finer bar reached the bucket; only candles aligned
        to the bucket grid #}
    select
        e.exchange,
        e.symbol,
        e.base,
        e.quote,
        e.ts,
        e.open,
        e.high,
        e.low,
        e.close,
        e.volume,
        e.volume * (e.high + e.low + e.close) / 3 as quote_volume,
        (e.high + e.low + e.close) / 3 as vwap,
        cast(null as bigint) as trade_count,
        'exchange_{{ l["tf"] }}' as source,
        cast(1 as bigint) as source_bars,
        cast({{ l['minutes'] }} as bigint) as covered_minutes,
        e.conflicting,
        e.ingested_at,
        {{ sentinance.candle_implausible('e') }} as is_implausible,
        case when x.exchange is null then false else true end as is_maintenance
    from exchange_candles as e
    {%- if cutoff %}
    {{ in_changed_days | replace('{alias}', 'e') }}
    {%- endif %}
    left join rolled_{{ i }} as r
        on e.exchange = r.exchange
        and e.symbol = r.symbol
        and e.ts = r.ts
    left join maintenance_bars as x
        on e.exchange = x.exchange
        and e.symbol = x.symbol
        and e.ts = x.ts
        and x.timeframe = '{{ l["tf"] }}'
    where e.timeframe = '{{ l["tf"] }}'
      and r.exchange is null
      and {{ sentinance.bucket_start('e.ts', l['tf']) }} = e.ts
{%- endif %}

),
{%- endif %}
{%- endfor %}


bars as (
{%- for l in ladder if l['emit'] %}

    select
        b.exchange,
        b.symbol,
        '{{ l["tf"] }}' as timeframe,
        b.ts,
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        b.quote_volume,
        b.vwap,
        b.trade_count,
        b.base,
        b.quote,
        b.ingested_at,
        b.source,
        b.source_bars,
        b.covered_minutes,
        {{ sentinance.flag_list([
            ('b.is_implausible', 'implausible'),
            ('b.is_maintenance', 'maintenance'),
            ('b.conflicting', 'duplicate'),
            ("t.exchange is not null and b.source <> 'trades'", 'filled'),
            ('b.covered_minutes < ' ~ l['minutes'], 'incomplete'),
        ]) }} as quality
    from level_{{ l['id'] }} as b
    left join markets_with_trades as t
        on b.exchange = t.exchange
        and b.symbol = t.symbol
    {%- if not loop.last %}

    union all
    {%- endif %}
{%- endfor %}

)

select * from bars
{%- if cutoff %}

union all

{#- markers for bars of rebuilt days that no longer exist: deleted by the post-hook #}
select
    t.exchange,
    t.symbol,
    t.timeframe,
    t.ts,
    cast(null as {{ sentinance.type_double() }}) as open,
    cast(null as {{ sentinance.type_double() }}) as high,
    cast(null as {{ sentinance.type_double() }}) as low,
    cast(null as {{ sentinance.type_double() }}) as close,
    cast(null as {{ sentinance.type_double() }}) as volume,
    cast(null as {{ sentinance.type_double() }}) as quote_volume,
    cast(null as {{ sentinance.type_double() }}) as vwap,
    cast(null as bigint) as trade_count,
    t.base,
    t.quote,
    cast(null as {{ sentinance.type_timestamp_utc() }}) as ingested_at,
    cast(null as {{ dbt.type_string() }}) as source,
    cast(null as bigint) as source_bars,
    cast(null as bigint) as covered_minutes,
    cast(null as {{ dbt.type_string() }}) as quality
from {{ this }} as t
{{ in_changed_days | replace('{alias}', 't') }}
left join bars as b
    on t.exchange = b.exchange
    and t.symbol = b.symbol
    and t.timeframe = b.timeframe
    and t.ts = b.ts
where b.exchange is null
{%- endif %}
