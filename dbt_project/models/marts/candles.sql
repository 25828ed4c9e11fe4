{#
  OHLCV bars per (exchange, symbol, timeframe, ts) for every timeframe of var candle_timeframes
  (1m, 5m, 15m, 1h, 4h, 1d), all rolled up from int_candles_1m. ts is the bar open time (UTC);
  buckets come from the bucket_start macro. open/close = first/last 1m bar of the bucket,
  high/low = extremes, volume/quote_volume/trade_count = sums, vwap = quote_volume / volume.
  Higher-timeframe bars exist only for buckets with at least one 1m bar; the last bar of each
  series may be incomplete (still forming).
#}
{%- set timeframes = var('candle_timeframes', ['1m', '5m', '15m', '1h', '4h', '1d']) -%}
with minute_bars as (

    select * from {{ ref('int_candles_1m') }}

){% for tf in timeframes %},

bars_{{ loop.index }} as (
{%- if tf == '1m' %}

    select
        exchange,
        symbol,
        '1m' as timeframe,
        ts,
        open,
        high,
        low,
        close,
        volume,
        quote_volume,
        vwap,
        trade_count,
        base,
        quote
    from minute_bars
{%- else %}

    select
        exchange,
        symbol,
        '{{ tf }}' as timeframe,
        bucket_ts as ts,
        min_by(open, minute_ts) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, minute_ts) as close,
        sum(volume) as volume,
        sum(quote_volume) as quote_volume,
        coalesce(
            sum(quote_volume) / nullif(sum(volume), 0),
            (max(high) + min(low) + max_by(close, minute_ts)) / 3
        ) as vwap,
        cast(sum(trade_count) as bigint) as trade_count,
        base,
        quote
    from (
        select
            exchange,
            symbol,
            base,
            quote,
            {{ sentinance.bucket_start('ts', tf) }} as bucket_ts,
            ts as minute_ts,
            open,
            high,
            low,
            close,
            volume,
            quote_volume,
            trade_count
        from minute_bars
    ) as bucketed
    group by exchange, symbol, base, quote, bucket_ts
{%- endif %}

){% endfor %}

{% for tf in timeframes %}
select
    exchange,
    symbol,
    timeframe,
    ts,
    open,
    high,
    low,
    close,
    volume,
    quote_volume,
    vwap,
    trade_count,
    base,
    quote
from bars_{{ loop.index }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
