"""Fixtures of the API tests: a small published home, and ``sentinance api`` on free ports.

The home is built once per session without Dagster (a demo takes minutes): the dbt tests'
synthetic lake (four markets over four hours, a kraken market known only by its candles, news
and sentiment) through the real dbt models, then published like the warehouse step does; plus
alerts of every type written as the batch asset and the watch loop write them (with a
re-detected alert, tied event times for the pagination, a NaN value), forecasts (with stored
intervals, plus a partition written before they existed) with their evaluation, and a model
registry. Every expected answer is then read back with SQL from the published file, never
hard-coded from the fixture.

Two real servers (uvicorn, started by the CLI): ``api`` (no key, no rate limit: contracts,
stream, fuzzing) and ``strict_api`` (an API key, 5 requests a minute, a 2 KiB body limit and
one CORS origin).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import pytest

from sentinance_assets.lib import lake, warehouse
from sentinance_assets.lib.schemas import ALERTS, FORECAST_EVALUATION, FORECASTS
from tests.dbt_project.dbt_synthetic import run_dbt_build, write_lake

REPO = Path(__file__).resolve().parents[2]
SENTINANCE = str(Path(sys.executable).parent / "sentinance")
API_KEY = "test-key-0123456789abcdef"
CORS_ORIGIN = "https://dash.example.test"
T0 = datetime(2026, 11, 14, 21, 0, tzinfo=UTC)  # the synthetic lake's first trade hour
DETECTED = datetime(2026, 11, 15, 2, 0, tzinfo=UTC)
MARKETS = [
    ("binance", "BTC/USDT"),
    ("coinbase", "BTC/USD"),
    ("binance", "ETH/USDT"),
    ("coinbase", "ETH/USD"),
]
TYPES = ["whale", "volume_spike", "divergence", "pump_and_dump", "wash_trading"]
SEVERITIES = ["info", "warning", "critical"]
FORECAST_VERSION = "lstm-test-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the home
def _alert(i: int, event_time: datetime, detected: datetime, **over: Any) -> dict[str, Any]:
    exchange, symbol = MARKETS[i % len(MARKETS)]
    row = {
        "alert_id": f"t{i:04d}",
        "type": TYPES[i % len(TYPES)],
        "exchange": exchange,
        "symbol": symbol,
        "severity": SEVERITIES[i % len(SEVERITIES)],
        "event_time": event_time,
        "detected_at": detected,
        "value": 100_000.0 + i,
        "threshold": 100_000.0,
        "message": f"test alert {i} on {exchange} {symbol}",
        "details": json.dumps({"usd": 100_000.0 + i, "i": i}),
        "rules_version": "rules-test",
    }
    row.update(over)
    return row


def make_alerts() -> dict[str, pl.DataFrame]:
    """Alert files: a batch run, a watch-loop segment and a batch re-detection."""
    batch = []
    for i in range(120):
        # three alerts per event time: pagination must break the ties by alert_id
        event = T0 + timedelta(minutes=2 * (i // 3))
        batch.append(_alert(i, event, DETECTED + timedelta(seconds=i)))
    batch.append(
        _alert(
            900,
            T0 + timedelta(minutes=30),
            DETECTED + timedelta(seconds=900),
            value=float("nan"),
            details='{"ratio": NaN, "note": "a NaN in the numbers"}',
        )
    )
    watch = [
        _alert(
            1000 + i, T0 + timedelta(hours=3, minutes=i), DETECTED + timedelta(hours=1, seconds=i)
        )
        for i in range(10)
    ]
    # the batch asset detects t1000 again, later: the feed keeps the first detection
    again = [_alert(1000, T0 + timedelta(hours=3), DETECTED + timedelta(hours=2), message="again")]
    conform = ALERTS.conform
    return {
        "batch/date=2026-11-14/part.parquet": conform(pl.DataFrame(batch)),
        "watch-test/1-2.parquet": conform(pl.DataFrame(watch)),
        "batch/date=2026-11-15/part.parquet": conform(pl.DataFrame(again)),
    }


# (target, horizon) -> serving model, prediction, 80 % and 95 % intervals, coverages: the
# 4h return's coverage was not measured, the 24h return has no stored interval
FORECAST_POINTS: dict[tuple[str, str], dict[str, Any]] = {
    ("log_return", "1h"): {
        "model": "lstm",
        "prediction": 0.001,
        "bands": (-0.004, 0.006, -0.008, 0.011),
        "coverage": (0.78, 0.94),
    },
    ("log_return", "4h"): {
        "model": "zero_return",
        "prediction": 0.0,
        "bands": (-0.01, 0.01, -0.02, 0.021),
        "coverage": (None, None),
    },
    ("log_return", "24h"): {
        "model": "persistence",
        "prediction": 0.004,
        "bands": (None, None, None, None),
        "coverage": (0.81, 0.96),
    },
    ("realized_vol", "1h"): {
        "model": "har",
        "prediction": 0.005,
        "bands": (0.003, 0.008, 0.002, 0.012),
        "coverage": (0.8, 0.95),
    },
    ("realized_vol", "4h"): {
        "model": "ewma_vol",
        "prediction": 0.01,
        "bands": (0.006, 0.015, 0.004, 0.022),
        "coverage": (0.79, 0.93),
    },
    ("realized_vol", "24h"): {
        "model": "har",
        "prediction": 0.025,
        "bands": (0.015, 0.035, 0.01, 0.05),
        "coverage": (0.82, 0.97),
    },
}
FORECAST_ORIGIN = T0 + timedelta(hours=3)


def make_forecasts() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """This run's forecasts of binance BTC/USDT (every target and horizon, with an older
    origin that must not be served), coinbase BTC/USD rows as written before model selection
    (no model, interval or coverage columns at all), and an evaluation with hold-out RMSEs
    that must not make a band."""
    created = DETECTED
    rows = []
    for origin, shift in ((FORECAST_ORIGIN - timedelta(hours=1), 0.5), (FORECAST_ORIGIN, 0.0)):
        for (target, horizon), p in FORECAST_POINTS.items():
            lo80, hi80, lo95, hi95 = p["bands"]
            rows.append(
                {
                    "symbol": "BTC/USDT",
                    "exchange": "binance",
                    "origin_ts": origin,
                    "horizon": horizon,
                    "target": target,
                    "prediction": p["prediction"] + shift,
                    "lower_80": lo80,
                    "upper_80": hi80,
                    "lower_95": lo95,
                    "upper_95": hi95,
                    "model": p["model"],
                    "model_version": FORECAST_VERSION,
                    "reason": f"lowest pooled loss on the walk-forward hold-out ({p['model']})",
                    "coverage_80": p["coverage"][0],
                    "coverage_95": p["coverage"][1],
                    "created_at": created - timedelta(hours=1) if shift else created,
                }
            )
    forecasts = pl.DataFrame(rows, schema_overrides=dict(FORECASTS.columns))
    old = pl.DataFrame(
        {
            "symbol": ["BTC/USD"] * 2,
            "exchange": ["coinbase"] * 2,
            "origin_ts": [FORECAST_ORIGIN] * 2,
            "horizon": ["1h", "4h"],
            "target": ["log_return"] * 2,
            "prediction": [0.002, -0.003],
            "model_version": ["lstm-old-1"] * 2,
            "created_at": [created] * 2,
        },
        schema_overrides={c: FORECASTS.columns[c] for c in ("origin_ts", "created_at")},
    )
    evaluation = pl.DataFrame(
        {
            "run_id": ["r1"] * 2,
            "model_version": [FORECAST_VERSION] * 2,
            "symbol": ["BTC/USDT", "ALL"],
            "horizon": ["1h", "4h"],
            "model": ["lstm"] * 2,
            "metric": ["rmse"] * 2,
            "value": [0.01, 0.02],
            "n": [100, 100],
            "evaluated_at": [created] * 2,
        }
    )
    return FORECASTS.conform(forecasts), old, FORECAST_EVALUATION.conform(evaluation)


def make_registry(db: Path) -> None:
    """The registry tables the API reads, laid out as MLflow's SQLite store lays them out (a
    real MLflow store takes ~20 s to create; ``/v1/models`` was checked against one by hand)."""
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        create table model_versions (name varchar(256), version integer, creation_time bigint,
            last_updated_time bigint, description varchar(5000), user_id varchar(256),
            current_stage varchar(20), source varchar(500), run_id varchar(32),
            status varchar(20), status_message varchar(500), run_link varchar(500),
            storage_location varchar(500));
        create table registered_model_aliases (alias varchar(256), version integer,
            name varchar(256));
        create table model_version_tags (key varchar(250), value varchar(5000),
            name varchar(256), version integer);
        create table latest_metrics (key varchar(250), value float, timestamp bigint,
            step bigint, is_nan boolean, run_uuid varchar(32));
        insert into model_versions (name, version, creation_time, run_id, status) values
            ('sentinance-forecaster', 1, 1794000000000, 'run1', 'READY'),
            ('sentinance-forecaster', 2, 1794100000000, 'run2', 'READY'),
            ('sentinance-sentiment', 1, 1794200000000, 'run3', 'READY');
        insert into registered_model_aliases values ('champion', 2, 'sentinance-forecaster');
        insert into registered_model_aliases values ('latest_trained', 2,
            'sentinance-forecaster');
        insert into model_version_tags values
            ('promotion_decision', 'rejected', 'sentinance-forecaster', 1),
            ('promotion_decision', 'promoted', 'sentinance-forecaster', 2),
            ('promotion_reason', 'beats every baseline', 'sentinance-forecaster', 2),
            ('promotion_decision', 'rejected', 'sentinance-sentiment', 1);
        insert into latest_metrics values
            ('lstm.rmse.1h.ALL', 0.011, 0, 0, 0, 'run2'),
            ('lstm.mae.1h.ALL', 0.008, 0, 0, 0, 'run2'),
            ('test_macro_f1', 0.8, 0, 0, 0, 'run3');
        """
    )
    conn.commit()
    conn.close()


