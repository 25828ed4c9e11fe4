{#
  News items deduplicated on news_id. Feeds re-publish items with edits, so the last ingested
  copy wins.
#}
with source as (

    select * from {{ source('raw', 'news') }}

),

typed as (

    select
        cast(news_id as {{ dbt.type_string() }}) as news_id,
        cast(title as {{ dbt.type_string() }}) as title,
        cast(summary as {{ dbt.type_string() }}) as summary,
        cast(link as {{ dbt.type_string() }}) as link,
        cast(published as {{ sentinance.type_timestamp_utc() }}) as published,
        cast(published_missing as boolean) as published_missing,
        cast(publisher as {{ dbt.type_string() }}) as publisher,
        cast(assets as {{ dbt.type_string() }}) as assets,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(ingested_at as {{ sentinance.type_timestamp_utc() }}) as ingested_at
    from source

)

select *
from typed
qualify row_number() over (
    partition by news_id
    order by ingested_at desc, published desc, title
) = 1
