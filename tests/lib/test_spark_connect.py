"""The Spark engine through a Spark Connect server (``SENTINANCE_SPARK_REMOTE``, issue #20).

A cluster is reached the way PySpark 4 reaches one: a Spark Connect server, here a local one
started from the installed PySpark (``SparkConnectServer`` on 127.0.0.1, its own metastore and
warehouse, as a cluster's would be). The build and the detection backfill then run in a child
process that is only a Connect *client* (no JVM of its own): the same dbt project, the
indicators' grouped map and the detection tasks execute on the server. The results must equal
the single-machine runs exactly, as in the session-mode tests (test_spark_equality.py,
test_spark_detection.py), whose scenarios and comparisons are reused.

A child process because a process holds one kind of session: the test process already runs
the local session of the other Spark tests (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib import spark as spark_engine
from sentinance_assets.lib.schemas import ALERTS
from sentinance_assets.settings import Settings

REPO = Path(__file__).resolve().parents[2]
REASON = spark_engine.spark_unavailable_reason() or spark_engine.spark_unavailable_reason(
    "sc://localhost"
)
pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(REASON is not None, reason=f"Spark Connect tests need: {REASON}"),
]
SERVER_START_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on 127.0.0.1 (local[2]), as ``start-connect-server.sh`` runs it;
    its Python workers are this interpreter (the project is importable there)."""
    import pyspark

    home = tmp_path_factory.mktemp("connect-server")
    port = _free_port()
    spark_home = Path(pyspark.__file__).parent
    command = [
        str(spark_home / "bin" / "spark-submit"),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master",
        "local[2]",
        "--name",
        "sentinance-test-connect",
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf",
        "spark.sql.catalogImplementation=hive",
        "--conf",
        f"spark.sql.warehouse.dir={home / 'warehouse'}",
        "--conf",
        f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName="
        f"{home / 'metastore_db'};create=true",
        "--conf",
        f"spark.driver.extraJavaOptions=-Dderby.system.home={home} -Duser.timezone=UTC",
        "--conf",
        "spark.sql.adaptive.enabled=false",
        "--conf",
        "spark.ui.enabled=false",
    ]
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": str(REPO),
    }
    log = (home / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (home / "server.log").read_text()[-3000:]
                pytest.fail(f"the Spark Connect server did not start:\n{tail}")
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _client(step: str, *args: str) -> dict:
    """Run ``_client_main(step, *args)`` in a child process (a Connect client only) and return
    the JSON it prints last."""
    code = f"from tests.lib.test_spark_connect import _client_main; _client_main({step!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _client_main(step: str) -> None:
    """The child's side: ``marts URL HOME DUCK`` builds the synthetic lake under HOME/lake on
    the server and compares it with the DuckDB build DUCK; ``detect URL LAKE`` runs the
    detection backfill of LAKE on the server."""
    url = sys.argv[1]
    if step == "marts":
        from tests.dbt_project.test_spark_equality import NO_TESTS, compare

        home, duck = Path(sys.argv[2]), Path(sys.argv[3])
        settings = Settings(home=home, engine="spark", spark_remote=url)
        build = spark_engine.build_marts_on_spark(settings, extra_args=NO_TESTS, full_refresh=True)
        session = spark_engine.session_for(settings)
        out = {
            "session": type(session).__module__,
            "indicator_rows": build.indicator_rows,
            "result": compare(duck, settings.warehouse_path, session),
        }
    else:
        from sentinance_assets.defs.detection.batch import detect_stale_days
        from sentinance_assets.lib.detection.engine import detect_all
        from sentinance_assets.lib.spark_detection import detect_days_on_spark
        from tests.lib.test_spark_detection import CFG, DETECTED_AT

        lake_dir = Path(sys.argv[2])
        session = spark_engine.remote_session(url)

        def on_spark(files: dict[str, Path], stale: list[str]) -> tuple[pl.DataFrame, int]:
            result = detect_days_on_spark(session, files, stale, CFG, DETECTED_AT)
            return result.alerts, result.trades_scanned

        run = detect_stale_days(lake_dir, detect_all, many=on_spark)
        out = {"session": type(session).__module__, "days": run.days}
    print(json.dumps(out, default=str))


def test_marts_built_through_spark_connect_equal_duckdb(connect_server: str, tmp_path: Path):
    from tests.dbt_project.dbt_synthetic import run_dbt_build, write_lake
    from tests.dbt_project.test_spark_equality import NO_TESTS, assert_equal

    data = write_lake(tmp_path / "lake")
    duck = run_dbt_build(tmp_path / "lake", tmp_path / "duck", data, *NO_TESTS)
    assert duck.returncode == 0, duck.output[-4000:]
    out = _client("marts", connect_server, str(tmp_path), str(duck.warehouse))
    assert out["session"] == "pyspark.sql.connect.session"  # a client, not a local JVM
    assert out["indicator_rows"] > 0
    assert_equal(out["result"])


def test_detection_backfill_through_spark_connect_equals_the_single_machine_run(
    connect_server: str, tmp_path: Path
):
    import shutil

    from tests.lib.test_spark_detection import _days, _land, _single_machine

    local, remote = tmp_path / "local", tmp_path / "remote"
    _land(local, _days())
    shutil.copytree(local, remote)
    expected = _single_machine(local)
    out = _client("detect", connect_server, str(remote))
    assert out["session"] == "pyspark.sql.connect.session"
    assert len(out["days"]) == 3
    got = lake.read_dataset(remote, ALERTS).sort("alert_id")
    assert expected.height > 50
    assert got.equals(expected)  # every column, ids included
