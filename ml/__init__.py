"""Sentinance ML: pure Python models, training, evaluation, drift and registry helpers.

No Dagster import and no environment reads: the assets pass paths and configuration in, so
every function here is testable on its own. Modules (imported explicitly; this package
imports nothing so that ``import ml`` stays free of torch / mlflow / evidently start-up cost):

* :mod:`ml.features`   - candles -> leak-free features and forward-return targets
* :mod:`ml.forecaster` - multi-horizon LSTM seed ensemble; save/load; MLflow pyfunc logging
* :mod:`ml.evaluation` - out-of-sample metrics vs ``zero_return`` / ``persistence`` baselines
* :mod:`ml.sentiment`  - ``SentimentModel`` interface and the VADER baseline
* :mod:`ml.drift`      - evidently data drift -> ``DriftResult``
* :mod:`ml.tracking`   - server-less MLflow (SQLite + local artifacts), registry, champion alias
"""
