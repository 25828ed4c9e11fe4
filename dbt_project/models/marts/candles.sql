{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['exchange', 'symbol', 'timeframe', 'ts'],
    on_schema_change='fail',
    post_hook=[
        "{% if is_incremental() %}delete from {{ this }} where trade_count is null and {{ sentinance.market_key() }} in (select distinct {{ sentinance.market_key() }} from {{ ref('int_candles_1m') }} where bar_source = 'trades'){% endif %}"
    ]
) }}
{#
  OHLCV bars per (exchange, symbol, timeframe, ts) for every timeframe of var candle_timeframes
  (1m, 5m, 15m, 1h, 4h, 1d), all rolled up from int_candles_1m. ts is the bar open time (UTC);
  buckets come from the bucket_start macro. open/close = first/last 1m bar of the bucket,
  high/low = extremes, volume/quote_volume/trade_count = sums, vwap = quote_volume / volume.
  Higher-timeframe bars exist only for buckets with at least one 1m bar; the last bar of each
  series may be incomplete (still forming). ingested_at (trailing, not part of the analyst
  contract) = latest arrival of the data behind the bar.

  Incremental (macros/incremental.sql): for each timeframe, the buckets containing a 1m bar
  that changed since the watermark minus the lookback (or inside the run window) are rebuilt
  from all of their 1m bars. The post-hook drops candle-sourced bars of a market that has
  gained trades (int_candles_1m dropped their minutes), as a full refresh would.
#}
{%- set timeframes = var('candle_timeframes', ['1m', '5m', '15m', '1h', '4h', '1d']) -%}
{%- set cutoff = sentinance.incremental_cutoff() %}
with minute_bars as (

    select * from {{ ref('int_candles_1m') }}

){% if cutoff %},

changed_minutes as (

    select exchange, symbol, ts
    from minute_bars
    where {{ sentinance.changed_rows_predicate(cutoff) }}

){% endif %}{% for tf in timeframes %},

bucketed_{{ loop.index }} as (

    select
        m.*,
        {{ sentinance.bucket_start('m.ts', tf) }} as bucket_ts
    from minute_bars as m
    {%- if cutoff %}
    inner join (
        select distinct exchange, symbol, {{ sentinance.bucket_start('ts', tf) }} as bucket_ts
        from changed_minutes
    ) as changed
        on m.exchange = changed.exchange
        and m.symbol = changed.symbol
        and {{ sentinance.bucket_start('m.ts', tf) }} = changed.bucket_ts
    {%- endif %}

),

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
        quote,
        ingested_at
    from bucketed_{{ loop.index }}
{%- else %}

    select
        exchange,
        symbol,
        '{{ tf }}' as timeframe,
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
        base,
        quote,
        max(ingested_at) as ingested_at
    from bucketed_{{ loop.index }}
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
    quote,
    ingested_at
from bars_{{ loop.index }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
