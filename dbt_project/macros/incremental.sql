{#
  Incremental processing, shared by the large models (stg_trades, int_candles_1m,
  int_venue_vwap_usd, candles).

  Every incremental model carries `ingested_at` = the latest lake arrival time of the data
  behind the row (for a bar: max over its trades). Its maximum in the existing table is the
  model's watermark. An incremental run recomputes, from the full upstream, every *bucket*
  (trade key, minute, 30 s window, candle bucket) that holds at least one upstream row with
  `ingested_at >= watermark - late_data_lookback_minutes`, and replaces those buckets
  (delete+insert on the model's grain). So:

  * trades arriving late in event time (ts hours or days back) are picked up, whatever their
    ts, because selection is by arrival time;
  * the lookback covers arrival-clock skew: rows stamped up to `late_data_lookback_minutes`
    before the watermark but landed after the previous run (parallel ingest writers) are still
    seen. Rows stamped earlier than that are missed until a `--full-refresh`.

  Vars `start_ts` / `end_ts` (ISO timestamps, UTC; a Dagster partitioned run passes its time
  window) add every bucket with event time in [start_ts, end_ts) to the recomputed set. They only
  widen an incremental run; a full refresh always builds everything.
#}

{#- The cutoff as a SQL timestamp literal, or none when the run is not incremental (first run,
    --full-refresh, or an empty table): callers then build everything. -#}
{% macro incremental_cutoff(column='ingested_at') -%}
    {%- if not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- if column | lower not in existing -%}
        {#- a table built before the watermark column existed: say what to do, rather than let
            the watermark query fail with the engine's binder error -#}
        {%- do exceptions.raise_compiler_error(
            this ~ " has no column '" ~ column ~ "' (built by an older version of the project): "
            ~ "rebuild it once with `sentinance demo --full-refresh`, config full_refresh: true "
            ~ "on the dbt assets in Dagster, or `dbt build --full-refresh --select "
            ~ this.identifier ~ "+`"
        ) -%}
    {%- endif -%}
    {%- set lookback = var('late_data_lookback_minutes', 60) | int -%}
    {%- set result = run_query(
        'select cast(max(' ~ column ~ ') as ' ~ dbt.type_string() ~ ') as wm from ' ~ this
    ) -%}
    {%- set wm = result.columns[0].values()[0] -%}
    {%- if wm is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(dbt.dateadd('minute', -lookback, "cast('" ~ wm ~ "' as " ~ sentinance.type_timestamp_utc() ~ ")")) }}
{%- endmacro %}

{#- "(<ts> >= start_ts and <ts> < end_ts)" when the run has a time window, else none. -#}
{% macro run_window_predicate(ts) -%}
    {%- set start_ts = var('start_ts', none) -%}
    {%- set end_ts = var('end_ts', none) -%}
    {%- if start_ts is none and end_ts is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set parts = [] -%}
    {%- if start_ts is not none -%}
        {%- do parts.append(ts ~ " >= cast('" ~ start_ts ~ "' as " ~ sentinance.type_timestamp_utc() ~ ")") -%}
    {%- endif -%}
    {%- if end_ts is not none -%}
        {%- do parts.append(ts ~ " < cast('" ~ end_ts ~ "' as " ~ sentinance.type_timestamp_utc() ~ ")") -%}
    {%- endif -%}
    {{ return('(' ~ parts | join(' and ') ~ ')') }}
{%- endmacro %}

{#- The row filter selecting changed upstream rows: arrived since the cutoff, or inside the run
    window. Only call with a cutoff (incremental runs). -#}
{% macro changed_rows_predicate(cutoff, ingested_col='ingested_at', ts_col='ts') -%}
    {%- set window = sentinance.run_window_predicate(ts_col) -%}
    ({{ ingested_col }} >= {{ cutoff }}{% if window %} or {{ window }}{% endif %})
{%- endmacro %}

{#- "exchange || '|' || symbol": a one-column market key for IN lists (row-value IN is not
    portable). -#}
{% macro market_key(exchange='exchange', symbol='symbol') -%}
    {{ dbt.concat([exchange, "'|'", symbol]) }}
{%- endmacro %}

{#- SQL deleting the rows of `relation` where `predicate` holds (an incremental model's
    post-hook: marts.candles drops its marker rows). Spark's Parquet tables have no DELETE: the
    table is rewritten without those rows and swapped in, and nothing is left to run (an empty
    hook is skipped). -#}
{% macro delete_rows(relation, predicate) -%}
    {{ return(adapter.dispatch('delete_rows', 'sentinance')(relation, predicate)) }}
{%- endmacro %}

{% macro default__delete_rows(relation, predicate) -%}
    delete from {{ relation }} where {{ predicate }}
{%- endmacro %}

{% macro spark__delete_rows(relation, predicate) -%}
    {%- set table = relation.incorporate(type='table') -%}
    {%- set kept = table.incorporate(path={'identifier': relation.identifier ~ '__dbt_kept'}) -%}
    {%- do run_query('drop table if exists ' ~ kept) -%}
    {%- do run_query(
        'create table ' ~ kept ~ ' using parquet as select * from ' ~ table
        ~ ' where not coalesce(' ~ predicate ~ ', false)'
    ) -%}
    {%- do adapter.drop_relation(table) -%}
    {%- do adapter.rename_relation(kept, table) -%}
{%- endmacro %}