@pytest.fixture(scope="session")
def api_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published home (see the module docstring)."""
    home = tmp_path_factory.mktemp("api") / "home"
    lake_dir = home / "lake"
    data = write_lake(lake_dir)
    for rel, frame in make_alerts().items():
        lake.atomic_write_parquet(frame, lake.dataset_dir(lake_dir, ALERTS) / rel)
    forecasts, old_forecasts, evaluation = make_forecasts()
    lake.write_partition(lake_dir, FORECASTS, forecasts)
    # a partition written before the interval columns existed
    lake.atomic_write_parquet(
        old_forecasts, lake.dataset_dir(lake_dir, FORECASTS) / "origin-old.parquet"
    )
    lake.write_partition(lake_dir, FORECAST_EVALUATION, evaluation)
    run = run_dbt_build(lake_dir, home, data, "--exclude-resource-type", "test", "unit_test")
    if run.returncode != 0:
        pytest.fail(f"dbt build failed ({run.returncode}):\n{run.output[-6000:]}")
    warehouse.publish(home / "warehouse.duckdb", home / "warehouse.read.duckdb")
    make_registry(home / "mlflow.db")
    return home


def sql(home: Path, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """The expected answer, read with SQL from the published file."""
    with duckdb.connect(str(home / "warehouse.read.duckdb"), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        cur = conn.execute(query, params or [])
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def iso(ts: datetime) -> str:
    """A timestamp as the API writes it (pydantic: ISO-8601, UTC as ``Z``)."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- servers
