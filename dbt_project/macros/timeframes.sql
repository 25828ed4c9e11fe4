{#
  Time bucketing. `timeframe` is a compile-time literal such as '30s', '5m', '1h', '4h', '1d';
  a bucket is labelled by its open time, aligned to the UTC epoch day (so '4h' buckets open at
  00:00, 04:00, ... UTC and '1d' at midnight UTC).
#}

{% macro parse_timeframe(timeframe) -%}
    {#- returns {'n': int, 'unit': 'second'|'minute'|'hour'|'day', 'seconds': int} -#}
    {%- set tf = timeframe | string | trim | lower -%}
    {%- set units = {'s': ('second', 1, 60), 'm': ('minute', 60, 60), 'h': ('hour', 3600, 24), 'd': ('day', 86400, 1)} -%}
    {%- set suffix = tf[-1:] -%}
    {%- set digits = tf[:-1] -%}
    {%- if suffix not in units or not digits.isdigit() -%}
        {%- do exceptions.raise_compiler_error("bucket_start: cannot parse timeframe '" ~ timeframe ~ "'") -%}
    {%- endif -%}
    {%- set n = digits | int -%}
    {%- set unit, unit_seconds, per_parent = units[suffix] -%}
    {%- if n < 1 or per_parent % n != 0 -%}
        {%- do exceptions.raise_compiler_error("bucket_start: timeframe '" ~ timeframe ~ "' must divide its parent unit evenly") -%}
    {%- endif -%}
    {{ return({'n': n, 'unit': unit, 'seconds': n * unit_seconds}) }}
{%- endmacro %}

{% macro timeframe_seconds(timeframe) -%}
    {{ return(sentinance.parse_timeframe(timeframe)['seconds']) }}
{%- endmacro %}

{% macro bucket_start(ts, timeframe) -%}
    {{ return(adapter.dispatch('bucket_start', 'sentinance')(ts, timeframe)) }}
{%- endmacro %}

{#- Portable: date_trunc to the unit, or to the parent unit plus a whole number of units. -#}
{% macro default__bucket_start(ts, timeframe) -%}
    {%- set tf = sentinance.parse_timeframe(timeframe) -%}
    {%- set parent = {'second': 'minute', 'minute': 'hour', 'hour': 'day', 'day': none}[tf['unit']] -%}
    {%- if tf['n'] == 1 or parent is none -%}
        {{ dbt.date_trunc(tf['unit'], ts) }}
    {%- else -%}
        {{ dbt.dateadd(
            tf['unit'],
            'cast(floor(extract(' ~ tf['unit'] ~ ' from ' ~ ts ~ ') / ' ~ tf['n'] ~ ') * ' ~ tf['n'] ~ ' as bigint)',
            dbt.date_trunc(parent, ts)
        ) }}
    {%- endif -%}
{%- endmacro %}

{#- DuckDB: integer arithmetic on epoch microseconds, floored (so also right before 1970).
    Measured over 10M TIMESTAMPTZ values: 0.1 s, against 2.0 s for date_trunc and 0.5 s for
    time_bucket, which both go through the ICU time-zone calendar even when the zone is UTC.
    The UTC epoch is a day boundary, so buckets align as documented above. -#}
{% macro duckdb__bucket_start(ts, timeframe) -%}
    {%- set us = sentinance.parse_timeframe(timeframe)['seconds'] * 1000000 -%}
    make_timestamptz(epoch_us({{ ts }}) - (epoch_us({{ ts }}) % {{ us }} + {{ us }}) % {{ us }})
{%- endmacro %}

{#- Spark: the same floored integer arithmetic on epoch microseconds as DuckDB (pmod is
    non-negative, so also right before 1970). The default's dbt.dateadd would work too (with
    this project's spark__dateadd), at the cost of a date_trunc and an extract per row. -#}
{% macro spark__bucket_start(ts, timeframe) -%}
    {%- set us = sentinance.parse_timeframe(timeframe)['seconds'] * 1000000 -%}
    timestamp_micros(unix_micros({{ ts }}) - pmod(unix_micros({{ ts }}), {{ us }}))
{%- endmacro %}
