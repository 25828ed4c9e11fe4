{#
  Cross-venue price spread per base asset and window: every unordered pair of exchanges that both
  traded the base in the window, exchange_a < exchange_b alphabetically. Prices are USD VWAPs from
  int_venue_vwap_usd (static quote_usd_rates seed for the quote conversion).
  spread_pct = 100 * (vwap_usd_a - vwap_usd_b) / ((vwap_usd_a + vwap_usd_b) / 2): positive when
  exchange_a is the dearer venue.
#}
with venue_windows as (

    select * from {{ ref('int_venue_vwap_usd') }}
    where vwap_usd is not null

)

select
    a.base,
    a.window_start,
    a.exchange as exchange_a,
    b.exchange as exchange_b,
    a.vwap_usd as vwap_usd_a,
    b.vwap_usd as vwap_usd_b,
    100 * (a.vwap_usd - b.vwap_usd) / ((a.vwap_usd + b.vwap_usd) / 2) as spread_pct,
    a.volume as volume_a,
    b.volume as volume_b,
    a.volume_usd as volume_usd_a,
    b.volume_usd as volume_usd_b,
    a.trade_count as trade_count_a,
    b.trade_count as trade_count_b
from venue_windows as a
inner join venue_windows as b
    on a.base = b.base
    and a.window_start = b.window_start
    and a.exchange < b.exchange
