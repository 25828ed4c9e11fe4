{#
  Sentiment scores, one row per (news_id, model, model_version): a re-scoring by the same model
  version replaces the earlier score (latest scored_at wins). Several models/versions may score
  the same item; int_news_sentiment_latest picks one per item.
#}
with source as (

    select * from {{ source('ml', 'news_sentiment') }}

),

typed as (

    select
        cast(news_id as {{ dbt.type_string() }}) as news_id,
        cast(model as {{ dbt.type_string() }}) as model,
        cast(model_version as {{ dbt.type_string() }}) as model_version,
        lower(cast(label as {{ dbt.type_string() }})) as label,
        cast(score as {{ sentinance.type_double() }}) as score,
        cast(scored_at as {{ sentinance.type_timestamp_utc() }}) as scored_at
    from source

)

select *
from typed
qualify row_number() over (
    partition by news_id, model, model_version
    order by scored_at desc, score, label
) = 1
