"""Apache Spark as the engine of the dbt build (``SENTINANCE_ENGINE=spark``, issue #20).

The same dbt project builds the same staging, intermediate and marts relations on Spark
(dbt-spark, ``session`` method: PySpark with a local master) from the same Parquet lake, and
the results are copied into the DuckDB warehouse, so every reader (``sentinance query``, the
app, the API, notebooks) works exactly as after a DuckDB build.
:func:`build_marts_on_spark` is the whole build; the pieces:

* :func:`spark_session`: one session per process (``local[2]``, few shuffle partitions, UTC,
  Hive support with an embedded Derby metastore and the table files under
  ``SENTINANCE_SPARK_DIR``). dbt runs *in this process* (``dbtRunner``): dbt-spark's session
  method calls ``SparkSession.builder.getOrCreate()``, which returns this session, so dbt, the
  lake tables and the indicators share one JVM (start-up is ~25 s; a dbt subprocess per step
  would pay it each time) and the metastore has a single user (two session-mode processes on
  one Derby metastore collide).
* :func:`register_lake_tables`: the Spark twin of ``warehouse.register_lake_views``: one
  external Parquet table per lake dataset over the same folder, with the declared columns of
  ``lib/schemas.py`` (files missing a column read it as NULL, as DuckDB's ``union_by_name``
  does) and recursive file lookup (the ``date=`` folders are not turned into a column, as
  DuckDB's ``hive_partitioning = false``; the ``_empty.parquet`` placeholders are hidden files
  to Spark).
* :func:`compute_indicators_on_spark`: dbt-spark's session method runs no Python models, so
  ``marts.indicators`` is computed between two dbt invocations by the *same* polars function
  the DuckDB Python model calls (``lib.indicators.compute_indicators``), once per
  ``(exchange, symbol, timeframe)`` series in a Spark grouped map (``applyInArrow``). No second
  implementation of the maths; on Spark the model ``marts/spark/indicators.sql`` publishes it.
* :func:`copy_into_duckdb`: the tables dbt built on Spark (marts, incremental intermediates,
  seeds) are copied into the DuckDB warehouse as tables (DuckDB reads Spark's table files); the
  dbt *views* (staging, intermediate) are created there by dbt-duckdb itself (``dbt run`` of
  the views only: no data is read; in a child process, which closes the file), so they are the
  very views of a DuckDB build, lazily over the lake.

Spark keeps its own incremental state (its tables under ``SENTINANCE_SPARK_DIR``), so the next
build only recomputes what changed; the DuckDB side is overwritten by the copy each time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import yaml

from sentinance_assets.lib import warehouse
from sentinance_assets.lib.indicators import OUTPUT_COLUMNS, SERIES_KEYS, compute_indicators
from sentinance_assets.lib.lake import dataset_dir, ensure_placeholders, snapshot
from sentinance_assets.lib.schemas import ALL_DATASETS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sentinance_assets.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
SPARK_TARGET = "spark"
#: where :func:`compute_indicators_on_spark` writes (source ``spark.indicators_grouped_map``)
GROUPED_MAP_TABLE = "intermediate.indicators_grouped_map"
#: dbt's selection up to marts.candles, then the rest: marts.indicators and what reads it
INDICATORS_AND_AFTER = "indicators+"
BEFORE_INDICATORS = ("--exclude", INDICATORS_AND_AFTER)
FROM_INDICATORS = ("--select", INDICATORS_AND_AFTER)
# the columns compute_indicators reads from marts.candles (the DuckDB Python model's select)
INDICATOR_INPUTS = ("exchange", "symbol", "timeframe", "ts", "high", "low", "close", "quality")
INDICATOR_SCHEMA = pa.schema(
    [
        *[(k, pa.string()) for k in SERIES_KEYS],
        ("ts", pa.timestamp("us", tz="UTC")),
        *[
            (c, pa.float64())
            for c in OUTPUT_COLUMNS
            if c not in (*SERIES_KEYS, "ts", "bars_in_segment", "null_reason")
        ],
        ("bars_in_segment", pa.int64()),
        ("null_reason", pa.string()),
    ]
)
_SPARK_TYPES = {
    pl.String: "STRING",
    pl.Float64: "DOUBLE",
    pl.Int64: "BIGINT",
    pl.Int32: "INT",
    pl.Boolean: "BOOLEAN",
}

#: runtime settings of every build's session (a Connect server's static ones are its own)
RUNTIME_CONF: dict[str, bool | float | int | str | None] = {
    "spark.sql.session.timeZone": "UTC",
    # instants in the table files as Parquet's standard UTC-adjusted micros (not INT96),
    # which DuckDB reads as TIMESTAMPTZ when it copies the tables (copy_into_duckdb)
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


class SparkUnavailableError(RuntimeError):
    """Spark cannot run here (no Java, or PySpark is not installed)."""


class SparkBuildError(RuntimeError):
    """A dbt step of the Spark build failed; the message names the failed nodes."""


def spark_unavailable_reason(remote: str | None = None) -> str | None:
    """Why Spark cannot run from here, or None when it can: Java and PySpark for a session in
    this process; for a Spark Connect server (``remote``) only PySpark's Connect client (the
    JVM is the server's)."""
    if remote:
        try:
            import pyspark.sql.connect  # noqa: F401  (checks grpcio, grpcio-status, ...)
        except ImportError as exc:
            return (
                f"the Spark Connect client is not installed ({exc}; pip install 'pyspark[connect]')"
            )
        return None
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").exists()):
        return "no java on PATH (Spark 4 needs Java 17+: apt-get install openjdk-17-jre-headless)"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install pyspark dbt-spark[session])"
    return None


