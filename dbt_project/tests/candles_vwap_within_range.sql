{# A usable bar's VWAP lies between its low and high (relative tolerance 1e-9 for float sums). #}
select *
from {{ ref('candles') }}
where quality not like '%implausible%'
  and (
    vwap is null
    or vwap < low - 1e-9 * abs(low)
    or vwap > high + 1e-9 * abs(high)
  )
