"""The study command's training overrides reach every cell; a grid axis over the same key still sets it per cell."""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from hyperfusion.cli import main
from hyperfusion.study.grid import load_study


def test_overrides_reach_every_cell_of_a_preset():
    study = load_study("study-cpu", training={"epochs": 1, "device": "cpu", "precision": "fp32"})
    assert len(study.cells) > 1
    for cell in study.cells:
        training = study.config(cell).training
        assert (training.epochs, training.device, training.precision) == (1, "cpu", "fp32")
    plain = load_study("study-cpu")
    assert plain.config(plain.cells[0]).training.epochs == 40  # the preset's own value, untouched


def test_a_grid_axis_over_the_same_key_wins(tmp_path):
    raw = {
        "cohort": "cohort.yaml",
        "methods": ["ad-imaging"],
        "training": {"epochs": 5},
        "study": {"grid": {"training.epochs": [2, 3]}},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    study = load_study(path, training={"epochs": 1, "device": "cpu"})
    assert [study.config(c).training.epochs for c in study.cells] == [2, 3]
    assert {study.config(c).training.device for c in study.cells} == {"cpu"}


def test_study_help_lists_the_overrides():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["study", "--help"])
    assert all(flag in out.getvalue() for flag in ("--epochs", "--device", "--precision"))
