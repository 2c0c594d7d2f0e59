"""benchmarks/gpu_study.sh --dry-run: the GPU dose–response study end to end on the CPU at tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_study_dry_run_runs_the_dose_response_and_prints_its_summary(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "benchmarks/gpu_study.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = yaml.safe_load((tmp_path / "study.yaml").read_text())
    assert (
        study["simulate"]["interaction_mode"] == "location" and study["simulate"]["record"] == "demographics"
    )
    summary = (tmp_path / "study" / "summary.md").read_text()
    assert "How much of the interaction headroom does each method capture?" in summary
    assert (tmp_path / "study" / "headroom.csv").is_file()
    assert "gpu_study:" in done.stdout and summary in done.stdout
