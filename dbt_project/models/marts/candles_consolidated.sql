{#
  Consolidated cross-venue candle per base asset in USD, one row per (base, timeframe, ts): the
  bars of every venue and quote of that base in marts.candles whose quote has a USD rate
  (quote_usd_rates seed; USDT and USDC count as USD), converted to USD and combined with volume
  weights. open/high/low/close = volume-weighted means of the venues' USD prices (a plain mean
  when the bucket has no volume), so open <= high and low <= close hold per bucket; vwap_usd =
  sum(quote volume in USD) / sum(volume); volume, quote_volume_usd and trade_count are sums
  (trade_count NULL when any venue's bar came from exchange candles; sums are
  order-independent, macros/exact_sum.sql); venue_count = number of
  venue bars combined. symbol is '<base>/USD'. Venue bars flagged implausible or maintenance
  (marts.candles quality) are left out.
#}
with bars as (

    select
        c.base,
        c.timeframe,
        c.ts,
        c.open * r.usd_per_unit as open_usd,
        c.high * r.usd_per_unit as high_usd,
        c.low * r.usd_per_unit as low_usd,
        c.close * r.usd_per_unit as close_usd,
        c.volume,
        c.quote_volume * r.usd_per_unit as quote_volume_usd,
        c.trade_count
    from {{ ref('candles') }} as c
    inner join {{ ref('quote_usd_rates') }} as r
        on c.quote = r.quote
    where {{ sentinance.usable_candle('c.quality') }}

)

select
    base,
    {{ dbt.concat(['base', "'/USD'"]) }} as symbol,
    timeframe,
    ts,
    coalesce(
        {{ sentinance.exact_sum('open_usd * volume') }} / nullif({{ sentinance.exact_sum('volume') }}, 0),
        {{ sentinance.exact_avg('open_usd') }}
    ) as open,
    coalesce(
        {{ sentinance.exact_sum('high_usd * volume') }} / nullif({{ sentinance.exact_sum('volume') }}, 0),
        {{ sentinance.exact_avg('high_usd') }}
    ) as high,
    coalesce(
        {{ sentinance.exact_sum('low_usd * volume') }} / nullif({{ sentinance.exact_sum('volume') }}, 0),
        {{ sentinance.exact_avg('low_usd') }}
    ) as low,
    coalesce(
        {{ sentinance.exact_sum('close_usd * volume') }} / nullif({{ sentinance.exact_sum('volume') }}, 0),
        {{ sentinance.exact_avg('close_usd') }}
    ) as close,
    {{ sentinance.exact_sum('volume') }} as volume,
    {{ sentinance.exact_sum('quote_volume_usd') }} as quote_volume_usd,
    {{ sentinance.exact_sum('quote_volume_usd') }} / nullif({{ sentinance.exact_sum('volume') }}, 0) as vwap_usd,
    case when count(trade_count) = count(*) then {{ sentinance.integer_sum('trade_count') }} end as trade_count,
    count(*) as venue_count
from bars
group by base, timeframe, ts
