{#
  A flag-list column (macros/candles.sql flag_list) holds `ok` or a comma-separated list of the
  known flags, nothing else, and is never NULL. Returns the offending rows.
#}
{% test flags_known(model, column_name, flags) %}

{%- set expr = [column_name] -%}
{%- for f in flags -%}
    {%- do expr.append("replace(" ~ expr[-1] ~ ", '" ~ f ~ "', '')") -%}
{%- endfor %}
select *
from {{ model }}
where {{ column_name }} is null
   or ({{ column_name }} <> 'ok' and replace({{ expr[-1] }}, ',', '') <> '')

{% endtest %}
