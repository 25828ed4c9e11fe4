{#
  Type names that differ by engine. A UTC instant is TIMESTAMPTZ in DuckDB (the session
  TimeZone is pinned to UTC in profiles.yml); engines whose plain TIMESTAMP is already an
  instant (Spark) use that.
#}
{% macro type_timestamp_utc() -%}
    {{ return(adapter.dispatch('type_timestamp_utc', 'sentinance')()) }}
{%- endmacro %}

{% macro default__type_timestamp_utc() -%}
    timestamp
{%- endmacro %}

{% macro duckdb__type_timestamp_utc() -%}
    timestamptz
{%- endmacro %}

{# 64-bit float everywhere (dbt.type_float() is 32-bit on some engines). #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'sentinance')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double
{%- endmacro %}

{#
  Seconds from `start_ts` to `end_ts` as a double. dbt.datediff counts unit boundaries crossed
  (and differs by engine), which is exact for whole-second timestamps only; DuckDB has epoch().
#}
{% macro epoch_seconds_diff(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('epoch_seconds_diff', 'sentinance')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds_diff(start_ts, end_ts) -%}
    cast({{ dbt.datediff(start_ts, end_ts, 'second') }} as {{ sentinance.type_double() }})
{%- endmacro %}

{% macro duckdb__epoch_seconds_diff(start_ts, end_ts) -%}
    (epoch({{ end_ts }}) - epoch({{ start_ts }}))
{%- endmacro %}

{#- Spark: the same arithmetic as DuckDB's epoch() (microseconds / 1e6 as a double, then the
    difference), so results agree to the bit; dbt-spark's datediff counts whole seconds. -#}
{% macro spark__epoch_seconds_diff(start_ts, end_ts) -%}
    ({{ sentinance.spark__epoch_seconds(end_ts) }} - {{ sentinance.spark__epoch_seconds(start_ts) }})
{%- endmacro %}

{# Seconds since the Unix epoch as a double. #}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'sentinance')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    cast({{ dbt.datediff("cast('1970-01-01 00:00:00' as " ~ sentinance.type_timestamp_utc() ~ ")", ts, 'second') }} as {{ sentinance.type_double() }})
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    epoch({{ ts }})
{%- endmacro %}

{% macro spark__epoch_seconds(ts) -%}
    (cast(unix_micros({{ ts }}) as double) / 1000000)
{%- endmacro %}
