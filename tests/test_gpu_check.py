"""benchmarks/gpu_check.sh --dry-run: the whole device script end to end on the CPU at tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_prints_the_one_table(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "gpu_table_dry_run.md").read_text()
    assert "DRY RUN" in table and "not GPU figures" in table
    for row in (
        "step, ad-hyperfusion",
        "step, brainage-hyperfusion",
        "loader, 2 workers",
        "252-model protocol",
    ):
        assert f"| {row}" in table, row
    for packed in (1, 2):  # the dry run's packing levels (the device run: 1, 2, 4 and 8)
        assert f"| AD protocol, {packed} per GPU |" in table
    assert "eager fp32 / compiled bf16 + channels-last" in table
    assert (tmp_path / "protocol_report_dry_run.md").read_text().startswith("# HyperFusion comparison")
    assert table in done.stdout  # printed at the end, not only written
