"""hyperfusion.run.tracking on a tiny run with ``logger: mlflow``: read back through MLflow's own client from the
run's SQLite store — one experiment named after the run, one finished MLflow run per unit whose curves equal the
unit record's history and whose test metrics equal results.csv, and a report run holding the run's files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hyperfusion.config import load_config
from hyperfusion.run.plan import Unit
from hyperfusion.run.store import RunDirectory
from hyperfusion.run.tracking import start_experiment, tracking_uri, unit_tracking
from tests.run.test_runner import cohort_yaml, write_config  # noqa: F401 - the module-scoped cohort fixture

METHOD = "ad-imaging"


@pytest.fixture(scope="module")
def run(cohort_yaml, tmp_path_factory) -> Path:  # noqa: F811
    from hyperfusion.cli import main

    folder = tmp_path_factory.mktemp("tracking")
    config = write_config(
        folder / "run.yaml", cohort_yaml, methods=(METHOD,), warm_start="none", logger="mlflow"
    )
    assert main(["run", str(config), "--out", str(folder / "my-run")]) == 0
    return folder / "my-run"


def _client(run: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{run.resolve() / 'logs' / 'mlflow.db'}")


def test_each_unit_is_one_finished_mlflow_run_with_its_history_settings_and_test_metrics(run):
    client = _client(run)
    experiment = client.get_experiment_by_name("my-run")
    assert experiment.artifact_location == (run.resolve() / "logs" / "mlflow-artifacts").as_uri()
    units = client.search_runs([experiment.experiment_id], filter_string="tags.`hyperfusion.kind` = 'unit'")
    assert sorted(r.info.run_name for r in units) == [f"{METHOD}/s0_v0_f0", f"{METHOD}/s0_v0_f1"]
    results = pd.read_csv(run / "results.csv")
    directory = RunDirectory(run)
    for found in units:
        fold = int(found.info.run_name[-1])
        assert found.info.status == "FINISHED" and found.data.tags["hyperfusion.run_dir"] == str(
            run.resolve()
        )
        history = pd.DataFrame(directory.read_record(Unit(METHOD, 0, 0, fold))["history"])
        for key in ("train_loss", "val_loss", "val_BA"):
            logged = [
                m.value
                for m in sorted(client.get_metric_history(found.info.run_id, key), key=lambda m: m.step)
            ]
            np.testing.assert_allclose(logged, history[key], rtol=1e-6)
        params = found.data.params
        assert params["method"] == METHOD and params["fold"] == str(fold) and params["epochs"] == "1"
        rows = results[(results["method"] == METHOD) & (results["fold"].astype(str) == str(fold))]
        assert len(rows) > 0
        for metric, value in zip(rows["metric"], rows["value"]):
            assert found.data.metrics[f"test_{metric}"] == pytest.approx(value)
    assert not (run / "mlruns").exists() and not Path("mlruns").exists()


def test_the_report_run_holds_the_report_and_the_reported_metrics(run):
    client = _client(run)
    experiment = client.get_experiment_by_name("my-run")
    (report,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`hyperfusion.kind` = 'report'"
    )
    names = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert {"report.md", "results.csv", "predictions.csv"} <= names
    stored = Path(report.info.artifact_uri.removeprefix("file://")) / "report.md"
    assert stored.read_text() == (run / "report.md").read_text()
    results = pd.read_csv(run / "results.csv")
    ensemble = results[
        (results["method"] == METHOD) & (results["fold"] == "ensemble") & (results["metric"] == "BA")
    ]
    assert report.data.metrics[f"{METHOD}.BA"] == pytest.approx(ensemble["value"].mean())


def test_a_resumed_run_reuses_its_experiment_and_report_run(run):
    from hyperfusion.cli import main

    assert main(["run", str(run / "config.yaml"), "--out", str(run)]) == 0
    client = _client(run)
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "my-run"]  # MLflow's own + ours
    experiment = client.get_experiment_by_name("my-run")
    kinds = [r.data.tags["hyperfusion.kind"] for r in client.search_runs([experiment.experiment_id])]
    assert sorted(kinds) == ["report", "unit", "unit"]


def test_a_study_cell_names_its_units_after_the_cell_in_the_studys_experiment(cohort_yaml, tmp_path):  # noqa: F811
    config = load_config(write_config(tmp_path / "run.yaml", cohort_yaml, logger="mlflow"))
    training = dataclasses.replace(config.training, experiment="my-study", tracking_uri="sqlite:///study.db")
    config = dataclasses.replace(config, training=training)
    tracking = unit_tracking(
        config, RunDirectory(tmp_path / "cells" / "interaction=1"), Unit(METHOD, 0, 0, 1), {}
    )
    assert tracking.experiment == "my-study" and tracking.tracking_uri == "sqlite:///study.db"
    assert tracking.run_name == f"interaction=1/{METHOD}/s0_v0_f1"


def test_the_default_store_is_the_runs_own_database(cohort_yaml, tmp_path):  # noqa: F811
    config = load_config(write_config(tmp_path / "run.yaml", cohort_yaml, logger="mlflow"))
    assert (
        tracking_uri(config, RunDirectory(tmp_path / "r"))
        == f"sqlite:///{tmp_path.resolve() / 'r/logs/mlflow.db'}"
    )


def test_a_store_that_cannot_be_opened_is_one_line_naming_the_uri(cohort_yaml, tmp_path):  # noqa: F811
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = load_config(
        write_config(
            tmp_path / "run.yaml", cohort_yaml, logger="mlflow", tracking_uri=f"sqlite:///{blocker}/x.db"
        )
    )
    with pytest.raises(ValueError, match=r"training.tracking_uri: cannot open the MLflow store 'sqlite:///"):
        start_experiment(config, RunDirectory(tmp_path / "r"))


def test_cli_tracking_uri_typo_is_one_line_before_anything_is_written(cohort_yaml, tmp_path, capsys):  # noqa: F811
    from hyperfusion.cli import main

    config = write_config(tmp_path / "run.yaml", cohort_yaml, methods=(METHOD,))
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--tracking-uri", "htp://localhost:5000"]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        "\n" not in error and "training.tracking_uri: 'htp://localhost:5000' is not a tracking URI" in error
    )
    assert "did you mean 'http'" in error and not out.exists()
