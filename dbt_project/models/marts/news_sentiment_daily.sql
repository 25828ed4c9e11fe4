{#
  News flow and sentiment per (base asset, UTC day of publication). Every news item mentioning
  the asset counts in news_count; sentiment figures use the item's latest score
  (int_news_sentiment_latest) and are averaged over the scored items only (NULL when none is
  scored).
#}
with mentions as (

    select
        a.base,
        n.news_id,
        cast({{ dbt.date_trunc('day', 'n.published') }} as date) as day
    from {{ ref('int_news_assets') }} as a
    inner join {{ ref('stg_news') }} as n
        on a.news_id = n.news_id
    where n.published is not null

),

scored as (

    select
        m.base,
        m.day,
        m.news_id,
        s.label,
        s.score
    from mentions as m
    left join {{ ref('int_news_sentiment_latest') }} as s
        on m.news_id = s.news_id

)

select
    base,
    day,
    count(*) as news_count,
    count(score) as scored_count,
    avg(score) as mean_score,
    cast(sum(case when label = 'positive' then 1 else 0 end) as {{ sentinance.type_double() }})
        / nullif(count(label), 0) as share_positive,
    cast(sum(case when label = 'negative' then 1 else 0 end) as {{ sentinance.type_double() }})
        / nullif(count(label), 0) as share_negative
from scored
group by base, day
