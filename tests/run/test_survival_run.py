"""A survival run end to end on a tiny simulated cohort with time and event columns added to its table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.config import load_config
from hyperfusion.evaluation.survival import harrell_c
from hyperfusion.run.runner import run_protocol
from hyperfusion.simulate import simulate_ad

STAGE = {"CN": 0.0, "SMC": 0.0, "EMCI": 1.0, "LMCI": 1.0, "MCI": 1.0, "AD": 2.0, "Dementia": 2.0}


@pytest.fixture(scope="module")
def survival_yaml(tmp_path_factory) -> Path:
    """40 phantom subjects; months to conversion drawn from the diagnosis, censored at 36 months."""
    out = tmp_path_factory.mktemp("survival")
    simulated = simulate_ad(
        out, n=40, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False
    )
    table = pd.read_csv(simulated.parent / "ADNIMERGE.csv")
    rng = np.random.default_rng(0)
    months = rng.exponential(40.0 * np.exp(-table["DX_bl"].map(STAGE).to_numpy()))
    table["CONVERTED"] = (months <= 36).astype(int)
    table["MONTHS"] = np.minimum(months, 36).round(1)
    table.to_csv(simulated.parent / "ADNIMERGE.csv", index=False)
    spec = {
        "preset": "adnimerge",
        "table": "ADNIMERGE.csv",
        "image": {"column": "image"},
        "target": {"task": "survival", "time": "MONTHS", "event": "CONVERTED"},
    }
    path = simulated.parent / "survival.yaml"
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
    (tmp_path / "run" / "report.md").read_text()  # the report is written
    c = results[results["metric"] == "C"]
    assert set(c["method"]) == {*methods, "no-skill"}
    assert (c.loc[c["method"] == "no-skill", "value"] == 0.5).all()
    assert c["value"].between(0, 1).all()
    partitions = pd.read_csv(tmp_path / "run" / "partitions_seed0.csv")
    assert partitions["partition"].value_counts().to_dict() == {"train": 24, "val": 8, "test": 8}
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    test = predictions[predictions["method"] == "ad-tabular"]
    assert len(test) == 8 and {"predicted", "time", "event"} <= set(test.columns)
    assert harrell_c(test["predicted"], test["time"], test["event"]) == pytest.approx(
        c[(c["method"] == "ad-tabular") & (c["fold"] == "ensemble")]["value"].item()
    )


def test_late_fusion_is_refused_for_survival(survival_yaml, tmp_path) -> None:
    config = load_config(_config(tmp_path / "run.yaml", survival_yaml, ["ad-late-fusion"]))
    with pytest.raises(ValueError, match="late fusion of class probabilities does not apply to survival"):
        run_protocol(config, tmp_path / "run", echo=lambda _: None)
