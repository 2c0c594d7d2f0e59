"""A survival run end to end on a tiny simulated cohort whose visits the manifest turns into time and event."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.cli import main
from hyperfusion.config import load_config
from hyperfusion.evaluation.survival import harrell_c
from hyperfusion.run.runner import run_protocol
from hyperfusion.simulate import simulate_ad


@pytest.fixture(scope="module")
def survival_yaml(tmp_path_factory) -> Path:
    """120 phantom subjects with simulated follow-up visits; the cohort spec derives baseline-MCI conversion."""
    out = tmp_path_factory.mktemp("survival")
    simulate_ad(
        out, n=120, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False, visits=True
    )
    spec = {
        "preset": "adnimerge",
        "image": {"column": "image"},
        "target": {
            "task": "survival",
            "from_visits": {"months": "M", "diagnosis": "DX", "at_risk": ["MCI"], "event": ["Dementia"]},
        },
    }
    path = out / "survival.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _config(path: Path, cohort: Path, methods: list[str]) -> Path:
    config = {
        "cohort": str(cohort),
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
        "methods": methods,
        "model": {"base_width": 2},
        "protocol": {
            "split_seeds": [0],
            "versions": 2,
            "top_k": 1,
            "val_fraction": 0.2,
            "test_fraction": 0.2,
        },
        "training": {
            "epochs": 2,
            "batch_size": 8,
            "lr": 0.001,
            "loss": "cox",
            "device": "cpu",
            "progress": False,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_survival_run_scores_c_beside_no_skill(survival_yaml, tmp_path) -> None:
    methods = ["ad-tabular", "ad-imaging", "ad-hyperfusion"]
    config = load_config(_config(tmp_path / "run.yaml", survival_yaml, methods))
    results = run_protocol(config, tmp_path / "run", echo=lambda _: None)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Survival: concordance and time-dependent AUC" in report and "by validation C (eq. 6)" in report
    assert (tmp_path / "run" / "survival_tertiles.png").stat().st_size > 0
    c = results[results["metric"] == "C"]
    assert set(c["method"]) == {*methods, "no-skill"}
    assert (c.loc[c["method"] == "no-skill", "value"] == 0.5).all()
    assert c["value"].between(0, 1).all()
    partitions = pd.read_csv(tmp_path / "run" / "partitions_seed0.csv")
    counts = partitions["partition"].value_counts().to_dict()
    assert set(counts) == {"train", "val", "test"} and sum(counts.values()) == 53  # the at-risk MCI subjects
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    test = predictions[predictions["method"] == "ad-tabular"]
    assert len(test) == counts["test"] and {"predicted", "time", "event"} <= set(test.columns)
    table = pd.read_csv(survival_yaml.parent / "ADNIMERGE.csv")
    baseline = table[(table["VISCODE"] == "bl") & table["PTID"].isin(test["subject_id"])]
    baseline.drop(columns=["M", "DX"]).to_csv(survival_yaml.parent / "new.csv", index=False)  # no outcome yet
    csv = tmp_path / "predicted.csv"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "run"),
                "--manifest",
                str(survival_yaml.parent / "new.csv"),
                "--out",
                str(csv),
            ]
        )
        == 0
    )
    again = pd.read_csv(csv).set_index("subject_id")
    reference = predictions[predictions["method"] == "ad-hyperfusion"].set_index("subject_id")
    np.testing.assert_allclose(again.loc[reference.index, "predicted"], reference["predicted"], atol=1e-6)
    assert harrell_c(test["predicted"], test["time"], test["event"]) == pytest.approx(
        c[(c["method"] == "ad-tabular") & (c["fold"] == "ensemble")]["value"].item()
    )


def test_late_fusion_is_refused_for_survival(survival_yaml, tmp_path) -> None:
    config = load_config(_config(tmp_path / "run.yaml", survival_yaml, ["ad-late-fusion"]))
    with pytest.raises(ValueError, match="late fusion of class probabilities does not apply to survival"):
        run_protocol(config, tmp_path / "run", echo=lambda _: None)
