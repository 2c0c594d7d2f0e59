"""A whole run end to end through the CLI, on a tiny simulated cohort: outputs, resume, growth, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hyperfusion.cli import main
from hyperfusion.config import load_config
from hyperfusion.run import units as unit_module
from hyperfusion.run.runner import run_protocol
from hyperfusion.simulate import simulate_ad
from tests.faults import fault


@pytest.fixture(scope="module")
def cohort_yaml(tmp_path_factory) -> Path:
    """40 phantom-template subjects at 4 mm: every code path of a real run, in seconds."""
    out = tmp_path_factory.mktemp("cohort")
    return simulate_ad(out, n=40, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False)


def write_config(path: Path, cohort: Path, *, versions: int = 1, methods=("ad-imaging", "ad-hyperfusion"),
                 **training) -> Path:  # fmt: skip
    config = {
        "cohort": str(cohort),
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
        "methods": list(methods),
        "model": {"base_width": 2},
        "protocol": {"split_seeds": [0], "versions": versions, "n_partitions": 3, "folds": 2},
        "training": {
            "epochs": 1,
            "batch_size": 8,
            "lr": 0.001,
            "device": "cpu",
            "progress": False,
            **training,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_run_writes_every_output(cohort_yaml, tmp_path):
    config = write_config(tmp_path / "run.yaml", cohort_yaml)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0

    for name in ("config.yaml", "manifest.yaml", "partitions_seed0.csv", "results.csv", "predictions.csv",
                 "report.md", "metrics.png", "confusion.png"):  # fmt: skip
        assert (out / name).is_file(), name
    partitions = pd.read_csv(out / "partitions_seed0.csv")
    assert len(partitions) == 40 and set(partitions["partition"]) == {0, 1, 2}
    # the tabular model trained first (warm start: its encoder initialises HyperFusion's) but is not reported;
    # the crop reader is fitted beside the imaging-only model and reported
    records = sorted(p.relative_to(out / "units").as_posix() for p in (out / "units").rglob("*.json"))
    assert records == [
        f"{m}/s0_v0_f{f}.json"
        for m in ("ad-crop-reader", "ad-hyperfusion", "ad-imaging", "ad-tabular")
        for f in (0, 1)
    ]
    reader = json.loads((out / "units" / "ad-crop-reader" / "s0_v0_f0.json").read_text())
    assert reader["kind"] == "fit" and reader["selection"]["components"] > 0
    record = json.loads((out / "units" / "ad-hyperfusion" / "s0_v0_f0.json").read_text())
    assert record["warm_start"] == "ad-tabular" and record["parameters"] > 0
    for fold in (0, 1):
        preprocessing = json.loads((out / "preprocessing" / f"s0_f{fold}.json").read_text())
        assert preprocessing  # plain JSON, no pickle
        state = torch.load(out / "checkpoints" / "ad-hyperfusion" / f"s0_v0_f{fold}.pt", weights_only=True)
        assert any("hyper.weight_head" in key for key in state)

    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["method", "split_seed", "version", "fold", "metric", "value"]
    assert set(results["method"]) == {"ad-imaging", "ad-crop-reader", "ad-hyperfusion", "no-skill"}
    assert set(results["fold"].astype(str)) == {"0", "1", "ensemble"}
    ensemble = results[results["fold"] == "ensemble"].set_index(["method", "metric"])["value"]
    for method in ("ad-imaging", "ad-hyperfusion"):
        assert 0 <= ensemble[(method, "BA")] <= 1
        assert {"PRC", "F1", "AUC", "TP-CN", "TP-MCI", "TP-AD"} <= set(ensemble[method].index)
        assert {"tabular_sensitivity", "image_sensitivity"} <= set(ensemble[method].index)
    assert ensemble[("ad-imaging", "tabular_sensitivity")] == 0.0  # it ignores the tabular data
    assert ensemble[("no-skill", "BA")] == pytest.approx(1 / 3)
    assert ensemble[("no-skill", "AUC")] == pytest.approx(0.5)

    predictions = pd.read_csv(out / "predictions.csv")
    test_subjects = set(partitions.loc[partitions["partition"] == 2, "subject_id"])
    assert set(predictions["subject_id"]) == test_subjects
    assert set(predictions["method"]) == {"ad-imaging", "ad-crop-reader", "ad-hyperfusion", "no-skill"}
    probabilities = predictions[["p_CN", "p_MCI", "p_AD"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    report = (out / "report.md").read_text()
    assert "ad-hyperfusion" in report and "not available with fewer than 3 runs" in report
    assert "of the crop reader's skill above chance" in report
    assert "| ad-hyperfusion | ad-imaging | BA |" in report  # the fusion against its imaging-only member


def test_interrupted_run_resumes_without_repeating_finished_models(cohort_yaml, tmp_path, monkeypatch):
    config = load_config(write_config(tmp_path / "run.yaml", cohort_yaml))
    complete = run_protocol(config, tmp_path / "complete", echo=lambda _: None)

    original = unit_module.run_unit
    calls: list[str] = []

    def interrupted_after_three(job):
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C here
        calls.append(job.planned.unit.name)
        return original(job)

    monkeypatch.setattr("hyperfusion.run.executors.run_unit", interrupted_after_three)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt, match="3 of 8 models finished and kept"):
        run_protocol(config, out, echo=lambda _: None)
    assert len(list((out / "units").rglob("*.json"))) == 3
    assert not (out / ".lock").exists()
    finished = {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*.json")}

    calls.clear()
    monkeypatch.setattr("hyperfusion.run.executors.run_unit", lambda job: (calls.append(1), original(job))[1])
    resumed = run_protocol(config, out, echo=lambda _: None)
    assert len(calls) == 5  # only the five unfinished models
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    pd.testing.assert_frame_equal(resumed, complete)


def test_a_run_grows_in_place_training_only_new_units(cohort_yaml, tmp_path, monkeypatch):
    out = tmp_path / "run"
    small = load_config(write_config(tmp_path / "a.yaml", cohort_yaml))
    run_protocol(small, out, echo=lambda _: None)
    before = {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*.json")}

    trained: list[str] = []
    original = unit_module.run_unit
    monkeypatch.setattr(
        "hyperfusion.run.executors.run_unit",
        lambda job: (trained.append(job.planned.unit.name), original(job))[1],
    )
    grown = load_config(write_config(tmp_path / "b.yaml", cohort_yaml, versions=2))
    lines: list[str] = []
    results = run_protocol(grown, out, echo=lines.append)
    assert sorted(trained) == sorted(
        f"{m} s0_v1_f{f}"
        for m in ("ad-tabular", "ad-imaging", "ad-crop-reader", "ad-hyperfusion")
        for f in (0, 1)
    )
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert any("grows in place" in line for line in lines)
    ensemble = results[results["fold"] == "ensemble"]
    assert set(ensemble.loc[ensemble["method"] == "ad-imaging", "version"].astype(str)) == {"0", "1"}


@fault(
    "run directory",
    "a rerun with another learning rate into a finished run",
    "exit status 2 naming training.lr and its two values",
)
def test_a_changed_config_is_refused_in_an_existing_run_directory(cohort_yaml, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(write_config(tmp_path / "a.yaml", cohort_yaml)), "--out", str(out)]) == 0
    assert main(["run", str(write_config(tmp_path / "b.yaml", cohort_yaml, lr=0.01)), "--out", str(out)]) == 2
    assert "training.lr: 0.001 → 0.01" in capsys.readouterr().err
    # --restart starts over: the new configuration runs
    assert main(["run", str(write_config(tmp_path / "b.yaml", cohort_yaml, lr=0.01)), "--out", str(out),
                 "--restart"]) == 0  # fmt: skip


def test_an_embedding_the_tabular_member_cannot_fill_is_refused_before_training(
    cohort_yaml, tmp_path, capsys
):
    path = write_config(tmp_path / "a.yaml", cohort_yaml)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "model_overrides": {"ad-hyperfusion": {"embedding_dim": 4}}}))
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "ad-hyperfusion cannot be warm-started from ad-tabular" in error and "[4, " in error
    assert not list((tmp_path / "run").glob("**/*.pt"))  # refused before the first model trained
    raw["model_overrides"] = {"ad-hyperfusion": {"embedding_dim": 4}, "ad-tabular": {"hidden": [4]}}
    raw["methods"] = [*raw["methods"], "ad-tabular"]
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 0  # the member at the same width


@fault(
    "cohort table",
    "rows of the table dropped (or a subject relabelled) after a run, then the run rerun",
    "exit status 2: the cohort differs, naming rows removed/changed; nothing is retrained or re-reported",
)
def test_a_changed_cohort_is_refused(cohort_yaml, tmp_path, capsys):
    import shutil

    cohort = tmp_path / "cohort"
    shutil.copytree(cohort_yaml.parent, cohort)
    config = write_config(tmp_path / "a.yaml", cohort / cohort_yaml.name)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    table = pd.read_csv(cohort / "ADNIMERGE.csv")
    table.iloc[:-3].to_csv(cohort / "ADNIMERGE.csv", index=False)
    assert main(["run", str(config), "--out", str(out)]) == 2
    assert "3 row(s) removed" in capsys.readouterr().err
    assert (out / "report.md").read_text() == report


def test_predict_scores_subjects_the_run_never_saw(cohort_yaml, tmp_path):
    config = write_config(tmp_path / "run.yaml", cohort_yaml)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    new = simulate_ad(tmp_path / "new", n=12, voxel_size=4.0, interaction=2.0, seed=99, template="phantom",
                      progress=False)  # fmt: skip
    table = pd.read_csv(new.parent / "ADNIMERGE.csv")
    table["DX_bl"] = np.nan  # new subjects come without a diagnosis
    table.to_csv(new.parent / "unlabelled.csv", index=False)
    csv = tmp_path / "predictions.csv"
    assert (
        main(["predict", str(out), "--manifest", str(new.parent / "unlabelled.csv"), "--out", str(csv)]) == 0
    )
    predictions = pd.read_csv(csv)
    assert list(predictions["subject_id"]) == list(table["PTID"])
    np.testing.assert_allclose(predictions[["p_CN", "p_MCI", "p_AD"]].sum(axis=1), 1.0, atol=1e-5)
    assert set(predictions["predicted"]) <= {"CN", "MCI", "AD"}


def test_predict_reproduces_the_runs_test_predictions(cohort_yaml, tmp_path):
    """predict and the run's report combine fold models through one aggregation: same numbers."""
    config = write_config(tmp_path / "run.yaml", cohort_yaml)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    run_predictions = pd.read_csv(out / "predictions.csv")
    run_predictions = run_predictions[run_predictions["method"] == "ad-hyperfusion"].set_index("subject_id")
    table = pd.read_csv(cohort_yaml.parent / "ADNIMERGE.csv")
    test_table = cohort_yaml.parent / "test_subjects.csv"  # beside the cohort: image paths are relative to it
    table[table["PTID"].isin(run_predictions.index)].to_csv(test_table, index=False)
    csv = tmp_path / "p.csv"
    assert main(["predict", str(out), "--manifest", str(test_table), "--out", str(csv)]) == 0
    again = pd.read_csv(csv).set_index("subject_id").loc[run_predictions.index]
    np.testing.assert_allclose(
        again[["p_CN", "p_MCI", "p_AD"]], run_predictions[["p_CN", "p_MCI", "p_AD"]], atol=1e-6
    )


