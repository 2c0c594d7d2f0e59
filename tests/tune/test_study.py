"""Tuning end to end on a tiny simulated cohort: test rows never read, equal budgets, resume to the same best, and
a run of tuned.yaml trains each method at its tuned settings.

One tuning (``tuned``, 3 trials of ad-tabular and ad-film) is shared by the tests that only read it; each test that
could fail on its own guarantee (poisoned rows, a killed tuning, a refused budget) makes its own second tuning or
refusal against it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml

from hyperfusion.config import config_from_dict, load_config
from hyperfusion.data import load_manifest
from hyperfusion.run.plan import Unit
from hyperfusion.run.runner import partitions_of, run_protocol
from hyperfusion.run.store import RunDirectory
from hyperfusion.simulate import simulate_ad
from hyperfusion.tune import TuningError, tune
from hyperfusion.tune import study as study_module
from tests.faults import fault


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


TRIALS = 3
METHODS = ("ad-tabular", "ad-film")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every tuning here on one thread, as a Ray task with one core: the tunings compared bit for bit (poisoned,
    resumed, on Ray) then sum in the same order, in one process or under xdist alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tuned(cohort_yaml, tmp_path_factory) -> Path:
    """The tuning directory of the default config: ad-tabular, then ad-film warm-started from its best."""
    out = tmp_path_factory.mktemp("tuned")
    tune(config_for(cohort_yaml), out, TRIALS, echo=lambda _: None)
    return out


def results_of(out: Path) -> dict:
    return json.loads((out / "tuning.json").read_text())["methods"]


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


def test_trials_never_read_the_test_rows(cohort_yaml, tuned, tmp_path):
    poisoned_cohort = poisoned_copy(cohort_yaml, tmp_path)
    poisoned = tune(config_for(poisoned_cohort), tmp_path / "poisoned_out", TRIALS, echo=lambda _: None)
    for method in METHODS:
        values = trial_values(tuned, method)
        assert len(values) == TRIALS and all(v is not None and np.isfinite(v) for v, _ in values)
        assert values == trial_values(tmp_path / "poisoned_out", method)  # bit-identical
        assert results_of(tuned)[method] == poisoned[method]
    # the tuned config the run takes is the same, but for the cohort it names
    same = (
        (tmp_path / "poisoned_out" / "tuned.yaml").read_text().replace(str(poisoned_cohort), str(cohort_yaml))
    )
    assert same == (tuned / "tuned.yaml").read_text()


def test_poisoning_the_validation_rows_changes_trials(cohort_yaml, tuned, tmp_path):
    """The poisoned-test check can fail: poisoning rows a trial does read changes its value."""
    folder = tmp_path / "poisoned_val"
    shutil.copytree(cohort_yaml.parent, folder)
    cohort = load_manifest(folder / cohort_yaml.name)
    config = config_for(folder / cohort_yaml.name)
    val = (partitions_of(config, cohort, 0) == 0).to_numpy()  # fold 0 validates on partition 0
    table = pd.read_csv(cohort.table_path)
    table.loc[val, "PTEDUCAT"] = table.loc[val, "PTEDUCAT"] + 10.0
    table.to_csv(cohort.table_path, index=False)
    tune(config, tmp_path / "b", 1, echo=lambda _: None)  # trial 0: the same settings as the shared tuning's
    for method in METHODS:
        assert trial_values(tuned, method)[:1] != trial_values(tmp_path / "b", method)


def test_equal_budget_is_recorded_and_enforced(cohort_yaml, tuned):
    assert {m: r["budget"] for m, r in results_of(tuned).items()} == dict.fromkeys(METHODS, TRIALS)
    assert all(len(trial_values(tuned, m)) == TRIALS for m in METHODS)
    with pytest.raises(TuningError, match=rf"started with --trials {TRIALS}, not 2"):
        tune(config_for(cohort_yaml), tuned, 2, echo=lambda _: None)
    wider = config_from_dict({**config_for(cohort_yaml).to_dict(), "training": {
        **config_for(cohort_yaml).to_dict()["training"], "epochs": 4}})  # fmt: skip
    with pytest.raises(TuningError, match=r"another search space \(differs in \['training.epochs'\]\)"):
        tune(wider, tuned, TRIALS, echo=lambda _: None)
    assert all(len(trial_values(tuned, m)) == TRIALS for m in METHODS)  # refused before any trial


def test_interrupted_tuning_resumes_to_the_same_best_trial(cohort_yaml, tuned, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = study_module.train_on_fold

    def dies_in_the_second_study(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == TRIALS + 2:  # ad-film's trial 1 (ad-tabular, the member, is tuned first)
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(study_module, "train_on_fold", dies_in_the_second_study)
    with pytest.raises(KeyboardInterrupt):
        tune(config_for(cohort_yaml), tmp_path / "resumed", TRIALS, echo=lambda _: None)
    monkeypatch.setattr(study_module, "train_on_fold", original)
    resumed = tune(config_for(cohort_yaml), tmp_path / "resumed", TRIALS, echo=lambda _: None)
    for method in METHODS:
        finished = [v for v in trial_values(tmp_path / "resumed", method) if v[0] is not None]
        assert finished == trial_values(tuned, method)
    assert resumed == results_of(tuned)


def test_a_resumed_study_refuses_other_settings_or_members(cohort_yaml, tuned):
    wider = config_from_dict({**config_for(cohort_yaml).to_dict(), "model": {"base_width": 3}})
    with pytest.raises(TuningError, match=r"study 'ad-tabular' was started with other settings \(model: "):
        tune(wider, tuned, TRIALS, echo=lambda _: None)
    # ad-film's trials started from ad-tabular trained at its tuned settings; a member trained otherwise is refused
    study = optuna.create_study()
    config = config_for(cohort_yaml)
    study_module._check_settings(
        study, "ad-film", "members", study_module.member_settings(config, "ad-film"), tuned
    )
    other = config_from_dict({**config.to_dict(), "method_training": {"ad-tabular": {"lr": 0.01}}})
    assert study_module.member_settings(other, "ad-film") != study_module.member_settings(config, "ad-film")
    with pytest.raises(
        TuningError, match=r"study 'ad-film' warm-starts from \['ad-tabular'\] trained with other"
    ):
        study_module._check_settings(
            study, "ad-film", "members", study_module.member_settings(other, "ad-film"), tuned
        )
    assert all(len(trial_values(tuned, m)) == TRIALS for m in METHODS)  # refused before any trial


@fault(
    "tuning",
    "a run of tune's tuned.yaml",
    "each method's units train at its tuned settings (records state them) and reproduce its best trial's score",
)
def test_a_run_of_tuned_yaml_trains_each_method_at_its_tuned_settings(tuned, tmp_path):
    results = results_of(tuned)
    config = load_config(tuned / "tuned.yaml")
    assert yaml.safe_load((tuned / "tuned.yaml").read_text())["methods"] == list(METHODS)
    width = results["ad-tabular"]["model"]["hidden"][-1]  # the encoder ad-film starts from: its width follows
    follows = {"ad-tabular": {}, "ad-film": {} if width == 8 else {"embedding_dim": width}}
    for method in METHODS:
        assert dict(config.model_overrides.get(method, {})) == {**results[method]["model"], **follows[method]}
        assert dict(config.method_training[method]) == results[method]["training"]
    run_protocol(config, tmp_path / "run", echo=lambda _: None)
    run = RunDirectory(tmp_path / "run")
    for method in METHODS:
        record = run.read_record(Unit(method, 0, 0, 0))
        trained = {**dataclasses.asdict(config.training), **results[method]["training"]}
        assert record["training"] == {k: trained[k] for k in record["training"]}
        assert len(record["history"]) == trained["epochs"]
        # the run's model of the tuned fold is the best trial's: same data, seed, member and settings
        assert record["best_metric"] == results[method]["best_score"]
    assert run.read_record(Unit("ad-film", 0, 0, 0))["warm_start"] == "ad-tabular"
    # the report states the tuning: each method's budget, default and best validation scores
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Tuning (`hyperfusion tune`)" in report
    for method in METHODS:
        best = f"{results[method]['best_score']:.3f} (trial {results[method]['best_trial']})"
        assert (
            f"| {method} | {TRIALS} | {results[method]['pruned']} | {results[method]['default_score']:.3f} | {best} |"
            in report
        )


def test_fused_methods_follow_the_tuned_members_width():
    """A member tuned to another hidden width: every method warm-started from it takes that embedding width (the
    AD demo's first tuning stopped at the first fused trial without this), and nothing else changes."""
    config = config_for(Path("cohort.yaml"), ("ad-tabular", "ad-film", "ad-hyperfusion", "ad-imaging"))
    wider = study_module.with_trial(config, "ad-tabular", {}, {"hidden": [16]})
    followed = study_module.follow_members(wider)
    assert {m: dict(v) for m, v in followed.model_overrides.items()} == {
        "ad-tabular": {"hidden": [16]},
        "ad-film": {"embedding_dim": 16},
        "ad-hyperfusion": {"embedding_dim": 16},
    }
    assert (
        study_module.follow_members(config).model_overrides == config.model_overrides
    )  # widths already agree


def test_cli_tune_writes_the_study_and_tuned_config(cohort_yaml, tmp_path):
    from hyperfusion.cli import main

    path = tmp_path / "run.yaml"
    raw = {**config_for(cohort_yaml).to_dict(), "methods": ["ad-tabular"], "model": {}}  # one quick study
    path.write_text(yaml.safe_dump(raw))
    assert main(["tune", str(path), "--trials", "1", "--out", str(tmp_path / "tuning")]) == 0
    for name in ("study.sqlite3", "tuned.yaml", "tuning.json"):
        assert (tmp_path / "tuning" / name).is_file(), name
    assert (
        main(["tune", str(path), "--trials", "2", "--out", str(tmp_path / "tuning")]) != 0
    )  # budget refused


@pytest.mark.slow
def test_ray_tunes_the_same_trials_with_the_fused_methods_side_by_side(cohort_yaml, tuned, tmp_path):
    """On Ray each method's study is one task (ad-film and ad-concat at once, after ad-tabular): every trial and the
    tuned config equal the local tuning's."""
    import os

    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        lines: list[str] = []
        config = config_for(cohort_yaml, methods=("ad-tabular", "ad-film", "ad-concat"))
        results = tune(config, tmp_path / "ray", TRIALS, echo=lines.append, executor="ray")
    finally:
        ray.shutdown()
    assert study_module.method_levels(config) == [["ad-tabular"], ["ad-film", "ad-concat"]]
    for method in METHODS:
        assert trial_values(tmp_path / "ray", method) == trial_values(tuned, method)
        assert results[method] == results_of(tuned)[method]
    assert results["ad-concat"]["tuned"] and len(trial_values(tmp_path / "ray", "ad-concat")) == TRIALS
    assert [line.split(":")[0] for line in lines] == ["ad-tabular", "ad-film", "ad-concat"]
