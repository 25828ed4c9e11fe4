{#
  The model's columns are exactly `columns`, in that order, optionally followed by
  `optional_trailing` columns (in that order, each may be absent only from the end). This is the
  column contract other parts of Sentinance read; contracts proper are engine-typed and not
  available for Python models, so the layout is checked by name. Returns one row per problem.
#}
{% test column_layout(model, columns, optional_trailing=[]) %}

{%- set problems = [] -%}
{%- if execute -%}
    {%- set actual = adapter.get_columns_in_relation(model) | map(attribute='name') | map('lower') | list -%}
    {%- set expected = columns | map('lower') | list -%}
    {%- set trailing = optional_trailing | map('lower') | list -%}
    {%- if actual[:expected | length] != expected -%}
        {%- do problems.append('leading columns are ' ~ actual[:expected | length] | join(',') ~ ' not ' ~ expected | join(',')) -%}
    {%- endif -%}
    {%- set extra = actual[expected | length:] -%}
    {%- if extra != trailing[:extra | length] -%}
        {%- do problems.append('trailing columns ' ~ extra | join(',') ~ ' are not a prefix of ' ~ trailing | join(',')) -%}
    {%- endif -%}
{%- endif -%}

{%- if problems | length == 0 %}
select cast(null as {{ dbt.type_string() }}) as problem
where 1 = 0
{%- else %}
{%- for p in problems %}
select '{{ p | replace("'", "") }}' as problem
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{%- endif %}

{% endtest %}
