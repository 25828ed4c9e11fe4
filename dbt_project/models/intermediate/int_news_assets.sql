{#
  One row per (news item, base asset it mentions): the comma-separated assets column of
  stg_news unnested, trimmed and upper-cased; empty elements and repeats dropped.
#}
with news as (

    select news_id, assets from {{ ref('stg_news') }}

),

elements as (

    {{ sentinance.split_to_rows('news', 'news_id', 'assets', 'asset') }}

)

select distinct
    news_id,
    upper(trim(asset)) as base
from elements
where asset is not null
  and length(trim(asset)) > 0
