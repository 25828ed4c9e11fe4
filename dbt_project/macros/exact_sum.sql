{#
  Order-independent sums of doubles. A floating-point sum depends on the order it adds rows in,
  and that order differs between a full refresh and an incremental run (and between parallel
  plans), so `sum(x)` can differ in the last bits and "incremental equals full refresh" would
  not hold exactly. exact_sum rounds each value to 18 decimal places (a per-row, deterministic
  rounding), adds them as DECIMAL(38, 18) (integer arithmetic: associative) and returns a double.
  Limits: |partial sums| < 1e20; each value is resolved to 1e-18 absolute (DuckDB's cast is
  accurate to about one ulp, so a one-row sum may differ from its input in the last bit).
#}
{% macro exact_sum(expr) -%}
    {{ return(adapter.dispatch('exact_sum', 'sentinance')(expr)) }}
{%- endmacro %}

{% macro default__exact_sum(expr) -%}
    cast(sum(cast({{ expr }} as decimal(38, 18))) as {{ sentinance.type_double() }})
{%- endmacro %}

{#- Order-independent mean: exact_sum / count of non-NULL values. -#}
{% macro exact_avg(expr) -%}
    ({{ sentinance.exact_sum(expr) }} / nullif(count({{ expr }}), 0))
{%- endmacro %}

{#- Pearson correlation from exact sums: NULL for fewer than 2 pairs, a constant series, or
    a variance that rounds to zero or below (never a square root of a negative number, which
    DuckDB raises as an error), and clamped to [-1, 1] against rounding. -#}
{% macro exact_corr(x, y) -%}
    {%- set n = 'cast(count(*) as ' ~ sentinance.type_double() ~ ')' -%}
    {%- set sx = sentinance.exact_sum(x) -%}
    {%- set sy = sentinance.exact_sum(y) -%}
    {%- set vx = '(' ~ n ~ ' * ' ~ sentinance.exact_sum(x ~ ' * ' ~ x) ~ ' - ' ~ sx ~ ' * ' ~ sx ~ ')' -%}
    {%- set vy = '(' ~ n ~ ' * ' ~ sentinance.exact_sum(y ~ ' * ' ~ y) ~ ' - ' ~ sy ~ ' * ' ~ sy ~ ')' -%}
    {%- set cov = '(' ~ n ~ ' * ' ~ sentinance.exact_sum(x ~ ' * ' ~ y) ~ ' - ' ~ sx ~ ' * ' ~ sy ~ ')' -%}
    case
        when count(*) >= 2 and {{ vx }} > 0 and {{ vy }} > 0
        then greatest(-1.0, least(1.0, {{ cov }} / sqrt({{ vx }} * {{ vy }})))
    end
{%- endmacro %}

{#- sum() of an integer column with DuckDB's result type, a 128-bit integer (HUGEINT): Spark's
    sum of a bigint is a bigint, so there it sums DECIMAL(38, 0), Spark's 128-bit integer
    (sentinance_assets.lib.spark copies such columns into DuckDB as HUGEINT). -#}
{% macro integer_sum(expr) -%}
    {{ return(adapter.dispatch('integer_sum', 'sentinance')(expr)) }}
{%- endmacro %}

{% macro default__integer_sum(expr) -%}
    sum({{ expr }})
{%- endmacro %}

{% macro spark__integer_sum(expr) -%}
    sum(cast({{ expr }} as decimal(38, 0)))
{%- endmacro %}
