{#
  One sentiment row per news item: the most recent scoring (latest scored_at, then the highest
  model_version and model name as tie-breaks), whichever model produced it. Set the var
  `sentiment_model` (e.g. 'transformer') to restrict the choice to one model family.
#}
with scores as (

    select * from {{ ref('stg_news_sentiment') }}
    {% if var('sentiment_model', none) %}
    where model = '{{ var("sentiment_model") }}'
    {% endif %}

)

select
    news_id,
    model,
    model_version,
    label,
    score,
    scored_at
from scores
qualify row_number() over (
    partition by news_id
    order by scored_at desc, model_version desc, model desc
) = 1
