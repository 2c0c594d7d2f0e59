"""The protocol end to end through the CLI, on a tiny simulated cohort: outputs, resume, and predict."""

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
from hyperfusion.simulate import simulate_ad
from hyperfusion.training.protocol import Protocol


@pytest.fixture(scope="module")
def cohort_yaml(tmp_path_factory) -> Path:
    """40 phantom-template subjects at 4 mm: every code path of a real run, in seconds."""
    out = tmp_path_factory.mktemp("cohort")
    return simulate_ad(out, n=40, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False)


def write_config(path: Path, cohort: Path, **training) -> Path:
    config = {
        "cohort": str(cohort),
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
        "methods": ["ad-imaging", "ad-hyperfusion"],
        "model": {"base_width": 2},
        "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 2},
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
    # the tabular twin trained first (its MLP initialises HyperFusion's embedding) but is not reported
    records = sorted(p.relative_to(out / "units").as_posix() for p in (out / "units").rglob("*.json"))
    assert records == [
        f"{m}/s0_v0_f{f}.json" for m in ("ad-hyperfusion", "ad-imaging", "ad-tabular") for f in (0, 1)
    ]
    for fold in (0, 1):
        preprocessing = json.loads((out / "preprocessing" / f"s0_f{fold}.json").read_text())
        assert preprocessing  # plain JSON, no pickle
        state = torch.load(out / "checkpoints" / "ad-hyperfusion" / f"s0_v0_f{fold}.pt", weights_only=True)
        assert any("hyper.weight_head" in key for key in state)

    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["method", "split_seed", "version", "fold", "metric", "value"]
    assert set(results["method"]) == {"ad-imaging", "ad-hyperfusion"}
    assert set(results["fold"].astype(str)) == {"0", "1", "ensemble"}
    ensemble = results[results["fold"] == "ensemble"].set_index(["method", "metric"])["value"]
    for method in ("ad-imaging", "ad-hyperfusion"):
        assert 0 <= ensemble[(method, "BA")] <= 1
        assert {"PRC", "F1", "AUC", "TP-CN", "TP-MCI", "TP-AD"} <= set(ensemble[method].index)

    predictions = pd.read_csv(out / "predictions.csv")
    test_subjects = set(partitions.loc[partitions["partition"] == 2, "subject_id"])
    assert set(predictions["subject_id"]) == test_subjects
    probabilities = predictions[["p_CN", "p_MCI", "p_AD"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    report = (out / "report.md").read_text()
    assert "ad-hyperfusion" in report and "not available with fewer than 3 runs" in report


def test_interrupted_run_resumes_without_repeating_finished_models(cohort_yaml, tmp_path, monkeypatch):
    config = load_config(write_config(tmp_path / "run.yaml", cohort_yaml))
    complete = Protocol(config, tmp_path / "complete", echo=lambda _: None).execute()

    trained: list[str] = []
    original = Protocol.train_unit

    def interrupted_after_three(self, unit, roles):
        if len(trained) == 3:
            raise KeyboardInterrupt  # as if the run were killed here
        trained.append(unit.key + unit.method)
        original(self, unit, roles)

    monkeypatch.setattr(Protocol, "train_unit", interrupted_after_three)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        Protocol(config, out, echo=lambda _: None).execute()
    assert len(list((out / "units").rglob("*.json"))) == 3
    finished = {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*.json")}

    trained.clear()
    monkeypatch.setattr(Protocol, "train_unit", original)
    calls: list[str] = []
    monkeypatch.setattr(
        Protocol,
        "train_unit",
        lambda self, unit, roles: (calls.append(unit.method), original(self, unit, roles)),
    )
    resumed = Protocol(config, out, echo=lambda _: None).execute()
    assert len(calls) == 3  # only the three unfinished models
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    pd.testing.assert_frame_equal(resumed, complete)


def test_a_changed_config_is_refused_in_an_existing_run_directory(cohort_yaml, tmp_path):
    first = load_config(write_config(tmp_path / "a.yaml", cohort_yaml))
    Protocol(first, tmp_path / "run", echo=lambda _: None)._check_config()
    second = load_config(write_config(tmp_path / "b.yaml", cohort_yaml, lr=0.01))
    with pytest.raises(ValueError, match="different configuration"):
        Protocol(second, tmp_path / "run", echo=lambda _: None)._check_config()


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
    results = Protocol(load_config(path), tmp_path / "run", echo=lambda _: None).execute()
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
    assert top == pytest.approx(mae.loc[best, "value"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Test-set ensemble" in report


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
    assert 2 <= len(finished) < 6, f"the run was not killed mid-way ({len(finished)} models finished)"
    for record in finished:
        json.loads(record.read_text())  # complete, readable records only

    assert main(["run", str(config), "--out", str(out)]) == 0
    assert len(list(out.glob("units/*/*.json"))) == 6
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    assert (out / "report.md").is_file()


def test_principled_init_reads_the_training_tabular_rows_without_images():
    """Eqs. (1)-(2) with V = E[e²] of the embedding over the fold's training rows; images are never loaded."""
    from torch.utils.data import DataLoader

    from hyperfusion.data import CohortDataset
    from hyperfusion.models import create_model
    from hyperfusion.nn import estimate_embedding_variance

    class NoImages(CohortDataset):
        def __getitem__(self, index):
            raise AssertionError("the initialisation must not load images")

    rng = np.random.default_rng(0)
    tabular = (2.0 + 3.0 * rng.normal(size=(40, 5))).astype(np.float32)
    dataset = NoImages([np.zeros((2, 4, 4, 4), np.float32)] * 40, tabular, np.zeros(40, np.int64),
                       [str(i) for i in range(40)], two_sides=True, train=True)  # fmt: skip
    torch.manual_seed(0)
    model = create_model("ad-hyperfusion", base_width=2, n_tabular=5)
    Protocol._principled_init(model, DataLoader(dataset, batch_size=8))
    layer = model.hyper_layers["block4.shortcut.conv"]
    chunks = list(torch.from_numpy(tabular).split(8))
    variance = estimate_embedding_variance(model.embeddings[0], chunks)
    bound = (3.0 / (layer.fan_in * layer.embedding_dim * variance)) ** 0.5
    assert float(layer.weight_head[1:].detach().abs().max()) == pytest.approx(bound, rel=0.05)
    assert float(layer.weight_head[1:].detach().abs().max()) <= bound
