"""Sentinance ML: pure Python models, training, evaluation, drift and registry helpers.

No Dagster import, no ``sentinance_assets`` import and no environment reads: the assets pass
paths, configuration and the MLflow store in, so every function here is testable on its own.
Modules (imported explicitly; this package imports nothing so that ``import ml`` stays free of
torch / mlflow / evidently start-up cost):

* :mod:`ml.features`   - candles -> leak-free features and forward-return targets
* :mod:`ml.forecaster` - multi-horizon LSTM seed ensemble; save/load; MLflow pyfunc logging
* :mod:`ml.evaluation` - out-of-sample metrics vs ``zero_return`` / ``persistence`` baselines
* :mod:`ml.sentiment`  - ``SentimentModel`` interface and the VADER baseline
* :mod:`ml.sentiment_eval`, :mod:`ml.sentiment_transformer` - labelled data, metrics, fine-tuning
* :mod:`ml.forecast_lifecycle`, :mod:`ml.sentiment_lifecycle` - the two lifecycles, side by
  side: train -> evaluate vs baselines -> register -> decide -> serve
* :mod:`ml.drift`      - evidently data drift -> ``DriftResult``
* :mod:`ml.tracking`   - ``MlflowStore``: server-less MLflow (SQLite + local artifacts), registry,
  champion alias, recorded decisions
"""
