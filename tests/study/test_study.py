"""A study end to end on tiny phantom cohorts: a grid of two interaction levels, each cell an ordinary run."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from hyperfusion.cli import main
from hyperfusion.config import ConfigError, preset_names
from hyperfusion.study import load_study, study_from_dict
from tests.faults import fault

STUDY = {
    "study": {"grid": {"simulate.interaction": [0.0, 2.0]}, "metrics": ["BA"]},
    "simulate": {"task": "ad", "n": 30, "voxel_size": 4.0, "seed": 1, "template": "phantom"},
    "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
    "methods": ["ad-imaging", "ad-hyperfusion"],
    "model": {"base_width": 2},
    "protocol": {"split_seeds": [0], "versions": 3, "n_partitions": 3, "folds": 1},
    "training": {"epochs": 1, "batch_size": 8, "lr": 0.001, "device": "cpu", "progress": False},
}


def test_grid_expands_to_cells_with_names_and_values():
    raw = dict(STUDY, study={"grid": {"simulate.interaction": [0, 2], "training.loss": ["weighted_ce", "ce"],
                                      "model_overrides.ad-hyperfusion.bias_std": [0.1]}})  # fmt: skip
    study = study_from_dict(raw)
    assert [c.name for c in study.cells] == [
        "interaction=0,loss=weighted_ce,bias_std=0.1",
        "interaction=0,loss=ce,bias_std=0.1",
        "interaction=2,loss=weighted_ce,bias_std=0.1",
        "interaction=2,loss=ce,bias_std=0.1",
    ]
    config = study.config(study.cells[3])
    assert config.simulate["interaction"] == 2 and config.training.loss == "ce"
    assert config.model_overrides["ad-hyperfusion"]["bias_std"] == 0.1


@fault(
    "study",
    "a study grid naming a key the run configuration does not have",
    "exit status 2 naming the cell and the key, with the nearest valid key",
)
def test_a_bad_grid_key_is_named():
    raw = dict(STUDY, study={"grid": {"training.learning_rate": [0.1]}})
    with pytest.raises(ConfigError, match=r"study cell learning_rate=0.1: .*'learning_rate'"):
        study_from_dict(raw)
    with pytest.raises(ConfigError, match="non-empty list"):
        study_from_dict(dict(STUDY, study={"grid": {"simulate.interaction": 2}}))


@pytest.mark.slow
def test_study_runs_every_cell_and_summarises(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    assert len(load_study(path).cells) == 2
    out = tmp_path / "study"
    assert main(["study", str(path), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["cell"]) == {"interaction=0.0", "interaction=2.0"}
    assert set(summary["method"]) == {"ad-imaging", "ad-hyperfusion", "no-skill"}
    imaging = summary[(summary["method"] == "ad-imaging") & (summary["cell"] == "interaction=2.0")].iloc[0]
    assert imaging["runs"] == 3 and imaging["ci_low"] <= imaging["mean"] <= imaging["ci_high"]
    assert 0.0 <= imaging["wilcoxon_p"] <= 1.0
    text = (out / "summary.md").read_text()
    assert "Wilcoxon" in text and "corrected resampled t-test" in text and "cannot reach" in text
    assert (out / "summary.png").is_file()
    assert len(list((out / "cohorts").iterdir())) == 2  # one simulated cohort per interaction level
    # a rerun resumes: every cell is finished, nothing trains again
    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/units/*/*.json")}
    assert main(["study", str(path), "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/units/*/*.json")} == before


@pytest.mark.parametrize("preset", [p for p in preset_names() if p.startswith("study")])
def test_study_presets_validate(preset):
    study = load_study(preset)
    assert study.cells and study.base.reference_method in study.base.methods
