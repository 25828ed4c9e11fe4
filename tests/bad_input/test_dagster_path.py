"""Bad input through the real Dagster ingest assets, with the source swapped for a fake one.

The asset code is untouched: only ``build_source`` in the ingest landing module's namespace
returns a source that hands over the bad batch as received. Each run must succeed, land the
good rows, quarantine the bad ones, and report reconciling counts and a quality score as asset
checks.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sentinance_assets.defs.ingest import landing
from sentinance_assets.defs.ingest.market import raw_candles, raw_trades
from sentinance_assets.defs.ingest.news import raw_news
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import RAW_MARKET_EVENTS
from sentinance_assets.lib.sources.base import WholeDaySource
from sentinance_assets.settings import Settings
from tests.bad_input.cases import CASES, DAY, EXCHANGES, SYMBOLS, Case, build
from tests.bad_input.helpers import DATASETS, assert_outcome

ASSETS = {
    "trades": raw_trades,
    "candles": raw_candles,
    "news": raw_news,
}
# one or more per entity and per kind of defect (types, completeness, lists, time, duplicates)
DAGSTER_CASES = [
    "price_not_a_number",
    "required_column_absent",
    "unknown_symbol",
    "epoch_seconds_not_ms",
    "exact_duplicate",
    "conflicting_duplicate",
    "candle_high_below_close",
    "news_title_script",
    "news_published_garbage",
]


class BatchSource(WholeDaySource):
    """A source that hands over one fixed batch per entity, exactly as given (a whole day)."""

    name = "fake"

    def __init__(self, frames: dict[str, pl.DataFrame]) -> None:
        super().__init__()
        self.frames = frames
        self.days: list[date] = []

    def _get(self, entity: str, day: date) -> pl.DataFrame:
        self.days.append(day)
        return self.frames[entity]

    def trades(self, day: date, since: object = None) -> pl.DataFrame:
        return self._get("trades", day)

    def candles(self, day: date, windows: object = None) -> pl.DataFrame:
        return self._get("candles", day)

    def news(self, day: date, seen: object = None) -> pl.DataFrame:
        return self._get("news", day)

    def events(self, day: date) -> pl.DataFrame:
        return RAW_MARKET_EVENTS.empty()


def settings_for(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "SENTINANCE_HOME": str(tmp_path / "home"),
            "SENTINANCE_EXCHANGES": ",".join(EXCHANGES),
            "SENTINANCE_SYMBOLS": ",".join(SYMBOLS),
            "SENTINANCE_START": "2026-11-01",
            "SENTINANCE_END": "2026-11-12",
        }
    )


def materialize(entity: str, frame: pl.DataFrame, settings: Settings, monkeypatch):
    source = BatchSource({entity: frame})
    monkeypatch.setattr(landing, "build_source", lambda _settings: source)
    result = dg.materialize(
        [ASSETS[entity]], partition_key=DAY, resources={"settings": settings}, raise_on_error=False
    )
    assert source.days == [date.fromisoformat(DAY)]
    return result


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.mark.parametrize("case", [c for c in CASES if c.id in DAGSTER_CASES], ids=lambda c: c.id)
def test_bad_batch_through_the_asset(case: Case, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(tmp_path)
    df, goods, bads = build(case)
    result = materialize(case.entity, df, settings, monkeypatch)
    assert result.success, "bad input never fails the run"

    dataset, quarantine = DATASETS[case.entity]
    clean = lake.read_dataset(settings.lake_dir, dataset)
    quarantined = lake.read_dataset(settings.lake_dir, quarantine)
    (mat,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in mat.materialization.metadata.items()}
    assert meta["received"] == df.height
    assert meta["received"] == meta["clean"] + meta["quarantined"] + meta["exact_duplicates"]
    assert (meta["clean"], meta["quarantined"]) == (clean.height, quarantined.height)

    checks = check_results(result)
    assert checks["counts_reconcile"].passed
    quality = meta["clean"] / meta["received"]
    assert checks["quality_score"].passed == (quality >= 0.99)
    if not checks["quality_score"].passed:
        expected = dg.AssetCheckSeverity.ERROR if quality < 0.95 else dg.AssetCheckSeverity.WARN
        assert checks["quality_score"].severity == expected

    class _Checked:  # what assert_outcome needs, rebuilt from the run's metadata
        received = meta["received"]
        exact_duplicates = meta["exact_duplicates"]
        reconciles = checks["counts_reconcile"].passed

    _Checked.clean, _Checked.quarantined = clean, quarantined
    assert_outcome(case, goods, bads, _Checked, clean, quarantined)  # type: ignore[arg-type]
    assert set(quarantined["run_id"]) <= {result.run_id}
