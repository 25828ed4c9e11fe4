{#
  Helpers of the candles mart (models/marts/candles.sql): the timeframe ladder and the bar
  quality rules, shared with the tests and the marts that read candles.
#}

{#- The var candle_timeframes as a ladder, finest first: one dict per timeframe with `tf`,
    `minutes`, `parent` (the coarsest finer timeframe of the ladder whose length divides this
    one's: the level its bars are rolled up from; none for 1m) and `emit` (configured, so a row
    of the mart). The 1-minute level is always built, even when not emitted, because trades and
    1m exchange candles enter there. Every timeframe must be a whole number of minutes that the
    bucket_start macro understands (Nm, Nh, 1d). -#}
{% macro candle_timeframe_ladder() -%}
    {%- set configured = var('candle_timeframes', ['1m', '5m', '15m', '1h', '4h', '1d']) -%}
    {%- set by_seconds = {} -%}
    {%- for tf in configured -%}
        {%- set seconds = sentinance.timeframe_seconds(tf) -%}
        {%- if seconds < 60 or seconds % 60 != 0 -%}
            {%- do exceptions.raise_compiler_error(
                "candle_timeframes: '" ~ tf ~ "' is not a whole number of minutes (marts.candles starts at 1m)"
            ) -%}
        {%- endif -%}
        {%- do by_seconds.update({seconds: tf}) -%}
    {%- endfor -%}
    {%- do by_seconds.update({60: '1m'}) -%}
    {%- set ladder = [] -%}
    {%- for seconds in by_seconds.keys() | sort -%}
        {%- set tf = by_seconds[seconds] -%}
        {%- set parents = [] -%}
        {%- for finer in ladder if seconds % (finer['minutes'] * 60) == 0 -%}
            {%- do parents.append(finer['tf']) -%}
        {%- endfor -%}
        {%- do ladder.append({
            'tf': tf,
            'minutes': seconds // 60,
            'parent': parents[-1] if parents else none,
            'emit': tf in configured,
            'id': loop.index,
        }) -%}
    {%- endfor -%}
    {{ return(ladder) }}
{%- endmacro %}

{#- SQL: the length in seconds of the ladder timeframe in `column` (null for any other). -#}
{% macro timeframe_seconds_sql(column='timeframe') -%}
    case {{ column }}
        {%- for l in sentinance.candle_timeframe_ladder() %}
        when '{{ l["tf"] }}' then {{ l['minutes'] * 60 }}
        {%- endfor %}
    end
{%- endmacro %}

{#- The timeframes raw.candles holds, asked at run time, so the candles mart only builds the
    exchange-candle branch of levels that have candles (a trades-only deployment skips them
    all); at parse time (no warehouse) every timeframe of the ladder. Deduplication never
    changes which timeframes exist, so the raw source answers. -#}
{% macro exchange_candle_timeframes() -%}
    {%- set ladder = sentinance.candle_timeframe_ladder() | map(attribute='tf') | list -%}
    {%- if not execute -%}
        {{ return(ladder) }}
    {%- endif -%}
    {%- set result = run_query(
        'select distinct cast(timeframe as ' ~ dbt.type_string() ~ ') as timeframe from '
        ~ source('raw', 'candles')
    ) -%}
    {%- set present = result.columns[0].values() | list -%}
    {{ return(ladder | select('in', present) | list) }}
{%- endmacro %}

{#- A bar no price series should use: a non-positive or missing price, inconsistent OHLC, a
    negative or missing volume, or a wick implausibly far from the close (high above
    var implausible_ratio (4) times the close, or low below the close divided by it). -#}
{% macro candle_implausible(alias='') -%}
    {%- set p = alias ~ '.' if alias else '' -%}
    {%- set ratio = var('implausible_ratio', 4) -%}
    (
        {{ p }}open is null or {{ p }}high is null or {{ p }}low is null or {{ p }}close is null
        or {{ p }}volume is null
        or {{ p }}open <= 0 or {{ p }}high <= 0 or {{ p }}low <= 0 or {{ p }}close <= 0
        or {{ p }}volume < 0
        or {{ p }}high < {{ p }}low
        or {{ p }}high < {{ p }}open or {{ p }}high < {{ p }}close
        or {{ p }}low > {{ p }}open or {{ p }}low > {{ p }}close
        or {{ p }}high > {{ ratio }} * {{ p }}close
        or {{ p }}low < {{ p }}close / {{ ratio }}
    )
{%- endmacro %}

{#- A flat, zero-volume bar (open = high = low = close, volume 0): what an exchange serves for a
    period without trading, at the last price. A run of them lasting at least
    var maintenance_min_minutes (60) is flagged `maintenance`. -#}
{% macro candle_flat(alias='') -%}
    {%- set p = alias ~ '.' if alias else '' -%}
    coalesce(
        {{ p }}open = {{ p }}high and {{ p }}high = {{ p }}low and {{ p }}low = {{ p }}close
        and {{ p }}volume = 0,
        false
    )
{%- endmacro %}

{#- The bars prices, returns and indicators may use: not flagged implausible or maintenance. -#}
{% macro usable_candle(quality='quality') -%}
    ({{ quality }} not like '%implausible%' and {{ quality }} not like '%maintenance%')
{%- endmacro %}

{#- 'ok', or the comma-separated names whose condition holds, in the order given:
    flag_list([('c.is_implausible', 'implausible'), ...]). -#}
{% macro flag_list(flags) -%}
    {%- set parts = [] -%}
    {%- for cond, name in flags -%}
        {%- do parts.append("case when " ~ cond ~ " then '," ~ name ~ "' else '' end") -%}
    {%- endfor -%}
    case
        when {% for cond, name in flags %}({{ cond }}){% if not loop.last %} or {% endif %}{% endfor %}
        then substring({{ dbt.concat(parts) }}, 2)
        else 'ok'
    end
{%- endmacro %}
