{#
  Multi-column referential integrity: every (columns) key of the model with no NULL part exists
  as (to_columns) in `to`. `to_columns` defaults to `columns`. Returns the orphan keys.
#}
{% test relationships_composite(model, to, columns, to_columns=none) %}

{%- set parent_cols = to_columns if to_columns else columns -%}
with child as (

    select distinct {{ columns | join(', ') }}
    from {{ model }}
    where {% for c in columns %}{{ c }} is not null{% if not loop.last %} and {% endif %}{% endfor %}

),

parent as (

    select distinct
        {%- for c in parent_cols %}
        {{ c }} as parent_{{ loop.index }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ to }}

)

select child.*
from child
left join parent
    on {% for c in columns %}child.{{ c }} = parent.parent_{{ loop.index }}{% if not loop.last %}
    and {% endif %}{% endfor %}
where parent.parent_1 is null

{% endtest %}