def test_late_fusion_combines_separately_trained_members(cohort_yaml, tmp_path):
    config = load_config(write_config(tmp_path / "run.yaml", cohort_yaml, methods=["ad-late-fusion"]))
    out = tmp_path / "run"
    run_protocol(config, out, echo=lambda _: None)
    for fold in (0, 1):
        late, imaging, tabular = (
            json.loads((out / "units" / m / f"s0_v0_f{fold}.json").read_text())
            for m in ("ad-late-fusion", "ad-imaging", "ad-tabular")
        )
        assert late["kind"] == "compose" and late["late_fusion_weight"] == 0.5
        mixed = 0.5 * np.asarray(imaging["test"]["values"]) + 0.5 * np.asarray(tabular["test"]["values"])
        np.testing.assert_allclose(late["test"]["values"], mixed)
        state = torch.load(out / "checkpoints" / "ad-late-fusion" / f"s0_v0_f{fold}.pt", weights_only=True)
        assert any(k.startswith("imaging.") for k in state) and any(k.startswith("tabular.") for k in state)


def test_brain_age_regression_protocol_with_top_k_ensemble(tmp_path):
    from hyperfusion.simulate import simulate_brain_age

    cohort = simulate_brain_age(tmp_path / "cohort", n=30, voxel_size=4.0, interaction=2.0, seed=1, template="phantom",
                                progress=False)  # fmt: skip
    config = {
        "cohort": str(cohort),
        "image": {"mode": "box", "voxel_mm": 4.0, "shape": [40, 52, 44]},
        "methods": ["brainage-imaging", "brainage-hyperfusion"],
        "model": {"base_width": 2},
        "protocol": {"split_seeds": [0], "versions": 2, "top_k": 1, "age_bins": 2},
        "training": {
            "epochs": 1,
            "batch_size": 4,
            "lr": 0.001,
            "loss": "mse",
            "device": "cpu",
            "progress": False,
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    results = run_protocol(load_config(path), tmp_path / "run", echo=lambda _: None)
    roles = pd.read_csv(tmp_path / "run" / "partitions_seed0.csv")["partition"].value_counts()
    assert roles.to_dict() == {"train": 24, "val": 3, "test": 3}
    single = results[results["fold"] == "0"]
    assert set(single["version"].astype(str)) == {"0", "1"}
    assert {"MAE", "MAE-F", "MAE-M"} <= set(single["metric"])
    ensemble = results[results["fold"] == "ensemble"]
    assert set(ensemble["version"]) == {"top1"}
    # the top-1 ensemble is the version with the lower validation MAE
    records = [json.loads((tmp_path / "run" / "units" / "brainage-hyperfusion" / f"s0_v{v}_f0.json").read_text())
               for v in (0, 1)]  # fmt: skip
    best = min(range(2), key=lambda v: records[v]["best_metric"])
    mae = single[(single["method"] == "brainage-hyperfusion") & (single["metric"] == "MAE")].set_index(
        "version"
    )
    top = ensemble[(ensemble["method"] == "brainage-hyperfusion") & (ensemble["metric"] == "MAE")][
        "value"
    ].item()
    assert top == pytest.approx(mae.loc[str(best), "value"])  # versions are text: "0", "1", "top1"
    no_skill = ensemble[(ensemble["method"] == "no-skill") & (ensemble["metric"] == "MAE")]["value"].item()
    cohort_table = pd.read_csv(cohort.parent / "participants.tsv", sep="\t")
    roles_table = pd.read_csv(tmp_path / "run" / "partitions_seed0.csv")
    ages = cohort_table.set_index("participant_id")["age"]
    train_mean = ages[roles_table.loc[roles_table["partition"] == "train", "subject_id"]].mean()
    test_ages = ages[roles_table.loc[roles_table["partition"] == "test", "subject_id"]]
    assert no_skill == pytest.approx(float(np.abs(test_ages - train_mean).mean()), rel=1e-5)
    state = torch.load(
        tmp_path / "run" / "checkpoints" / "brainage-imaging" / "s0_v0_f0.pt", weights_only=True
    )
    assert float(state["target_mean"]) == pytest.approx(train_mean, rel=1e-5)  # the model predicts in years


def test_cli_select_layers_ranks_the_backbone(cohort_yaml, tmp_path):
    config = write_config(tmp_path / "run.yaml", cohort_yaml)
    out = tmp_path / "ranking.csv"
    assert main(["select-layers", str(config), "--out", str(out), "--draws", "3", "--bins", "4",
                 "--subjects", "8"]) == 0  # fmt: skip
    ranking = pd.read_csv(out)
    assert list(ranking.columns[:2]) == ["layer", "entropy_bits"]
    assert "block4.shortcut.conv" in set(ranking["layer"])
    assert ranking["entropy_bits"].is_monotonic_decreasing


def test_a_killed_run_resumes_where_it_stopped(cohort_yaml, tmp_path):
    """SIGKILL a real `hyperfusion run` mid-way: finished models survive untouched, the rerun completes the rest."""
    import subprocess
    import sys
    import time

    config = write_config(tmp_path / "run.yaml", cohort_yaml)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "hyperfusion.cli", "run", str(config), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while (
        time.monotonic() < deadline and len(list(out.glob("units/*/*.json"))) < 2 and process.poll() is None
    ):
        time.sleep(0.1)
    process.kill()
    process.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("units/*/*.json")}
    assert 2 <= len(finished) < 8, f"the run was not killed mid-way ({len(finished)} models finished)"
    for record in finished:
        json.loads(record.read_text())  # complete, readable records only

    assert main(["run", str(config), "--out", str(out)]) == 0
    assert len(list(out.glob("units/*/*.json"))) == 8
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    assert (out / "report.md").is_file()


def test_warm_start_both_starts_the_image_network_from_the_imaging_only_model(
    cohort_yaml, tmp_path, monkeypatch
):
    """Under ``warm_start: both`` the fused model's trunk starts as the trained imaging-only model of its fold."""
    from hyperfusion.nn import warm_start_network_

    copied = []
    original = warm_start_network_

    def spy(model, source):
        copied.append({k: v.clone() for k, v in source.state_dict().items()})
        original(model, source)

    monkeypatch.setattr(unit_module, "warm_start_network_", spy)
    config = load_config(
        write_config(tmp_path / "run.yaml", cohort_yaml, methods=["ad-hyperfusion"], warm_start="both")
    )
    out = tmp_path / "run"
    run_protocol(config, out, echo=lambda _: None)
    record = json.loads((out / "units" / "ad-hyperfusion" / "s0_v0_f0.json").read_text())
    assert record["warm_start"] == "ad-tabular + ad-imaging"
    imaging = torch.load(out / "checkpoints" / "ad-imaging" / "s0_v0_f0.pt", weights_only=True)
    assert len(copied) == 2 and all(torch.equal(copied[0][k], imaging[k]) for k in imaging)


def test_principled_init_reads_the_training_tabular_rows():
    """Eqs. (1)-(2) with V = E[e²] of the embedding over the fold's training rows (and the layer's own gain)."""
    from hyperfusion.models import create_model
    from hyperfusion.nn import estimate_embedding_variance, principled_init_from_data_, tabular_encoders

    rng = np.random.default_rng(0)
    tabular = torch.from_numpy((2.0 + 3.0 * rng.normal(size=(40, 5))).astype(np.float32))
    torch.manual_seed(0)
    model = create_model("ad-hyperfusion", base_width=2, n_tabular=5)
    chunks = list(tabular.split(8))
    principled_init_from_data_(model, chunks)
    layer = model.hyper_layers["block4.shortcut.conv"]
    variance = estimate_embedding_variance(tabular_encoders(model)[0], chunks)
    bound = (3.0 * layer.init_gain / (layer.fan_in * layer.embedding_dim * variance)) ** 0.5
    assert float(layer.weight_head[1:].detach().abs().max()) == pytest.approx(bound, rel=0.05)
    assert float(layer.weight_head[1:].detach().abs().max()) <= bound
