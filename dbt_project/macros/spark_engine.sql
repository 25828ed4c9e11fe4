{#
  What it takes to build this project on Apache Spark (dbt-spark, `session` method: local PySpark;
  sentinance_assets/lib/spark.py drives it). The models stay the same on both engines; engine SQL
  sits in dispatched macros (spark__ next to duckdb__ in types.sql, timeframes.sql,
  split_to_rows.sql, incremental.sql). This file holds the adapter glue:

  * spark__dateadd and spark__split_part override dbt-spark's versions of dbt's cross-database
    macros (dbt_project.yml `dispatch` puts this project first in the `dbt` namespace; DuckDB
    is unaffected: only spark__ variants are defined here). dbt-spark's dateadd goes through
    to_unix_timestamp, which drops the fraction of a second (an incremental watermark such as
    02:00:00.123 would lose its milliseconds), and raises on NULL; its split_part compares the
    part number with 0 in Jinja, so it cannot take a column (split_to_rows' numbers table).
  * The `delete+insert` incremental strategy, which dbt-spark does not offer: DuckDB deletes the
    rebuilt buckets and inserts their new rows; a plain Parquet table on Spark supports neither
    DELETE nor MERGE (both need Delta Lake or Iceberg, whose jars are not on PyPI). Here the
    new rows are cached once, the table is rewritten as (old rows whose key is not among the new
    rows) + (new rows), and swapped in. The incremental models therefore compute only the
    changed buckets on Spark too (the expensive part: reading and aggregating trades); the
    swap copies the model's own table, which is fine for a single machine and the equality
    tests and is the first thing to replace (Delta MERGE) on a cluster.
#}

{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    {%- set units = {
        'microsecond': 'MICROSECOND', 'millisecond': 'MILLISECOND', 'second': 'SECOND',
        'minute': 'MINUTE', 'hour': 'HOUR', 'day': 'DAY', 'week': 'WEEK', 'month': 'MONTH',
        'quarter': 'QUARTER', 'year': 'YEAR'
    } -%}
    {%- if datepart | lower not in units -%}
        {%- do exceptions.raise_compiler_error("dateadd: unknown datepart '" ~ datepart ~ "'") -%}
    {%- endif -%}
    timestampadd({{ units[datepart | lower] }}, {{ interval }}, {{ from_date_or_timestamp }})
{%- endmacro %}

{#- Positive part numbers (1 = first element), a literal or a column; NULL past the last part.
    split takes a regular expression: the delimiter is quoted with \Q...\E. -#}
{% macro spark__split_part(string_text, delimiter_text, part_number) -%}
    element_at(split({{ string_text }}, concat('\\Q', {{ delimiter_text }}, '\\E'), -1), {{ part_number }})
{%- endmacro %}

{#- dbt-spark's validation, plus `delete+insert` (see above). -#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy == 'delete+insert' -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt_spark.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{%- endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
    {%- if strategy == 'delete+insert' -%}
        {{ return(sentinance.spark_delete_insert_sql(source, target, unique_key)) }}
    {%- endif -%}
    {{ return(dbt_spark.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
{%- endmacro %}

{#- Runs the rewrite and returns the statement the materialization runs as `main` (a REFRESH
    of the swapped-in table). Rows of the target whose key equals a new row's key are replaced,
    as DuckDB's `delete ... using` does (a NULL key never matches). -#}
{% macro spark_delete_insert_sql(source, target, unique_key) -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- if not keys -%}
        {%- do exceptions.raise_compiler_error("delete+insert needs a unique_key (" ~ target ~ ")") -%}
    {%- endif -%}
    {%- set merged = target.incorporate(path={'identifier': target.identifier ~ '__dbt_merged'}, type='table') -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
    {%- do run_query('drop table if exists ' ~ merged) -%}
    {#- the new rows are computed once: the model's query reads the target itself -#}
    {%- do run_query('cache table ' ~ source) -%}
    {%- call statement('sentinance_delete_insert') -%}
        create table {{ merged }} using parquet as
        select {{ columns }}
        from {{ target }} as dbt_old
        where not exists (
            select 1 from {{ source }} as dbt_new
            where {% for k in keys %}dbt_new.{{ k }} = dbt_old.{{ k }}{% if not loop.last %} and {% endif %}{% endfor %}
        )
        union all
        select {{ columns }} from {{ source }}
    {%- endcall -%}
    {%- do run_query('uncache table if exists ' ~ source) -%}
    {%- do adapter.drop_relation(target.incorporate(type='table')) -%}
    {%- do adapter.rename_relation(merged, target) -%}
    {{ return('refresh table ' ~ target) }}
{%- endmacro %}
