{#
  No value of the listed numeric columns is NaN or +-infinity (NULL is fine). Portable: NaN and
  infinities fall outside the finite double range on DuckDB and Spark alike (both order NaN
  above every number). Returns the offending rows.
#}
{% test all_finite(model, columns) %}

select *
from {{ model }}
where 1 = 0
{%- for c in columns %}
   or ({{ c }} is not null and not ({{ c }} between -1.7976931348623157e308 and 1.7976931348623157e308))
{%- endfor %}

{% endtest %}