# ------------------------------------------------------------------------------ the session
def spark_session(
    spark_dir: Path,
    master: str = "local[2]",
    shuffle_partitions: int = 4,
    conf: Mapping[str, str] | None = None,
    java_options: str = "",
    remote: str | None = None,
) -> SparkSession:
    """The process's Spark session, created on first use.

    Static settings (master, warehouse and metastore folders) are fixed when the session
    starts, so asking for another ``spark_dir`` while one runs is an error rather than a
    silent use of the first one. Runtime settings (shuffle partitions, UTC) are (re)applied.
    ``conf``: further Spark settings; ``java_options``: further JVM options of the driver.
    ``remote``: a Spark Connect URL (``sc://host:port``): the session is then a client of that
    server (:func:`remote_session`) and ``spark_dir``, ``master`` and ``java_options`` are the
    server's business.
    """
    reason = spark_unavailable_reason(remote)
    if reason:
        raise SparkUnavailableError(reason)
    if remote:
        return remote_session(remote, shuffle_partitions, conf)
    from pyspark.sql import SparkSession

    spark_dir = Path(spark_dir).resolve()
    warehouse_dir = spark_dir / "warehouse"
    active = SparkSession.getActiveSession()
    if active is not None:
        current = active.conf.get("spark.sql.warehouse.dir") or ""
        if Path(current.removeprefix("file:")).resolve() != warehouse_dir:
            raise SparkBuildError(
                f"a Spark session over {current} is already running in this process; "
                f"one session per process (asked for {warehouse_dir})"
            )
        active.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        active.conf.set("spark.sql.session.timeZone", "UTC")
        return active
    spark_dir.mkdir(parents=True, exist_ok=True)
    # the Python workers of the grouped map must be this interpreter (polars, the project);
    # PySpark reads only the environment variable for it
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    metastore = spark_dir / "metastore_db"
    builder = (
        SparkSession.builder.master(master)
        .appName("sentinance")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config(map=RUNTIME_CONF)
        .config("spark.sql.warehouse.dir", str(warehouse_dir))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={metastore};create=true",
        )
        # Derby's log and the JVM's default zone (UTC) stay out of the working directory
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dderby.system.home={spark_dir} -Duser.timezone=UTC {java_options}".strip(),
        )
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .enableHiveSupport()
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def remote_session(
    url: str, shuffle_partitions: int = 4, conf: Mapping[str, str] | None = None
) -> SparkSession:
    """A Spark Connect session to the server at ``url`` (a cluster's, or
    ``start-connect-server.sh`` on one machine), with this project's runtime settings.

    dbt-spark's ``session`` method reaches its session through
    ``SparkSession.builder.getOrCreate()``, which returns a Connect session only when the
    ``SPARK_REMOTE`` environment variable names the server, so it is set for this process;
    one server per process. The server must read the lake and write its warehouse where this
    process reads them too (a shared filesystem; docs/scale-out.md), and its Python workers
    need this project installed (the indicators and the detection run there).
    """
    from pyspark.sql import SparkSession

    current = os.environ.get("SPARK_REMOTE")
    if current and current != url:
        raise SparkBuildError(
            f"this process already talks to the Spark Connect server {current}; one server "
            f"per process (asked for {url})"
        )
    os.environ["SPARK_REMOTE"] = url
    # dbt-spark asks for Hive support, a static setting a running server already has
    warnings.filterwarnings(
        "ignore", message="Failed to set spark.sql.catalogImplementation", category=UserWarning
    )
    session = SparkSession.builder.remote(url).getOrCreate()
    settings = {
        **RUNTIME_CONF,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        **(conf or {}),
    }
    for key, value in settings.items():
        session.conf.set(key, str(value))
    return session


