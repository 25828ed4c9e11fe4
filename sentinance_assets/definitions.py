"""Entry point of the ``sentinance_assets`` code location (workspace.yaml, ``dg``, tests)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
