"""The one exception plain ML code raises for "too little input for this".

A two-day window has no three days of hourly history for the forecaster, a fresh feed no 30
scored items per side for a drift test, a small labelled file too few sentences per label to
fine-tune on. None of that is a bug: the caller decides what to do (the Dagster assets skip
with the reason, ``sentinance forecast evaluate`` prints it and exits 2). ``needs`` and
``has`` are short phrases the caller can show as they are ("3 days of hourly history", "2").
"""

from __future__ import annotations


class InsufficientDataError(ValueError):
    """Too little input for a computation; ``needs`` / ``has`` say how much, in words."""

    def __init__(self, reason: str, *, needs: str | None = None, has: str | None = None):
        super().__init__(reason)
        self.needs = needs
        self.has = has
