{#
  The portable default__split_to_rows and the engine's dispatched split_to_rows return the same
  multiset of (id, element) rows on the news assets and on edge cases.
#}
with edge_cases as (

    select 'e1' as news_id, 'BTC' as assets
    union all select 'e2', 'BTC,ETH'
    union all select 'e3', ' btc , eth ,'
    union all select 'e4', ''
    union all select 'e5', cast(null as {{ dbt.type_string() }})
    union all select 'e6', 'SOL,,XRP'

),

inputs as (

    select news_id, assets from {{ ref('stg_news') }}
    union all
    select news_id, assets from edge_cases

),

by_default as (

    {{ sentinance.default__split_to_rows('inputs', 'news_id', 'assets', 'asset', ',') }}

),

by_dispatch as (

    {{ sentinance.split_to_rows('inputs', 'news_id', 'assets', 'asset') }}

),

only_default as (

    select news_id, asset from by_default
    except all
    select news_id, asset from by_dispatch

),

only_dispatch as (

    select news_id, asset from by_dispatch
    except all
    select news_id, asset from by_default

)

select 'default_only' as side, news_id, asset from only_default
union all
select 'dispatch_only' as side, news_id, asset from only_dispatch
