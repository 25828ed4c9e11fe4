{#
  marts.indicators on Spark (enabled only there; marts/indicators.py is the model everywhere
  else, and _marts.yml documents and tests both). dbt-spark's `session` method runs no Python
  models, so sentinance_assets.lib.spark.build_marts_on_spark computes the indicators between
  two dbt invocations: `dbt build --exclude indicators+` builds everything up to marts.candles,
  then the same function the Python model calls (sentinance_assets.lib.indicators.
  compute_indicators, polars) runs once per (exchange, symbol, timeframe) series in a Spark
  grouped map (applyInArrow) and writes intermediate.indicators_grouped_map, then
  `dbt build --select indicators+` publishes it here and builds what reads it. One
  implementation of the maths; this model only moves the rows.
#}
select * from {{ source('spark', 'indicators_grouped_map') }}
