"""Running Sentinance as a service: supervision (``sentinance serve``), health
(``sentinance status``), retention and operator notifications.

Plain Python like the rest of ``lib``; only :func:`status.dagster_health` reads the Dagster
instance, and imports Dagster inside that function.
"""
