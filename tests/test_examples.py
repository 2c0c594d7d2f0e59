"""The notebook in examples/ runs top to bottom on a tiny simulated cohort, in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow  # simulates 30 subjects, trains two tiny models for one epoch
def test_the_your_cohort_notebook_runs_to_a_report(tmp_path, monkeypatch):
    notebook = nbformat.read(EXAMPLES / "your_cohort.ipynb", as_version=4)
    monkeypatch.setenv("HYPERFUSION_EXAMPLE_DIR", str(tmp_path))
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert (tmp_path / "run" / "report.md").is_file()
    printed = [
        "".join(o["text"] for o in cell.get("outputs", []) if o.get("name") == "stdout")
        for cell in notebook.cells
    ]
    assert any("'voxel_mm': 4.0" in text and "[16, 24, 16]" in text for text in printed)  # init matched 4 mm
    assert "ad-hyperfusion" in printed[-1]  # the report's head, printed by the last cell
