"""Every kind of bad record, through ``land_day``: contract, quarantine, lake write, read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinance_assets.lib import lake
from sentinance_assets.lib.ingest import land_day
from tests.bad_input.cases import CASES, DAY, KEYS, NOW, Case, build
from tests.bad_input.helpers import DATASETS, assert_outcome, contract_for


def test_the_suite_covers_at_least_25_kinds() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 25
    assert {c.entity for c in CASES} == {"trades", "candles", "news"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_quarantined_and_counts_reconcile(case: Case, tmp_path: Path) -> None:
    df, goods, bads = build(case)
    dataset, quarantine = DATASETS[case.entity]
    checked = land_day(
        df,
        dataset=dataset,
        quarantine=quarantine,
        rules=contract_for(case.entity, NOW),
        key=KEYS[case.entity],
        lake_dir=tmp_path,
        day=DAY,
        source="test",
        run_id="run-1",
        now=NOW,
    )
    clean = lake.read_dataset(tmp_path, dataset)
    quarantined = lake.read_dataset(tmp_path, quarantine)
    assert_outcome(case, goods, bads, checked, clean, quarantined)
    assert set(quarantined["run_id"]) <= {"run-1"} and set(quarantined["source"]) <= {"test"}

    # idempotent: landing the same batch again replaces, never appends
    land_day(
        df,
        dataset=dataset,
        quarantine=quarantine,
        rules=contract_for(case.entity, NOW),
        key=KEYS[case.entity],
        lake_dir=tmp_path,
        day=DAY,
        source="test",
        run_id="run-2",
        now=NOW,
    )
    assert lake.read_dataset(tmp_path, dataset).height == clean.height
    assert lake.read_dataset(tmp_path, quarantine).height == quarantined.height
