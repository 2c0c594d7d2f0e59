"""A survival run end to end on a tiny simulated cohort whose visits the manifest turns into time and event."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sksurv.linear_model.coxph import BreslowEstimator

from hyperfusion.cli import main
from hyperfusion.config import load_config
from hyperfusion.data.manifest import Cohort
from hyperfusion.evaluation.survival import HORIZONS, harrell_c
from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.hazards import BASELINE, MissingBaseline
from hyperfusion.run.inference import predict_new_subjects, score_subjects
from hyperfusion.run.plan import Unit
from hyperfusion.run.runner import run_protocol
from hyperfusion.run.store import RunDirectory
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
            "top_k": 2,
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


METHODS = ["ad-tabular", "ad-imaging", "ad-hyperfusion"]


@pytest.fixture(scope="module")
def survival_run(survival_yaml, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """One tiny survival run (3 methods, 2 versions, both averaged), shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("survival_run")
    config = load_config(_config(root / "run.yaml", survival_yaml, METHODS))
    return root / "run", run_protocol(config, root / "run", echo=lambda _: None)


def _new_subjects(survival_yaml: Path, subjects) -> Path:
    """The baseline rows of ``subjects`` without their outcome, as a table laid out like the run's."""
    table = pd.read_csv(survival_yaml.parent / "ADNIMERGE.csv")
    baseline = table[(table["VISCODE"] == "bl") & table["PTID"].isin(subjects)]
    path = survival_yaml.parent / "new.csv"
    baseline.drop(columns=["M", "DX"]).to_csv(path, index=False)  # no outcome yet
    return path


def _predict(run: Path, table: Path, out: Path) -> pd.DataFrame:
    assert main(["predict", str(run), "--manifest", str(table), "--out", str(out)]) == 0
    return pd.read_csv(out).set_index("subject_id")


def test_a_survival_run_scores_c_beside_no_skill(survival_yaml, survival_run, tmp_path) -> None:
    run, results = survival_run
    report = (run / "report.md").read_text()
    assert "## Survival: concordance and time-dependent AUC" in report and "by validation C (eq. 6)" in report
    assert (run / "survival_tertiles.png").stat().st_size > 0
    c = results[results["metric"] == "C"]
    assert set(c["method"]) == {*METHODS, "no-skill"}
    assert (c.loc[c["method"] == "no-skill", "value"] == 0.5).all()
    assert c["value"].between(0, 1).all()
    partitions = pd.read_csv(run / "partitions_seed0.csv")
    counts = partitions["partition"].value_counts().to_dict()
    assert set(counts) == {"train", "val", "test"} and sum(counts.values()) == 53  # the at-risk MCI subjects
    predictions = pd.read_csv(run / "predictions.csv")
    test = predictions[predictions["method"] == "ad-tabular"]
    assert len(test) == counts["test"] and {"predicted", "time", "event"} <= set(test.columns)
    again = _predict(run, _new_subjects(survival_yaml, test["subject_id"]), tmp_path / "predicted.csv")
    reference = predictions[predictions["method"] == "ad-hyperfusion"].set_index("subject_id")
    np.testing.assert_allclose(again.loc[reference.index, "predicted"], reference["predicted"], atol=1e-6)
    assert harrell_c(test["predicted"], test["time"], test["event"]) == pytest.approx(
        c[(c["method"] == "ad-tabular") & (c["fold"] == "ensemble")]["value"].item()
    )


def _training_cohort(finished: FinishedRun) -> Cohort:
    cohort = finished.cohort
    train = (finished.roles(cohort, 0, 0) == "train").to_numpy()
    return dataclasses.replace(cohort, frame=cohort.frame[train].reset_index(drop=True))


