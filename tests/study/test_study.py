"""A study end to end on tiny phantom cohorts: a grid of two interaction levels, each cell an ordinary run."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from scipy import stats

from hyperfusion.cli import main
from hyperfusion.config import ConfigError, preset_names
from hyperfusion.study import load_study, study_from_dict
from hyperfusion.study.runner import cell_task
from hyperfusion.study.summary import cell_summary, interaction_contrasts
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
    assert set(summary["method"]) == {"ad-imaging", "ad-crop-reader", "ad-hyperfusion", "no-skill"}
    imaging = summary[(summary["method"] == "ad-imaging") & (summary["cell"] == "interaction=2.0")].iloc[0]
    assert imaging["runs"] == 3 and imaging["ci_low"] <= imaging["mean"] <= imaging["ci_high"]
    assert 0.0 <= imaging["wilcoxon_p"] <= 1.0
    text = (out / "summary.md").read_text()
    assert "Wilcoxon" in text and "corrected resampled t-test" in text and "cannot reach" in text
    assert (out / "summary.png").is_file()
    contrasts = pd.read_csv(out / "contrasts.csv")
    assert list(contrasts["method"]) == ["ad-imaging", "ad-crop-reader"]
    assert "Does the gap to ad-hyperfusion change" in text
    assert len(list((out / "cohorts").iterdir())) == 2  # one simulated cohort per interaction level
    # simulated cohorts know their truth: oracles per cell and split seed, and each method's share of the headroom
    oracles = pd.read_csv(out / "oracles.csv")
    assert len(oracles) == 2 and (oracles["headroom"] == oracles["interaction"] - oracles["additive"]).all()
    shares = pd.read_csv(out / "headroom.csv")
    assert set(shares["method"]) == {"ad-imaging", "ad-crop-reader", "ad-hyperfusion"}
    assert (shares["runs"] == 3).all() and "interaction" in shares.columns
    assert "How much of the interaction headroom does each method capture?" in text
    assert (out / "headroom.png").is_file()
    # a rerun resumes: every cell is finished, nothing trains again
    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/units/*/*.json")}
    assert main(["study", str(path), "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/units/*/*.json")} == before


@pytest.mark.parametrize("preset", [p for p in preset_names() if p.startswith("study")])
def test_study_presets_validate(preset):
    study = load_study(preset)
    assert study.cells and study.base.reference_method in study.base.methods


def _results(differences: dict[str, list[float]], reference_values: list[float]) -> pd.DataFrame:
    rows = []
    for version, value in enumerate(reference_values):
        rows.append(("ref", 0, version, "ensemble", "BA", value))
        for method, ds in differences.items():
            rows.append((method, 0, version, "ensemble", "BA", value + ds[version]))
        rows.append(("no-skill", 0, version, "ensemble", "BA", 1 / 3))
    return pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"])


def test_interaction_contrasts_compare_each_cell_with_its_control():
    ref = [0.5, 0.55, 0.6, 0.52]
    cells = [
        ("m=a,i=0", {"m": "a", "i": 0}, _results({"x": [0.0, 0.01, -0.01, 0.02]}, ref)),
        ("m=a,i=1", {"m": "a", "i": 1}, _results({"x": [-0.05, -0.04, -0.06, -0.03]}, ref)),
        ("m=b,i=0", {"m": "b", "i": 0}, _results({"x": [0.1, 0.1, 0.12, 0.08]}, ref)),
        ("m=b,i=1", {"m": "b", "i": 1}, _results({"x": [0.1, 0.11, 0.09, 0.1]}, ref)),
    ]
    table = interaction_contrasts(cells, axes=["m", "i"], reference="ref", metrics=["BA"], fold="ensemble",
                                  test_train_ratio=0.0)  # fmt: skip
    assert list(zip(table["control"], table["cell"])) == [("m=a,i=0", "m=a,i=1"), ("m=b,i=0", "m=b,i=1")]
    first = table.iloc[0]
    assert first["difference_control"] == pytest.approx(0.005, abs=1e-9)
    assert first["difference_cell"] == pytest.approx(-0.045, abs=1e-9)
    assert first["change"] == pytest.approx(-0.05, abs=1e-9)
    welch = stats.ttest_ind([-0.05, -0.04, -0.06, -0.03], [0.0, 0.01, -0.01, 0.02], equal_var=False)
    assert first["corrected_p"] == pytest.approx(welch.pvalue)
    assert set(table["method"]) == {"x"}  # neither the reference nor no-skill


def test_a_survival_cells_summary_scores_c(tmp_path):
    """The summary's task is the cohort's, not the reference model family's (classification for the AD models)."""
    survival = tmp_path / "survival.yaml"
    survival.write_text(
        yaml.safe_dump(
            {
                "table": "t.csv",
                "subject": "id",
                "image": {"column": "image"},
                "target": {"task": "survival", "time": "months", "event": "converted"},
            }
        )
    )
    task = cell_task(SimpleNamespace(cohort=str(survival)))
    assert task.name == "survival" and task.summary_metrics == ("C",) and task.reported_fold == "0"
    runs = [0.61, 0.66, 0.70, 0.64]
    results = pd.DataFrame(
        [
            {"method": m, "split_seed": s, "version": "0", "fold": "0", "metric": "C", "value": v}
            for s, base in enumerate(runs)
            for m, v in (("ad-hyperfusion", base), ("ad-tabular", base - 0.02 * (s + 1)), ("no-skill", 0.5))
        ]
    )
    summary = cell_summary(
        results, reference="ad-hyperfusion", metrics=task.summary_metrics, fold=task.reported_fold,
        test_train_ratio=0.33,
    ).set_index("method")  # fmt: skip
    assert summary.loc["ad-hyperfusion", "mean"] == pytest.approx(sum(runs) / 4)
    tabular = summary.loc["ad-tabular"]
    assert tabular["metric"] == "C" and tabular["runs"] == 4
    assert tabular["difference"] == pytest.approx(-0.05)  # tabular − reference: −0.02·(1+2+3+4)/4
    assert 0 < tabular["wilcoxon_p"] <= 1
