{#
  A composite ordering key for min_by / max_by: "first/last value by (ts, trade_id)" in one
  aggregate, without a window pass. Struct values compare field by field on both engines.
  DuckDB: row(a, b); Spark and most others: struct(a, b). Measured in DuckDB over 3 M rows:
  min_by(x, row(ts, id)) 4.6 s against 12.4 s for a row_number() window plus min_by.
#}
{% macro order_key(columns) -%}
    {{ return(adapter.dispatch('order_key', 'sentinance')(columns)) }}
{%- endmacro %}

{% macro default__order_key(columns) -%}
    struct({{ columns | join(', ') }})
{%- endmacro %}

{% macro duckdb__order_key(columns) -%}
    row({{ columns | join(', ') }})
{%- endmacro %}