def session_for(settings: Settings) -> SparkSession:
    return spark_session(
        settings.spark_dir,
        settings.spark_master,
        settings.spark_shuffle_partitions,
        remote=settings.spark_remote,
    )


def _sql_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def register_lake_tables(spark: SparkSession, lake_dir: Path) -> None:
    """Create the zone databases and one external Parquet table per lake dataset (idempotent:
    dropping an external table leaves its files alone)."""
    ensure_placeholders(lake_dir)
    for schema in warehouse.SCHEMAS:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
    for ds in ALL_DATASETS:
        columns = ", ".join(f"`{name}` {spark_type(dtype)}" for name, dtype in ds.columns.items())
        location = dataset_dir(lake_dir, ds).resolve()
        spark.sql(f"DROP TABLE IF EXISTS {ds.qualified}")
        spark.sql(
            f"CREATE TABLE {ds.qualified} ({columns}) USING parquet "
            f"OPTIONS (recursiveFileLookup 'true') LOCATION {_sql_str(str(location))}"
        )


def spark_type(dtype: Any) -> str:
    """The Spark SQL type of a polars dtype of the lake schemas."""
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    for polars_type, name in _SPARK_TYPES.items():
        if dtype == polars_type:
            return name
    raise TypeError(f"no Spark type for {dtype}")


# ----------------------------------------------------------------------------- indicators
def _indicators_of_series(max_gap_bars: int) -> Callable[[pa.Table], pa.Table]:
    """The grouped-map function: one series' candles (Arrow) -> its indicators (Arrow)."""

    def run(table: pa.Table) -> pa.Table:
        out = compute_indicators(pl.from_arrow(table), max_gap_bars=max_gap_bars)
        return out.to_arrow().cast(INDICATOR_SCHEMA)

    return run


def compute_indicators_on_spark(
    spark: SparkSession,
    max_gap_bars: int = 0,
    source: str = "marts.candles",
    target: str = GROUPED_MAP_TABLE,
) -> int:
    """``compute_indicators`` per ``(exchange, symbol, timeframe)`` series of ``source`` in a
    grouped map, written to ``target`` (replaced); returns its row count.

    A series is the unit of the maths (windows and recursions run along one series, in time
    order), so grouping by it is exact: each call sees exactly the rows the DuckDB Python
    model's single call sees for that series, and returns the same values.
    """
    schema = ", ".join(f"`{f.name}` {arrow_ddl(f.type)}" for f in INDICATOR_SCHEMA)
    result = (
        spark.table(source)
        .select(*INDICATOR_INPUTS)
        .groupBy(*SERIES_KEYS)
        .applyInArrow(_indicators_of_series(max_gap_bars), schema)
    )
    spark.sql(f"DROP TABLE IF EXISTS {target}")
    result.write.format("parquet").saveAsTable(target)
    return int(spark.table(target).count())