class Server:
    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SENTINANCE_")}
        self.env = {
            **base,
            "SENTINANCE_HOME": str(home),
            "SENTINANCE_API_PORT": str(self.port),
            **env,
        }
        self.log = log
        self._logf = log.open("w")
        self.proc = subprocess.Popen(
            [SENTINANCE, "api"],
            cwd=REPO,
            env=self.env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sentinance api exited:\n{log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sentinance api did not answer:\n{log.read_text()}")
            time.sleep(0.2)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._logf.close()


@pytest.fixture(scope="session")
def api(api_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        api_home,
        {"SENTINANCE_API_RATE_LIMIT": "0"},
        tmp_path_factory.mktemp("api-log") / "api.log",
    )
    yield server
    server.stop()
    assert "Traceback" not in server.log.read_text(), server.log.read_text()[-3000:]


@pytest.fixture(scope="session")
def strict_api(api_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        api_home,
        {
            "SENTINANCE_API_KEY": API_KEY,
            "SENTINANCE_API_RATE_LIMIT": "5",
            "SENTINANCE_API_MAX_BODY_KIB": "2",
            "SENTINANCE_API_CORS_ORIGINS": CORS_ORIGIN,
            "SENTINANCE_API_SENTIMENT_MAX_TEXTS": "3",
        },
        tmp_path_factory.mktemp("strict-log") / "api.log",
    )
    yield server
    server.stop()