def test_each_models_baseline_is_breslows_on_its_training_rows_and_predict_gives_survival(
    survival_yaml, survival_run, tmp_path
) -> None:
    run, _ = survival_run
    finished = FinishedRun(run)
    train = _training_cohort(finished)
    y = train.targets
    method = finished.config.reference_method
    table = _new_subjects(survival_yaml, finished.cohort.frame["subject_id"][:12])
    new = finished.new_subjects(table)
    expected = np.zeros((len(new.frame), len(HORIZONS)))
    for version in (0, 1):  # top_k 2 of 2: both versions are members
        record = finished.directory.read_record(Unit(method, 0, version, 0))
        risk = score_subjects(run, train, method=method, version=version)  # the checkpoint's own risks
        breslow = BreslowEstimator().fit(risk, y[:, 1].astype(bool), y[:, 0])
        hazard = breslow.cum_baseline_hazard_
        np.testing.assert_allclose(record[BASELINE]["times"], hazard.x)
        np.testing.assert_allclose(record[BASELINE]["cumulative_hazard"], hazard.y, rtol=1e-5)
        member = score_subjects(run, new, method=method, version=version)
        expected += np.stack([f(list(HORIZONS)) for f in breslow.get_survival_function(member)]) / 2
    got = _predict(run, table, tmp_path / "predicted.csv")
    columns = [f"survival_{h:g}mo" for h in HORIZONS]
    assert list(got.columns) == ["predicted", *columns, "method"]
    np.testing.assert_allclose(got.loc[new.frame["subject_id"], columns].to_numpy(), expected, rtol=1e-5)


def test_the_report_has_the_integrated_brier_score_and_calibration(survival_run) -> None:
    run, _ = survival_run
    report = (run / "report.md").read_text()
    brier = report.split("### Survival probabilities: integrated Brier score beside no skill")[1]
    rows = [line for line in brier.split("### Calibration")[0].splitlines() if line.startswith("| ad-")]
    assert [r.split("|")[1].strip() for r in rows] == METHODS
    assert all(0 <= float(r.split("|")[4]) <= 1 and 0 <= float(r.split("|")[5]) <= 1 for r in rows)
    calibration = [
        line for line in report.split("### Calibration")[1].splitlines() if line.startswith("| ad-")
    ]
    assert len(calibration) == 3 * len(METHODS)
    assert {r.split("|")[4].strip() for r in calibration} == {"low", "middle", "high"}
    assert "every subject one risk (C = 0.5) and the training rows' Kaplan–Meier curve" in report


def test_a_run_from_before_baselines_reports_its_c_and_refuses_probabilities(
    survival_yaml, survival_run, tmp_path, capsys
) -> None:
    run, _ = survival_run
    old = tmp_path / "old"
    shutil.copytree(run, old)
    directory = RunDirectory(old)
    for record_path in sorted((old / "units").rglob("*.json")):
        method, key = record_path.parent.name, record_path.stem
        unit = next(u for u in _units(METHODS) if u.method == method and u.key == key)
        record = directory.read_record(unit)
        directory.write_record(
            unit, {k: v for k, v in record.items() if k != BASELINE}
        )  # sealed, as old ones
    assert main(["report", str(old)]) == 0
    report = (old / "report.md").read_text()
    assert "## Survival: concordance and time-dependent AUC" in report
    assert "Survival probabilities are not shown:" in report and "has no baseline_hazard" in report
    table = _new_subjects(survival_yaml, pd.read_csv(old / "predictions.csv")["subject_id"][:3])
    with pytest.raises(MissingBaseline, match=r"s0_v\d_f0\.json has no baseline_hazard"):
        predict_new_subjects(old, table, tmp_path / "p.csv")
    assert main(["predict", str(old), "--manifest", str(table), "--out", str(tmp_path / "p.csv")]) == 2
    assert "has no baseline_hazard" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()


def _units(methods: list[str]) -> list[Unit]:
    return [Unit(m, 0, v, 0) for m in methods for v in (0, 1)]


def test_late_fusion_is_refused_for_survival(survival_yaml, tmp_path) -> None:
    config = load_config(_config(tmp_path / "run.yaml", survival_yaml, ["ad-late-fusion"]))
    with pytest.raises(ValueError, match="late fusion of class probabilities does not apply to survival"):
        run_protocol(config, tmp_path / "run", echo=lambda _: None)


def test_explain_works_on_a_survival_run(survival_run, tmp_path) -> None:
    """Every part of explain on a survival run: C is the metric permutations worsen, risk the value they move."""
    run, _ = survival_run
    out = tmp_path / "explain"
    argv = ["explain", str(run), "--out", str(out), "--repeats", "1", "--points", "3", "--ig-steps", "4"]
    assert main([*argv, "--image-subjects", "1", "--permutations", "2", "--no-plots"]) == 0
    importance = pd.read_csv(out / "permutation_importance.csv")
    assert not importance.empty and np.isfinite(importance["importance"]).all()
    counterfactual = pd.read_csv(out / "counterfactual.csv")
    assert np.isfinite(counterfactual["predicted"]).all()  # a log-risk for every subject and value
    summary = (out / "summary.md").read_text()
    assert "the drop of C when the attribute is permuted" in summary
