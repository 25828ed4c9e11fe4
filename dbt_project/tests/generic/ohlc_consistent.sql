{#
  A bar is consistent when high >= greatest(open, close), low <= least(open, close),
  high >= low and volume >= 0. Returns the offending rows. Model-level test; column names
  configurable. `tolerance` (absolute) allows for float noise in derived prices.
#}
{% test ohlc_consistent(model, open='open', high='high', low='low', close='close', volume='volume', tolerance=0) %}

select *
from {{ model }}
where {{ high }} < greatest({{ open }}, {{ close }}) - {{ tolerance }}
   or {{ low }} > least({{ open }}, {{ close }}) + {{ tolerance }}
   or {{ high }} < {{ low }} - {{ tolerance }}
   or {{ volume }} < 0
   or {{ open }} is null
   or {{ high }} is null
   or {{ low }} is null
   or {{ close }} is null
   or {{ volume }} is null

{% endtest %}
