{#
  Completeness and quality of the candles, one row per (exchange, symbol, timeframe) present in
  marts.candles: the span from the first to the last bar, how many bars that span should hold,
  how many there are and what is wrong with them.

  * expected_bars = bars between first_bar_ts and last_bar_ts inclusive at the timeframe's
    length; missing_bars = expected - present (no bar: no trades, no exchange candle, nothing
    finer); gap_count = runs of missing bars, longest_gap_bars = the longest;
  * trade_bars: bars built from trades only; filled_bars: built (partly) from exchange candles
    in a market that has trades (quality 'filled');
  * maintenance_bars, implausible_bars, incomplete_bars: bars with that quality flag;
    usable_bars = bars neither implausible nor maintenance (what indicators and returns use);
  * duplicate_bars: exchange candles of this timeframe whose raw copies disagree (stg_candles),
    whether or not a finer source won the bar;
  * indicator_gap_rows: marts.indicators rows of the series whose indicators are (partly) NULL
    because their window would span missing or excluded bars (null_reason 'gap');
  * completeness_pct = 100 * usable_bars / expected_bars.
#}
with ordered as (

    select
        exchange,
        symbol,
        timeframe,
        base,
        quote,
        ts,
        source,
        quality,
        lag(ts) over (partition by exchange, symbol, timeframe order by ts) as previous_ts
    from {{ ref('candles') }}

),

bars as (

    select
        o.*,
        {{ sentinance.timeframe_seconds_sql() }} as bar_seconds,
        {{ sentinance.epoch_seconds_diff('previous_ts', 'ts') }} as seconds_since_previous
    from ordered as o

),

per_series as (

    select
        exchange,
        symbol,
        timeframe,
        min(base) as base,
        min(quote) as quote,
        max(bar_seconds) as bar_seconds,
        min(ts) as first_bar_ts,
        max(ts) as last_bar_ts,
        cast(count(*) as bigint) as present_bars,
        cast(sum(case when source = 'trades' then 1 else 0 end) as bigint) as trade_bars,
        cast(sum(case when quality like '%filled%' then 1 else 0 end) as bigint) as filled_bars,
        cast(sum(case when quality like '%maintenance%' then 1 else 0 end) as bigint) as maintenance_bars,
        cast(sum(case when quality like '%implausible%' then 1 else 0 end) as bigint) as implausible_bars,
        cast(sum(case when quality like '%incomplete%' then 1 else 0 end) as bigint) as incomplete_bars,
        cast(sum(case when {{ sentinance.usable_candle('quality') }} then 1 else 0 end) as bigint) as usable_bars,
        cast(sum(case when seconds_since_previous > bar_seconds then 1 else 0 end) as bigint) as gap_count,
        coalesce(
            max(case when seconds_since_previous > bar_seconds then seconds_since_previous end),
            0
        ) as longest_gap_seconds
    from bars
    group by exchange, symbol, timeframe

),

duplicates as (

    select exchange, symbol, timeframe, cast(count(*) as bigint) as duplicate_bars
    from {{ ref('stg_candles') }}
    where conflicting
    group by exchange, symbol, timeframe

),

indicator_gaps as (

    select exchange, symbol, timeframe, cast(count(*) as bigint) as indicator_gap_rows
    from {{ ref('indicators') }}
    where null_reason = 'gap'
    group by exchange, symbol, timeframe

),

counted as (

    select
        s.*,
        cast(
            {{ sentinance.epoch_seconds_diff('s.first_bar_ts', 's.last_bar_ts') }} / s.bar_seconds
            as bigint
        ) + 1 as expected_bars
    from per_series as s

)

select
    c.exchange,
    c.symbol,
    c.timeframe,
    c.base,
    c.quote,
    c.first_bar_ts,
    c.last_bar_ts,
    c.expected_bars,
    c.present_bars,
    c.expected_bars - c.present_bars as missing_bars,
    c.gap_count,
    cast(case when c.longest_gap_seconds > 0 then c.longest_gap_seconds / c.bar_seconds - 1 else 0 end as bigint)
        as longest_gap_bars,
    c.trade_bars,
    c.filled_bars,
    c.maintenance_bars,
    c.implausible_bars,
    coalesce(d.duplicate_bars, 0) as duplicate_bars,
    c.incomplete_bars,
    c.usable_bars,
    coalesce(g.indicator_gap_rows, 0) as indicator_gap_rows,
    {#- a double on every engine (100.0 is a DECIMAL literal: Spark would keep a DECIMAL) #}
    100 * cast(c.usable_bars as {{ sentinance.type_double() }}) / c.expected_bars as completeness_pct
from counted as c
left join duplicates as d
    on c.exchange = d.exchange
    and c.symbol = d.symbol
    and c.timeframe = d.timeframe
left join indicator_gaps as g
    on c.exchange = g.exchange
    and c.symbol = g.symbol
    and c.timeframe = g.timeframe
