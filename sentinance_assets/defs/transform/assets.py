"""dbt models as Dagster assets, with lineage from the raw Python assets to the marts.

Time windows. The large dbt models are incremental (``dbt_project/macros/incremental.sql``):
every build picks up what arrived in the lake since the last one, so the plain, unpartitioned
``dbt build`` of the demo and the analytics job is always complete. A run can additionally
rebuild an event-time window ``[start_ts, end_ts)``, passed to dbt as ``--vars``:

* from the run config (``ops: {sentinance_dbt: {config: {start: ..., end: ...}}}``), for a
  re-run of one period after late corrections, or ``full_refresh: true`` to rebuild everything;
* from the run's partition time window when the run has one (``context.partition_time_window``).

The dbt assets themselves are deliberately *not* given a ``partitions_def``: dagster-dbt 0.29
would then require a partition key for every run of them, so the unpartitioned
``analytics_job`` (which mixes them with unpartitioned ML and detection assets) and
``sentinance demo`` could no longer materialize them; and incremental models need no partition
to stay correct. The partition branch is there for a deployment that does attach one.

Engines. ``SENTINANCE_ENGINE=spark`` builds the same project on Spark instead
(``lib.spark.build_marts_on_spark``: in-process dbt-spark, the marts copied into the DuckDB
warehouse, which is then published as usual); its dbt results become the same Dagster
materializations and checks. A subset run builds only the selected models (and their tests)
on Spark, like ``dbt build --select`` on DuckDB (:func:`selected_models`).
"""

import json
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_dbt.asset_utils import get_asset_check_key_for_test

from sentinance_assets.defs.transform.project import dbt_project
from sentinance_assets.lib.lake import snapshot as lake_snapshot
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


class DbtBuildConfig(dg.Config):
    """Optional event-time window for the incremental models, and a full-refresh switch."""

    start: str | None = None
    """ISO timestamp (UTC when naive): rebuild buckets from here (inclusive)."""
    end: str | None = None
    """ISO timestamp (UTC when naive): rebuild buckets up to here (exclusive)."""
    full_refresh: bool = False
    """Rebuild every incremental model from scratch (``dbt build --full-refresh``)."""


def _utc(value: str | datetime) -> datetime:
    ts = datetime.fromisoformat(value) if isinstance(value, str) else value
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def dbt_build_args(
    config: DbtBuildConfig, partition_window: dg.TimeWindow | None = None
) -> list[str]:
    """The ``dbt build`` arguments for a run: ``--vars`` with start_ts/end_ts when the config
    or the run's partition gives a window (the config wins), ``--full-refresh`` on request."""
    args = ["build"]
    window = dbt_window_vars(config, partition_window)
    if window:
        args += ["--vars", json.dumps(window)]
    if config.full_refresh:
        args.append("--full-refresh")
    return args


def dbt_window_vars(
    config: DbtBuildConfig, partition_window: dg.TimeWindow | None = None
) -> dict[str, str]:
    """start_ts/end_ts of the run's window (config first, else the partition), as dbt vars."""
    start: datetime | None = None
    end: datetime | None = None
    if config.start or config.end:
        start = _utc(config.start) if config.start else None
        end = _utc(config.end) if config.end else None
    elif partition_window is not None:
        start, end = _utc(partition_window.start), _utc(partition_window.end)
    if start is not None and end is not None and start >= end:
        raise dg.Failure(f"empty dbt window: start {start} is not before end {end}")
    return {
        k: v.isoformat(sep=" ") for k, v in (("start_ts", start), ("end_ts", end)) if v is not None
    }


