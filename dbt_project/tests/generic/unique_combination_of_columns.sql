{#
  The combination of `combination_of_columns` is unique across the model (the grain test).
  Returns one row per duplicated key with its count. NULLs group together, so a NULL key part
  counts as a value (pair it with not_null tests on the key columns).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

{%- set cols = combination_of_columns | join(', ') -%}
select {{ cols }}, count(*) as n_rows
from {{ model }}
group by {{ cols }}
having count(*) > 1

{% endtest %}
