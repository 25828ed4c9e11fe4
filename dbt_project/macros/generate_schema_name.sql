{#
  Models land in the warehouse zones by their plain names (staging, intermediate, marts), not
  dbt's default "<target schema>_<custom schema>": the zone schemas are part of the contract with
  the rest of Sentinance (warehouse.SCHEMAS, the Streamlit app, notebooks).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