def arrow_ddl(dtype: pa.DataType) -> str:
    """The Spark SQL type of an Arrow type of a grouped map's output."""
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP"
    if pa.types.is_float64(dtype):
        return "DOUBLE"
    if pa.types.is_int64(dtype):
        return "BIGINT"
    return "STRING"


# ------------------------------------------------------------------------------------- dbt
@dataclass
class DbtStep:
    """One in-process dbt invocation: its arguments, outcome and per-node results."""

    args: list[str]
    success: bool
    seconds: float
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def failures(self) -> list[str]:
        return [
            f"{r['unique_id']}: {r['status']} {r['message'] or ''}".strip()
            for r in self.results
            if r["status"] in ("error", "fail", "runtime error")
        ]


def write_spark_profile(profiles_dir: Path) -> Path:
    """The dbt profile of in-process Spark runs: the session is already configured by
    :func:`spark_session`, so the profile only names the method (and pins UTC, as the DuckDB
    profile does)."""
    profiles_dir.mkdir(parents=True, exist_ok=True)
    text = (
        "sentinance:\n"
        f"  target: {SPARK_TARGET}\n"
        "  outputs:\n"
        f"    {SPARK_TARGET}:\n"
        "      type: spark\n"
        "      method: session\n"
        "      host: NA\n"
        "      schema: main\n"
        "      threads: 1\n"
        "      server_side_parameters:\n"
        "        spark.sql.session.timeZone: UTC\n"
    )
    path = profiles_dir / "profiles.yml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def run_dbt(
    args: Sequence[str],
    profiles_dir: Path,
    work_dir: Path,
    project_dir: Path = DBT_PROJECT_DIR,
) -> DbtStep:
    """``dbt <args>`` in this process (dbtRunner), with its target and log folders under
    ``work_dir`` (never the project's own ``target/``, which other runs use)."""
    from dbt.cli.main import dbtRunner

    full = [
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
    ]
    t0 = time.perf_counter()
    res = dbtRunner().invoke(full)
    seconds = time.perf_counter() - t0
    results = []
    for r in getattr(res.result, "results", None) or []:
        results.append(
            {
                "unique_id": r.node.unique_id,
                "status": str(r.status),
                "message": r.message,
                "failures": r.failures,
            }
        )
    error = None if res.exception is None else f"{type(res.exception).__name__}: {res.exception}"
    return DbtStep(full, bool(res.success), seconds, results, error)


