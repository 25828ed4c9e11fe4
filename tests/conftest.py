"""Shared fixtures: a tiny, fast configuration of the simulated market."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinance_assets.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY_ENV = {
    "SENTINANCE_START": "2026-11-10",
    "SENTINANCE_END": "2026-11-13",
    "SENTINANCE_EXCHANGES": "binance,coinbase",
    "SENTINANCE_SYMBOLS": "BTC,ETH",
    "SENTINANCE_SIM_TRADE_RATE": "1.5",
    "SENTINANCE_SEED": "7",
}


@pytest.fixture
def tiny_env(tmp_path: Path) -> dict[str, str]:
    return {**TINY_ENV, "SENTINANCE_HOME": str(tmp_path / "home")}


@pytest.fixture
def tiny_settings(tiny_env: dict[str, str]) -> Settings:
    return Settings.from_env(tiny_env)


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (needs ../shared beside the repo)")
    return path


# small data: Spark's adaptive execution re-plans every stage, which costs more than it saves
SPARK_TEST_CONF = {"spark.sql.adaptive.enabled": "false"}


@pytest.fixture(scope="session")
def spark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Warehouse and metastore of the test process's Spark session (tests marked ``spark``)."""
    return tmp_path_factory.mktemp("spark")


@pytest.fixture(scope="session")
def spark(spark_dir: Path):
    """One Spark session (local[2]) for every test of the process: a process holds one session,
    and its JVM start costs seconds. Skips when Java or PySpark is missing."""
    from sentinance_assets.lib import spark as spark_engine

    reason = spark_engine.spark_unavailable_reason()
    if reason:
        pytest.skip(f"Spark tests need Java and PySpark: {reason}")
    return spark_engine.spark_session(spark_dir, "local[2]", 4, SPARK_TEST_CONF)
