{#
  Every higher-timeframe bar of marts.candles agrees with the 1m bars it covers, with buckets
  recomputed independently of the bucket_start macro (epoch arithmetic): open = first 1m open,
  close = last 1m close, high/low = extremes, volume/quote_volume/trade_count = sums; and every
  1m bar is covered by exactly one bar of each timeframe. Returns the disagreeing buckets.
#}
{%- set timeframes = var('candle_timeframes', ['1m', '5m', '15m', '1h', '4h', '1d']) -%}
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

),

expected as (
{%- for tf in timeframes if tf != '1m' %}
    {%- set width = sentinance.timeframe_seconds(tf) %}
    select
        exchange,
        symbol,
        '{{ tf }}' as timeframe,
        floor(ts_epoch / {{ width }}) * {{ width }} as bucket_epoch,
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

actual as (

    select
        exchange,
        symbol,
        timeframe,
        {{ sentinance.epoch_seconds('ts') }} as bucket_epoch,
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
    coalesce(e.exchange, a.exchange) as exchange,
    coalesce(e.symbol, a.symbol) as symbol,
    coalesce(e.timeframe, a.timeframe) as timeframe,
    coalesce(e.bucket_epoch, a.bucket_epoch) as bucket_epoch,
    e.open as expected_open,
    a.open as actual_open,
    e.volume as expected_volume,
    a.volume as actual_volume
from expected as e
full outer join actual as a
    on e.exchange = a.exchange
    and e.symbol = a.symbol
    and e.timeframe = a.timeframe
    and e.bucket_epoch = a.bucket_epoch
where e.exchange is null
   or a.exchange is null
   or e.open <> a.open
   or e.high <> a.high
   or e.low <> a.low
   or e.close <> a.close
   or abs(e.volume - a.volume) > 1e-9 * greatest(abs(e.volume), 1)
   or abs(e.quote_volume - a.quote_volume) > 1e-9 * greatest(abs(e.quote_volume), 1)
   or coalesce(e.trade_count, -1) <> coalesce(a.trade_count, -1)
