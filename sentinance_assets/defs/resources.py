"""Resources shared by every domain, all derived from one :class:`Settings`."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from sentinance_assets.defs.transform.project import dbt_project
from sentinance_assets.lib.warehouse import write_dbt_profile
from sentinance_assets.settings import Settings


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources for ``settings``: used by the code location and by tests alike.

    Writes the generated dbt profile (pointing at this home's warehouse) on the way, since
    the dbt resource requires its profiles folder to exist.
    """
    write_dbt_profile(settings.dbt_profiles_dir, settings.warehouse_path)
    return {
        "settings": settings,
        "dbt": DbtCliResource(
            project_dir=dbt_project,
            profiles_dir=str(settings.dbt_profiles_dir),
            dbt_executable=str(Path(sys.executable).parent / "dbt"),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(Settings.from_env()))
