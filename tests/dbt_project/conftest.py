"""Fixtures of the dbt tests: the synthetic lake built once with `dbt build`."""

from __future__ import annotations

import pytest

from tests.dbt_project.dbt_synthetic import DbtRun, run_dbt_build, write_lake


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> DbtRun:
    """The synthetic lake built once with `dbt build` (models, seeds and tests)."""
    work = tmp_path_factory.mktemp("dbt_build")
    lake_dir = work / "lake"
    data = write_lake(lake_dir)
    run = run_dbt_build(lake_dir, work, data)
    if run.returncode != 0:
        pytest.fail(f"dbt build failed ({run.returncode}):\n{run.output[-6000:]}")
    return run
