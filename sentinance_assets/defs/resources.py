"""Resources shared by every domain, all derived from one :class:`Settings`.

* ``settings``: the :class:`Settings` themselves;
* ``dbt``: the dbt CLI on this home's generated profile;
* ``mlflow_store``: the :class:`~ml.tracking.MlflowStore` (tracking database and artifacts under
  the home) that the ML assets log to, register in and load champions from.
"""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from ml.tracking import MlflowStore
from sentinance_assets.defs.transform.project import dbt_project
from sentinance_assets.lib.warehouse import write_dbt_profile
from sentinance_assets.settings import Settings


def mlflow_store(settings: Settings) -> MlflowStore:
    """The MLflow store of ``settings``' home."""
    return MlflowStore(settings.mlflow_db, settings.mlflow_artifacts)


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources for ``settings``: used by the code location and by tests alike.

    Writes the generated dbt profile (pointing at this home's warehouse) on the way, since
    the dbt resource requires its profiles folder to exist.
    """
    write_dbt_profile(settings.dbt_profiles_dir, settings.warehouse_path)
    return {
        "settings": settings,
        "mlflow_store": mlflow_store(settings),
        "dbt": DbtCliResource(
            project_dir=dbt_project,
            profiles_dir=str(settings.dbt_profiles_dir),
            dbt_executable=str(Path(sys.executable).parent / "dbt"),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(Settings.from_env()))
