"""Tuning end to end on a tiny simulated cohort: test rows never read, equal budgets, resume to the same best."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.config import config_from_dict, load_config
from hyperfusion.data import load_manifest
from hyperfusion.run.runner import partitions_of
from hyperfusion.simulate import simulate_ad
from hyperfusion.tune import TuningError, tune
from hyperfusion.tune import study as study_module


@pytest.fixture(scope="module")
def cohort_yaml(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    return simulate_ad(out, n=40, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False)


def config_for(cohort: Path, methods=("ad-tabular", "ad-film")):
    raw = {
        "cohort": str(cohort),
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
        "methods": list(methods),
        "model": {"base_width": 2},
        "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 1},
        "training": {"epochs": 2, "batch_size": 8, "lr": 0.001, "device": "cpu", "progress": False},
    }
    return config_from_dict(raw)


def trial_values(out: Path, method: str) -> list[float | None]:
    import optuna

    study = optuna.load_study(study_name=method, storage=f"sqlite:///{out / 'study.sqlite3'}")
    return [(t.value, t.user_attrs.get("val_loss")) for t in study.trials]


def poisoned_copy(cohort_yaml: Path, tmp_path: Path) -> Path:
    """The cohort with every test subject's image and record replaced by garbage."""
    folder = tmp_path / "poisoned"
    shutil.copytree(cohort_yaml.parent, folder)
    cohort = load_manifest(folder / cohort_yaml.name)
    config = config_for(folder / cohort_yaml.name)
    test = (partitions_of(config, cohort, 0) == config.protocol.n_partitions - 1).to_numpy()
    assert test.sum() > 0
    for image in cohort.frame.loc[test, "image"]:
        Path(image).write_bytes(b"not a nifti")
    table = pd.read_csv(cohort.table_path)
    # every record value a model reads, but not the columns the protocol stratifies its partitions by (the
    # partitions of the whole cohort are the protocol's, the same for the tuned run)
    numeric = [c for c in table.columns if pd.api.types.is_float_dtype(table[c]) and c not in cohort.stratify]
    table.loc[test, numeric] = np.nan
    table.to_csv(cohort.table_path, index=False)
    return folder / cohort_yaml.name


def test_trials_never_read_the_test_rows(cohort_yaml, tmp_path):
    clean = tune(config_for(cohort_yaml), tmp_path / "clean", 3, echo=lambda _: None)
    poisoned = tune(
        config_for(poisoned_copy(cohort_yaml, tmp_path)), tmp_path / "poisoned_out", 3, echo=lambda _: None
    )
    for method in ("ad-tabular", "ad-film"):
        values = trial_values(tmp_path / "clean", method)
        assert len(values) == 3 and all(v is not None and np.isfinite(v) for v, _ in values)
        assert values == trial_values(tmp_path / "poisoned_out", method)  # bit-identical
        assert clean[method]["best_score"] == poisoned[method]["best_score"]


def test_poisoning_the_validation_rows_changes_trials(cohort_yaml, tmp_path):
    """The poisoned-test check can fail: poisoning rows a trial does read changes its value."""
    folder = tmp_path / "poisoned_val"
    shutil.copytree(cohort_yaml.parent, folder)
    cohort = load_manifest(folder / cohort_yaml.name)
    config = config_for(folder / cohort_yaml.name, methods=("ad-film",))
    val = (partitions_of(config, cohort, 0) == 0).to_numpy()  # fold 0 validates on partition 0
    table = pd.read_csv(cohort.table_path)
    table.loc[val, "PTEDUCAT"] = table.loc[val, "PTEDUCAT"] + 10.0
    table.to_csv(cohort.table_path, index=False)
    tune(config_for(cohort_yaml, ("ad-film",)), tmp_path / "a", 2, echo=lambda _: None)
    tune(config, tmp_path / "b", 2, echo=lambda _: None)
    assert trial_values(tmp_path / "a", "ad-film") != trial_values(tmp_path / "b", "ad-film")


def test_equal_budget_is_recorded_and_enforced(cohort_yaml, tmp_path):
    results = tune(config_for(cohort_yaml), tmp_path, 2, echo=lambda _: None)
    assert {m: r["budget"] for m, r in results.items()} == {"ad-tabular": 2, "ad-film": 2}
    assert all(len(trial_values(tmp_path, m)) == 2 for m in ("ad-tabular", "ad-film"))
    with pytest.raises(TuningError, match=r"started with --trials 2, not 3"):
        tune(config_for(cohort_yaml), tmp_path, 3, echo=lambda _: None)
    wider = config_from_dict({**config_for(cohort_yaml).to_dict(), "training": {
        **config_for(cohort_yaml).to_dict()["training"], "epochs": 4}})  # fmt: skip
    with pytest.raises(TuningError, match=r"another search space \(differs in \['training.epochs'\]\)"):
        tune(wider, tmp_path, 2, echo=lambda _: None)


def test_interrupted_tuning_resumes_to_the_same_best_trial(cohort_yaml, tmp_path, monkeypatch):
    config = config_for(cohort_yaml, ("ad-film",))
    whole = tune(config, tmp_path / "whole", 4, echo=lambda _: None)

    calls = {"n": 0}
    original = study_module.train_on_fold

    def dies_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(study_module, "train_on_fold", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        tune(config, tmp_path / "resumed", 4, echo=lambda _: None)
    monkeypatch.setattr(study_module, "train_on_fold", original)
    resumed = tune(config, tmp_path / "resumed", 4, echo=lambda _: None)
    finished = [v for v in trial_values(tmp_path / "resumed", "ad-film") if v[0] is not None]
    assert finished == trial_values(tmp_path / "whole", "ad-film")
    assert resumed["ad-film"]["best_score"] == whole["ad-film"]["best_score"]
    assert resumed["ad-film"]["model"] == whole["ad-film"]["model"]


def test_tuned_yaml_is_an_ordinary_run_config(cohort_yaml, tmp_path):
    results = tune(config_for(cohort_yaml, ("ad-film",)), tmp_path, 2, echo=lambda _: None)
    tuned = load_config(tmp_path / "tuned.yaml")
    assert dict(tuned.model_overrides["ad-film"]) == results["ad-film"]["model"]
    scores = json.loads((tmp_path / "tuning.json").read_text())
    assert scores["methods"]["ad-film"]["default_score"] is not None
    assert yaml.safe_load((tmp_path / "tuned.yaml").read_text())["methods"] == ["ad-film"]


def test_cli_tune_writes_the_study_and_tuned_config(cohort_yaml, tmp_path):
    from hyperfusion.cli import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_for(cohort_yaml).to_dict()))
    assert main(["tune", str(path), "--trials", "1", "--out", str(tmp_path / "tuning")]) == 0
    for name in ("study.sqlite3", "tuned.yaml", "tuning.json"):
        assert (tmp_path / "tuning" / name).is_file(), name
    assert (
        main(["tune", str(path), "--trials", "2", "--out", str(tmp_path / "tuning")]) != 0
    )  # budget refused
