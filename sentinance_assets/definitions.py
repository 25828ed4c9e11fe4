"""Entry point of the ``sentinance_assets`` code location (workspace.yaml, ``dg``, tests).

Every asset gets its automation condition and freshness policy from one table
(``defs/automation.py``), applied to the loaded folder.
"""

from pathlib import Path

import dagster as dg

from sentinance_assets.defs.automation import apply_automation


@dg.definitions
def defs() -> dg.Definitions:
    return apply_automation(dg.load_from_defs_folder(path_within_project=Path(__file__).parent))
