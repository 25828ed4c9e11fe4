"""How fresh each watched asset must be: one definition for Dagster and for ``status``.

The automation table (``defs/automation.py``) turns these windows into Dagster
``FreshnessPolicy`` objects (live mode); ``sentinance status``, the app's health page and the
operator notifications judge the same windows without loading the code location.

* ``refresh``: each mart and the batch alert feed. They rebuild after every live refresh, so
  they are late when nothing materialized for two refresh intervals plus :data:`ALLOWANCE`
  (warn after one interval plus the allowance);
* ``hourly``: the forecasts, made hourly by the serving model: late after two hours (warn after
  75 minutes).
"""

from __future__ import annotations

from datetime import timedelta

from sentinance_assets.settings import Settings

#: What a refresh (ingest, then the marts) may take beyond its interval before it is late.
ALLOWANCE = timedelta(minutes=5)
REFRESH = "refresh"
HOURLY = "hourly"


def kind_of(asset: str) -> str | None:
    """The freshness kind of an asset (``"marts/candles"``), ``None`` when it has none."""
    if asset.startswith("marts/") or asset == "alerts/alerts":
        return REFRESH
    if asset == "ml/forecasts":
        return HOURLY
    return None


def windows(settings: Settings) -> dict[str, tuple[timedelta, timedelta]]:
    """(warn, fail) window of each kind."""
    refresh = timedelta(minutes=settings.refresh_minutes)
    return {
        REFRESH: (refresh + ALLOWANCE, 2 * refresh + ALLOWANCE),
        HOURLY: (timedelta(minutes=75), timedelta(hours=2)),
    }


def window_of(asset: str, settings: Settings) -> tuple[timedelta, timedelta] | None:
    kind = kind_of(asset)
    return None if kind is None else windows(settings)[kind]