def run_dbt_process(
    args: Sequence[str],
    profiles_dir: Path,
    work_dir: Path,
    project_dir: Path = DBT_PROJECT_DIR,
) -> DbtStep:
    """``dbt <args>`` in a child process. For dbt-duckdb: it keeps its DuckDB database open
    in the process that ran it, so in-process it would hold the warehouse file (with its
    writes possibly still in the WAL) while the caller copies or reads it; a child closes
    (and checkpoints) it on exit."""
    dbt = Path(sys.executable).with_name("dbt")
    full = [
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run([str(dbt), *full], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    results_file = work_dir / "target" / "run_results.json"
    results = []
    if proc.returncode == 0 and results_file.exists():
        for r in json.loads(results_file.read_text())["results"]:
            results.append(
                {
                    "unique_id": r["unique_id"],
                    "status": r["status"],
                    "message": r.get("message"),
                    "failures": r.get("failures"),
                }
            )
    error = None if proc.returncode == 0 else (proc.stdout + proc.stderr)[-4000:]
    return DbtStep(full, proc.returncode == 0, seconds, results, error)


def _checked(step: DbtStep) -> DbtStep:
    if not step.success:
        detail = "\n".join(step.failures()) or step.error or "see the dbt log"
        raise SparkBuildError(f"dbt {' '.join(step.args[:3])} failed on Spark:\n{detail}")
    return step


def project_vars(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dbt project's vars (dbt_project.yml) with ``overrides`` (a run's ``--vars``)."""
    declared = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    return {**declared, **(overrides or {})}


@dataclass(frozen=True)
class SparkSteps:
    """The two dbt invocations of a Spark build around the indicators' grouped map."""

    before: tuple[str, ...]  # selection args of the build up to marts.candles
    after: tuple[str, ...]  # selection args of the build from marts.indicators on
    indicators: bool  # whether the grouped map computes marts.indicators


def spark_steps(models: Sequence[str] | None = None) -> SparkSteps:
    """The selection of each step for the dbt ``models`` of a run (names; None: all of them).

    The build is split at marts.indicators (computed in between by the grouped map), so a
    subset is intersected with each side: the first step builds the selected models that are
    not ``indicators+``, the second those that are (dbt's ``a,b`` is an intersection), and the
    grouped map runs only when ``indicators`` itself is selected."""
    if models is None:
        return SparkSteps(BEFORE_INDICATORS, FROM_INDICATORS, True)
    if not models:
        raise ValueError("an empty dbt selection")
    names = sorted(set(models))
    return SparkSteps(
        ("--select", *names, "--exclude", INDICATORS_AND_AFTER),
        ("--select", *(f"{INDICATORS_AND_AFTER},{n}" for n in names)),
        "indicators" in names,
    )


# ------------------------------------------------------------------------ copy into DuckDB
def built_tables(steps: Iterable[DbtStep], manifest: Mapping[str, Any]) -> list[str]:
    """``schema.name`` of every table (not view) the dbt steps built: models and seeds."""
    out = []
    for step in steps:
        for r in step.results:
            node = manifest["nodes"].get(r["unique_id"])
            if node is None or node["resource_type"] not in ("model", "seed"):
                continue
            if node["resource_type"] == "model" and node["config"]["materialized"] == "view":
                continue
            if r["status"] == "success":
                out.append(f"{node['schema']}.{node['alias'] or node['name']}")
    return sorted(set(out))


def copy_into_duckdb(spark: SparkSession, conn: Any, tables: Iterable[str]) -> dict[str, int]:
    """Replace each ``schema.table`` of the DuckDB connection with the Spark table of the same
    name; returns the row counts.

    DuckDB reads the table's Parquet files where Spark wrote them (its warehouse folder), so
    no row passes through the Spark driver: collecting a table into the driver (``toArrow``)
    ran out of the JVM's heap at 28 M trades (benchmarks/scale.py). Only the schema comes from
    Spark."""
    counts = {}
    for name in tables:
        schema = spark.table(name).limit(0).toArrow().schema
        counts[name] = copy_parquet_into_duckdb(conn, name, schema, table_files(spark, name))
    return counts


def table_files(spark: SparkSession, name: str) -> list[Path]:
    """The data files of a Spark table (its location's ``part-*`` files, hidden files and
    ``_SUCCESS`` markers left out). The location must be a folder this process reads: with a
    Spark Connect server, the server's warehouse on a shared filesystem."""
    detail = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    location = next(r["data_type"] for r in detail if r["col_name"] == "Location")
    root = Path(location.removeprefix("file:"))
    if "://" in location or not root.is_dir():
        raise SparkBuildError(
            f"the Spark table {name} is stored at {location}, which this machine cannot read: "
            "the Spark warehouse must be on a filesystem shared with the machine that runs "
            "the build (docs/scale-out.md)"
        )
    return sorted(p for p in root.rglob("part-*") if not p.name.endswith(".crc"))


def copy_parquet_into_duckdb(conn: Any, name: str, schema: pa.Schema, files: Sequence[Path]) -> int:
    """``CREATE OR REPLACE TABLE name`` from Parquet ``files`` written by Spark, every column
    typed as DuckDB would have typed it (``schema``: the Spark table's, as Arrow); returns the
    row count. No files (an empty table): an empty table of that schema."""
    target_schema, _ = name.split(".")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {target_schema}")
    columns = ", ".join(_duckdb_column(f) for f in schema)
    if files:
        listed = ", ".join(warehouse.sql_str(str(f)) for f in files)
        source = f"read_parquet([{listed}])"
    else:
        conn.register("spark_copy", schema.empty_table())
        source = "spark_copy"
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {columns} FROM {source}")
    finally:
        if not files:
            conn.unregister("spark_copy")
    return int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])


