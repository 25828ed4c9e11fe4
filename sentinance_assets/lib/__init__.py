"""Plain-Python building blocks of Sentinance (no Dagster imports).

The Dagster code location in ``sentinance_assets.defs`` is thin wiring around these modules,
so each piece can be used and tested on its own: from a notebook, the CLI or a test.
"""
