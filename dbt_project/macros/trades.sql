{#
  The one definition of "a trade, typed and deduplicated": stg_trades applies it to the whole
  raw lake; the incremental bar models apply it to just the raw copies of the trades they
  recompute (every copy of those keys, so the winner is the same as over the whole lake).

  Deduplication on (exchange, symbol, trade_id): raw trades are immutable at the venue, so the
  first ingested copy wins (ties broken by ts, price, amount, side, source).

  Why two branches: almost every key has one copy (the lake writers keep one row per key per
  file), so ranking every row in a window (a sort of the whole lake: 9 s of a 10 s model over
  10M trades) is wasted work. One grouping pass on a key hash finds the keys with more than one
  copy; only their rows are ranked, and every other row passes straight through. A hash
  collision only sends a unique key through the ranking branch, where it wins alone: the result
  is exact either way.
#}
{% macro deduplicated_trades(relation) -%}
    with typed as (

        select
            cast(exchange as {{ dbt.type_string() }}) as exchange,
            cast(symbol as {{ dbt.type_string() }}) as symbol,
            cast(base as {{ dbt.type_string() }}) as base,
            cast(quote as {{ dbt.type_string() }}) as quote,
            cast(trade_id as {{ dbt.type_string() }}) as trade_id,
            cast(ts as {{ sentinance.type_timestamp_utc() }}) as ts,
            cast(price as {{ sentinance.type_double() }}) as price,
            cast(amount as {{ sentinance.type_double() }}) as amount,
            cast(cost as {{ sentinance.type_double() }}) as cost,
            cast(side as {{ dbt.type_string() }}) as side,
            cast(source as {{ dbt.type_string() }}) as source,
            cast(ingested_at as {{ sentinance.type_timestamp_utc() }}) as ingested_at
        from {{ relation }}

    ),

    repeated_keys as (

        select {{ sentinance.trade_key_hash() }} as key_hash
        from typed
        group by 1
        having count(*) > 1

    )

    select * from typed
    where {{ sentinance.trade_key_hash() }} not in (select key_hash from repeated_keys)

    union all

    select * from (
        select * from typed
        where {{ sentinance.trade_key_hash() }} in (select key_hash from repeated_keys)
    ) as copies
    qualify row_number() over (
        partition by exchange, symbol, trade_id
        order by ingested_at, ts, price, amount, side, source
    ) = 1
{%- endmacro %}

{#- A hash of the trade key (exchange, symbol, trade_id) for the repeated-key pre-filter. Any
    deterministic function of the key is correct (collisions cost time, never rows); DuckDB's
    64-bit hash() groups several times faster than the key's strings or an md5 text. -#}
{% macro trade_key_hash() -%}
    {{ return(adapter.dispatch('trade_key_hash', 'sentinance')()) }}
{%- endmacro %}

{% macro default__trade_key_hash() -%}
    {#- coalesce: a NULL hash would make `not in` drop rows -#}
    {{ dbt.hash(dbt.concat([
        "coalesce(exchange, '')", "'|'", "coalesce(symbol, '')", "'|'", "coalesce(trade_id, '')"
    ])) }}
{%- endmacro %}

{% macro duckdb__trade_key_hash() -%}
    hash(exchange, symbol, trade_id)
{%- endmacro %}

{#- The deduplicated trades an incremental model recomputes: deduplicated_trades over every raw
    copy (from `raw`) of every trade key that has a copy in a changed bucket, wherever its ts, so
    the winners are those stg_trades picks over the whole lake, at a fraction of the cost.
    `changed`: the CTE of changed buckets; `match`: the join condition between a raw trade `r`
    and a changed bucket `c`; `since`: a lower bound on r.ts for finding the keys (their other
    copies may lie anywhere). -#}
{% macro deduplicated_changed_trades(raw, changed, match, since) -%}
    {{ sentinance.deduplicated_trades(
        '(' ~ sentinance.raw_copies_of_changed_trades(raw, changed, match, since) ~ ') as changed_copies'
    ) }}
{%- endmacro %}

{% macro raw_copies_of_changed_trades(raw, changed, match, since) -%}
    select r.*
    from {{ raw }} as r
    inner join (
        select distinct r.exchange, r.symbol, r.trade_id
        from {{ raw }} as r
        inner join {{ changed }} as c
            on {{ match }}
        where r.ts >= {{ since }}
    ) as k
        on r.exchange = k.exchange
        and r.symbol = k.symbol
        and r.trade_id = k.trade_id
{%- endmacro %}
