"""Every notebook in notebooks/ runs top to bottom on the demo warehouse (nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
pytest.importorskip("ipykernel", reason="ipykernel is not installed")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
REQUIRED = {"market_exploration.ipynb", "sentiment_vs_returns.ipynb", "model_evaluation.ipynb"}


def test_required_notebooks_exist_with_cleared_outputs():
    names = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert REQUIRED <= names, f"missing notebooks: {REQUIRED - names}"
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name}: commit notebooks with cleared outputs"
                )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_on_the_demo_warehouse(name, demo_warehouse, monkeypatch, tmp_path):
    for key in ("SENTINANCE_HOME", "SENTINANCE_SOURCE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SENTINANCE_HOME", str(demo_warehouse))  # the kernel inherits it
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    text = "\n".join(
        str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert str(demo_warehouse / "warehouse.read.duckdb") in text, "read the wrong warehouse"
    # the warehouse was only read: the notebook created no write-side file
    assert not (tmp_path / ".sentinance").exists()
