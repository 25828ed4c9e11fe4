{{ config(severity='warn') }}
{#
  Quotes traded without a USD rate in seeds/quote_usd_rates.csv: their trades are left out of
  spreads and asset_overview. A warning, not an error: add the rate to the seed.
#}
select distinct t.quote
from {{ ref('stg_trades') }} as t
left join {{ ref('quote_usd_rates') }} as r
    on t.quote = r.quote
where r.quote is null
