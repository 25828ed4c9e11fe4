{#
  Higher-timeframe bars of marts.candles agree with the usable 1m bars they cover, with buckets
  recomputed independently of the bucket_start macro (epoch arithmetic):

  * every bucket holding a usable 1m bar has a bar at every timeframe (the finest source wins),
    unless a finer bar of the bucket was itself flagged implausible or maintenance;
  * a bar whose covered_minutes equals the bucket's usable 1m bars (it came from them alone)
    equals their roll-up: open = first 1m open, close = last 1m close, high/low = extremes,
    volume/quote_volume/trade_count = sums.

  Returns the disagreeing buckets. Bars built from exchange candles of coarser timeframes have
  no 1m bars to agree with and are not checked here.
#}
{%- set ladder = sentinance.candle_timeframe_ladder() -%}
with minute_bars as (

    select
        exchange,
        symbol,
        ts,
        {{ sentinance.epoch_seconds('ts') }} as ts_epoch,
        open,
        high,
        low,
        close,
        volume,
        quote_volume,
        trade_count
    from {{ ref('candles') }}
    where timeframe = '1m'
      and {{ sentinance.usable_candle('quality') }}

),

excluded_bars as (

    select
        exchange,
        symbol,
        {{ sentinance.epoch_seconds('ts') }} as ts_epoch,
        {{ sentinance.timeframe_seconds_sql() }} as bar_seconds
    from {{ ref('candles') }}
    where not {{ sentinance.usable_candle('quality') }}

),

expected as (
{%- for l in ladder if l['emit'] and l['tf'] != '1m' %}
    {%- set width = l['minutes'] * 60 %}
    select
        exchange,
        symbol,
        '{{ l["tf"] }}' as timeframe,
        floor(ts_epoch / {{ width }}) * {{ width }} as bucket_epoch,
        count(*) as n_1m,
        min_by(open, ts) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, ts) as close,
        sum(volume) as volume,
        sum(quote_volume) as quote_volume,
        sum(trade_count) as trade_count
    from minute_bars
    group by exchange, symbol, floor(ts_epoch / {{ width }}) * {{ width }}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}

),

excused as (
{%- for l in ladder if l['emit'] and l['tf'] != '1m' %}
    {%- set width = l['minutes'] * 60 %}
    select distinct
        exchange,
        symbol,
        '{{ l["tf"] }}' as timeframe,
        floor(ts_epoch / {{ width }}) * {{ width }} as bucket_epoch
    from excluded_bars
    where bar_seconds < {{ width }}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}

),

actual as (

    select
        exchange,
        symbol,
        timeframe,
        {{ sentinance.epoch_seconds('ts') }} as bucket_epoch,
        covered_minutes,
        open,
        high,
        low,
        close,
        volume,
        quote_volume,
        trade_count
    from {{ ref('candles') }}
    where timeframe <> '1m'

)

select
    e.exchange,
    e.symbol,
    e.timeframe,
    e.bucket_epoch,
    e.open as expected_open,
    a.open as actual_open,
    e.volume as expected_volume,
    a.volume as actual_volume
from expected as e
left join actual as a
    on e.exchange = a.exchange
    and e.symbol = a.symbol
    and e.timeframe = a.timeframe
    and e.bucket_epoch = a.bucket_epoch
left join excused as x
    on e.exchange = x.exchange
    and e.symbol = x.symbol
    and e.timeframe = x.timeframe
    and e.bucket_epoch = x.bucket_epoch
where (a.exchange is null and x.exchange is null)
   or (
        a.covered_minutes = e.n_1m
        and (
            e.open <> a.open
            or e.high <> a.high
            or e.low <> a.low
            or e.close <> a.close
            or abs(e.volume - a.volume) > 1e-9 * greatest(abs(e.volume), 1)
            or abs(e.quote_volume - a.quote_volume) > 1e-9 * greatest(abs(e.quote_volume), 1)
            or coalesce(e.trade_count, -1) <> coalesce(a.trade_count, -1)
        )
   )
