"""dbt models as Dagster assets, with lineage from the raw Python assets to the marts."""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from sentinance_assets.defs.transform.project import dbt_project
from sentinance_assets.lib.warehouse import (
    publish,
    register_lake_views,
    write_connection,
)
from sentinance_assets.settings import Settings


class SentinanceTranslator(DagsterDbtTranslator):
    """dbt sources map onto the Python assets that write them (``raw/trades`` ...), and
    models get ``<schema>/<name>`` keys, so the UI shows one unbroken lineage."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or "main"
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "transform"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=SentinanceTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    pool="duckdb",
)
def sentinance_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    settings: dg.ResourceParam[Settings],
) -> Iterator[Any]:
    """Register the lake views, ``dbt build`` (models + tests), then publish the read side.

    Runs in the ``duckdb`` pool: the only writer of the warehouse file at any time.
    """
    with write_connection(settings.warehouse_path) as conn:
        register_lake_views(conn, settings.lake_dir)
    yield from dbt.cli(["build"], context=context).stream()
    publish(settings.warehouse_path, settings.read_path)
    context.log.info(f"published the read side at {settings.read_path}")
