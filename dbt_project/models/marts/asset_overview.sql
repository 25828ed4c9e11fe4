{#
  One row per base asset traded on any venue, for the markets page (one query, no joins).
  "Now" is the asset's latest bar (as_of), not the wall clock, so the figures are
  reproducible and meaningful on replayed or simulated history. Each market contributes the bars
  of its finest timeframe in marts.candles (1m wherever it has trades or 1m candles; 1h for an
  hourly replay), so no market is counted twice and a market without 1m data still shows. The
  rolling window is the var overview_window_hours (default 24) hours of those bars ending with
  as_of, across all venues and quotes, converted to USD with the quote_usd_rates seed (markets
  whose quote has no rate are left out, and so are bars flagged implausible or maintenance):
  * last_price_usd: USD close of the most recent bar across venues (ties: exchange, symbol);
  * change_24h_pct: last_price_usd against the USD open of the window's first bar (the price
    24 h earlier when history is complete; window_hours tells how much history there was);
  * volume_24h_usd: sum of USD quote volume of the window's bars;
  * max_abs_spread_pct_24h: largest |spread_pct| among the window's cross-venue spreads;
  * sentiment_*: the asset's latest day in news_sentiment_daily with at least one scored item
    (the latest day with news when none was scored).
#}
{%- set window_hours = var('overview_window_hours', 24) | int -%}
{%- set ladder = sentinance.candle_timeframe_ladder() -%}
with timeframe_minutes as (

    {%- for l in ladder if l['emit'] %}
    select '{{ l["tf"] }}' as timeframe, {{ l['minutes'] }} as minutes
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

finest as (

    select c.exchange, c.symbol, min(t.minutes) as minutes
    from {{ ref('candles') }} as c
    inner join timeframe_minutes as t
        on c.timeframe = t.timeframe
    group by c.exchange, c.symbol

),

bars_usd as (

    select
        c.base,
        c.exchange,
        c.symbol,
        c.ts,
        f.minutes,
        c.open * r.usd_per_unit as open_usd,
        c.close * r.usd_per_unit as close_usd,
        c.quote_volume * r.usd_per_unit as quote_volume_usd
    from {{ ref('candles') }} as c
    inner join timeframe_minutes as t
        on c.timeframe = t.timeframe
    inner join finest as f
        on c.exchange = f.exchange
        and c.symbol = f.symbol
        and t.minutes = f.minutes
    inner join {{ ref('quote_usd_rates') }} as r
        on c.quote = r.quote
    where {{ sentinance.usable_candle('c.quality') }}

),

as_of as (

    select
        base,
        max(ts) as as_of,
        {{ dbt.dateadd('hour', -window_hours, 'max(ts)') }} as window_floor
    from bars_usd
    group by base

),

in_window as (

    select m.*
    from bars_usd as m
    inner join as_of as a
        on m.base = a.base
        and m.ts > a.window_floor

),

ranked as (

    select
        base,
        exchange,
        symbol,
        ts,
        minutes,
        open_usd,
        close_usd,
        quote_volume_usd,
        row_number() over (partition by base order by ts desc, exchange, symbol) as recency_rank,
        row_number() over (partition by base order by ts, exchange, symbol) as age_rank
    from in_window

),

prices as (

    select
        base,
        max(case when recency_rank = 1 then close_usd end) as last_price_usd,
        max(case when recency_rank = 1 then exchange end) as last_price_exchange,
        max(case when recency_rank = 1 then symbol end) as last_price_symbol,
        max(case when recency_rank = 1 then minutes end) as last_bar_minutes,
        max(case when age_rank = 1 then open_usd end) as window_open_usd,
        min(ts) as window_start_ts,
        {{ sentinance.exact_sum('quote_volume_usd') }} as volume_24h_usd,
        count(distinct exchange) as venue_count,
        count(distinct symbol) as market_count
    from ranked
    group by base

),

spreads as (

    select
        s.base,
        max(abs(s.spread_pct)) as max_abs_spread_pct_24h
    from {{ ref('spreads') }} as s
    inner join as_of as a
        on s.base = a.base
        and s.window_start > a.window_floor
    group by s.base

),

sentiment as (

    select
        base,
        day,
        news_count,
        scored_count,
        mean_score,
        share_positive,
        share_negative
    from {{ ref('news_sentiment_daily') }}
    qualify row_number() over (
        partition by base
        order by case when scored_count > 0 then 1 else 0 end desc, day desc
    ) = 1

)

select
    p.base,
    a.as_of,
    p.last_price_usd,
    p.last_price_exchange,
    p.last_price_symbol,
    100 * (p.last_price_usd - p.window_open_usd) / nullif(p.window_open_usd, 0) as change_24h_pct,
    p.volume_24h_usd,
    sp.max_abs_spread_pct_24h,
    p.venue_count,
    p.market_count,
    p.window_start_ts,
    {{ sentinance.epoch_seconds_diff('p.window_start_ts', 'a.as_of') }} / 3600.0
        {#- a double division (integer / 60.0 is DECIMAL arithmetic on Spark, rounded) #}
        + cast(p.last_bar_minutes as {{ sentinance.type_double() }}) / 60 as window_hours,
    se.day as sentiment_day,
    se.news_count as sentiment_news_count,
    se.scored_count as sentiment_scored_count,
    se.mean_score as sentiment_mean_score,
    se.share_positive as sentiment_share_positive,
    se.share_negative as sentiment_share_negative
from prices as p
inner join as_of as a
    on p.base = a.base
left join spreads as sp
    on p.base = sp.base
left join sentiment as se
    on p.base = se.base