def run_partition_window(context: dg.AssetExecutionContext) -> dg.TimeWindow | None:
    """The run's partition time window, or None for an unpartitioned run."""
    if not context.has_partition_key and not context.has_partition_key_range:
        return None
    try:
        return context.partition_time_window
    except Exception:  # a partitioned run whose partitions are not time windows
        return None


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=SentinanceTranslator(
        # source tests (raw.trades' value tests) become checks on the Python raw assets
        settings=DagsterDbtTranslatorSettings(
            enable_asset_checks=True, enable_source_tests_as_checks=True
        )
    ),
    pool="duckdb",
)
def sentinance_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    settings: dg.ResourceParam[Settings],
    config: DbtBuildConfig,
) -> Iterator[Any]:
    """Register the lake views over a snapshot of the lake, ``dbt build`` (models + tests),
    point the views back at the lake, then publish the read side.

    Runs in the ``duckdb`` pool: the only writer of the warehouse file at any time.
    """
    if settings.engine == "spark":
        yield from _build_on_spark(context, settings, config)
        return
    args = dbt_build_args(config, run_partition_window(context))
    context.log.info(f"dbt {' '.join(args)}")
    # dbt reads a snapshot of the lake: ingest runs may replace its files meanwhile (lib/lake.py)
    with lake_snapshot(settings.lake_dir) as snap:
        with write_connection(settings.warehouse_path) as conn:
            register_lake_views(conn, snap)
        yield from dbt.cli(args, context=context).stream()
    with write_connection(settings.warehouse_path) as conn:
        register_lake_views(conn, settings.lake_dir)  # what readers of the raw views query
    publish(settings.warehouse_path, settings.read_path)
    context.log.info(f"published the read side at {settings.read_path}")


def _build_on_spark(
    context: dg.AssetExecutionContext, settings: Settings, config: DbtBuildConfig
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """``SENTINANCE_ENGINE=spark``: the build on Spark, its dbt results as Dagster events, then
    the same publish as the DuckDB path."""
    from sentinance_assets.lib.spark import build_marts_on_spark

    window = dbt_window_vars(config, run_partition_window(context))
    models = selected_models(context.selected_asset_keys) if context.is_subset else None
    where = settings.spark_remote or settings.spark_master
    context.log.info(
        f"dbt build on Spark ({where}), vars {window or '{}'}, "
        f"models {'all' if models is None else ', '.join(models)}"
    )
    build = build_marts_on_spark(
        settings, vars=window, full_refresh=config.full_refresh, models=models
    )
    yield from spark_build_events(
        build.results(), context.selected_asset_keys, context.selected_asset_check_keys
    )
    publish(settings.warehouse_path, settings.read_path)
    context.log.info(
        f"Spark build took {build.seconds:.0f} s; published the read side at {settings.read_path}"
    )


def selected_models(keys: AbstractSet[dg.AssetKey]) -> list[str]:
    """The dbt names of the selected dbt assets (keys ``<schema>/<name>``, SentinanceTranslator)."""
    return sorted(key.path[-1] for key in keys if key in sentinance_dbt.keys)


def spark_build_events(
    results: list[dict[str, Any]],
    selected_assets: AbstractSet[dg.AssetKey],
    selected_checks: AbstractSet[dg.AssetCheckKey],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """dbt node results of a Spark build as the events ``dbt.cli(...).stream()`` yields:
    a materialization per built model or seed, a check result per dbt test (a ``warn`` is a
    failed check of WARN severity, as dagster-dbt reports it). A node reported by more than
    one dbt step (the staging views: built on Spark, then created in DuckDB) yields one event,
    from its last result: Dagster accepts one output per asset and step."""
    manifest = dbt_project.manifest_path
    nodes = json.loads(manifest.read_text())
    translator = SentinanceTranslator()
    last = {r["unique_id"]: r for r in results}  # first position, last result
    for r in last.values():
        uid = r["unique_id"]
        if uid.startswith(("model.", "seed.")) and r["status"] == "success":
            key = translator.get_asset_key(nodes["nodes"][uid])
            if key in selected_assets:
                yield dg.MaterializeResult(asset_key=key, metadata={"engine": "spark"})
        elif uid.startswith("test."):
            check = get_asset_check_key_for_test(nodes, translator, uid, dbt_project)
            if check is None or check not in selected_checks:
                continue
            yield dg.AssetCheckResult(
                asset_key=check.asset_key,
                check_name=check.name,
                passed=r["status"] == "pass",
                severity=dg.AssetCheckSeverity.WARN
                if r["status"] == "warn"
                else dg.AssetCheckSeverity.ERROR,
                metadata={"status": r["status"], "failures": r.get("failures") or 0},
            )