def _duckdb_column(f: pa.Field) -> str:
    """A Spark column as DuckDB would have typed it: DECIMAL(38, 0) is how the project's
    Spark SQL spells DuckDB's 128-bit integer sums (macro integer_sum), so it becomes HUGEINT
    again; a timestamp is an instant (TIMESTAMPTZ, as the DuckDB build's); every other type
    maps one to one."""
    quoted = '"' + f.name.replace('"', '""') + '"'
    if pa.types.is_decimal(f.type) and (f.type.precision, f.type.scale) == (38, 0):
        return f"CAST({quoted} AS HUGEINT) AS {quoted}"
    if pa.types.is_timestamp(f.type):
        return f"CAST({quoted} AS TIMESTAMPTZ) AS {quoted}"
    return quoted


# --------------------------------------------------------------------------- the whole build
@dataclass
class SparkBuild:
    """What :func:`build_marts_on_spark` did."""

    steps: list[DbtStep]
    indicator_rows: int
    copied: dict[str, int]
    seconds: float

    def results(self) -> list[dict[str, Any]]:
        return [r for step in self.steps for r in step.results]


def build_marts_on_spark(
    settings: Settings,
    *,
    vars: Mapping[str, Any] | None = None,
    full_refresh: bool = False,
    extra_args: Sequence[str] = (),
    work_dir: Path | None = None,
    models: Sequence[str] | None = None,
) -> SparkBuild:
    """Build the dbt project on Spark from ``settings.lake_dir`` and copy the results into
    ``settings.warehouse_path`` (the caller publishes the read side, as after a DuckDB build).

    Steps: the session; lake tables; ``dbt build --exclude indicators+`` (everything up to
    marts.candles, with its tests); the indicators in a grouped map; ``dbt build --select
    indicators+``; the copy into DuckDB; the dbt views on DuckDB. ``vars`` become dbt
    ``--vars`` (e.g. ``start_ts`` / ``end_ts``); ``extra_args`` go to both builds (e.g.
    ``--exclude-resource-type test``); ``models``: the dbt models of a subset run (names; their
    tests come with them, :func:`spark_steps`), None for the whole project. Only the tables a
    step built are copied. Raises :class:`SparkBuildError` when a dbt step fails.
    The caller must be the only writer of the warehouse file (the ``duckdb`` pool) and the only
    Spark build on ``settings.spark_dir``.
    """
    t0 = time.perf_counter()
    work = work_dir or settings.spark_dir / "dbt"
    spark = session_for(settings)
    with snapshot(settings.lake_dir) as snap:  # other runs may replace lake files meanwhile
        register_lake_tables(spark, snap)
        profiles = write_spark_profile(work / "profiles").parent
        common = [*extra_args]
        if vars:
            common += ["--vars", json.dumps(dict(vars))]
        if full_refresh:
            common.append("--full-refresh")
        plan = spark_steps(models)
        steps = [_checked(run_dbt(["build", *plan.before, *common], profiles, work))]
        indicator_rows = 0
        if plan.indicators:
            max_gap_bars = int(project_vars(vars).get("indicator_max_gap_bars") or 0)
            indicator_rows = compute_indicators_on_spark(spark, max_gap_bars)
        steps.append(_checked(run_dbt(["build", *plan.after, *common], profiles, work)))

        manifest = json.loads((work / "target" / "manifest.json").read_text())
        tables = built_tables(steps, manifest)
        with warehouse.write_connection(settings.warehouse_path) as conn:
            warehouse.register_lake_views(conn, settings.lake_dir)
            copied = copy_into_duckdb(spark, conn, tables)
        # the views of a DuckDB build (staging, intermediate), by dbt-duckdb itself
        duck_profiles = warehouse.write_dbt_profile(
            work / "duckdb-profiles", settings.warehouse_path
        )
        steps.append(
            _checked(
                run_dbt_process(
                    ["run", "--select", "config.materialized:view"],
                    duck_profiles.parent,
                    work / "duckdb",
                )
            )
        )
        register_lake_tables(spark, settings.lake_dir)  # what the session's readers query next
    return SparkBuild(steps, indicator_rows, copied, time.perf_counter() - t0)
