"""The ingest assets follow the source's declared capabilities, never its name."""

from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg
import pytest

import sentinance_assets.defs.ingest as ingest_package
from sentinance_assets.defs.ingest import landing
from sentinance_assets.defs.ingest.market import raw_trades
from sentinance_assets.lib.sources import build_source
from sentinance_assets.lib.sources.simulated import SimulatedSource
from sentinance_assets.settings import Settings

INGEST_MODULES = sorted(Path(ingest_package.__file__).parent.glob("*.py"))


def _name_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing ``<something>.name`` with anything (``source.name == "live"``)."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(
            isinstance(side, ast.Attribute) and side.attr == "name"
            for side in [node.left, *node.comparators]
        )
    ]


def _probes(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr")
    ]


@pytest.mark.parametrize("module", INGEST_MODULES, ids=lambda p: p.name)
def test_no_branch_on_the_source_name_no_probing_no_type_ignores(module: Path) -> None:
    text = module.read_text()
    tree = ast.parse(text)
    assert _name_comparisons(tree) == [], f"{module.name} branches on a name"
    assert _probes(tree) == [], f"{module.name} probes the source with getattr/hasattr"
    assert "type: ignore" not in text


def test_the_name_check_would_be_found() -> None:
    tree = ast.parse('if source.name == "live":\n    pass\n')
    assert _name_comparisons(tree) == [1]


def _materialize_trades(settings: Settings) -> dict[str, object]:
    result = dg.materialize(
        [raw_trades], partition_key="2026-11-10", resources={"settings": settings}
    )
    (mat,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in mat.materialization.metadata.items()}


def test_an_incremental_source_is_merged_into_the_day_whatever_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulated source that declared itself incremental is asked with the watermark and
    merged, like the live one: the capability decides, not ``name == "live"``."""
    settings = Settings.from_env(
        {"SENTINANCE_HOME": str(tmp_path), "SENTINANCE_EXCHANGES": "binance"}
    )
    whole = _materialize_trades(settings)
    assert "stored_rows" not in whole and "resumed_markets" not in whole  # replaced

    def incremental(settings: Settings) -> SimulatedSource:
        source = build_source(settings)
        assert isinstance(source, SimulatedSource) and source.name == "simulated"
        source.incremental = True  # declared per source; this one says it is incremental
        return source

    monkeypatch.setattr(landing, "build_source", incremental)
    merged = _materialize_trades(settings)
    assert merged["source"] == "simulated"
    assert merged["resumed_markets"] == len(settings.symbols)  # resumed from the stored day
    assert merged["stored_rows"] == whole["clean"]  # the same day again: nothing doubled
