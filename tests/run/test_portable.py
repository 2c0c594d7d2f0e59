"""hyperfusion.load_model / load_ensemble on a tiny trained run: the loaded models reproduce the run's own
predictions (each unit's recorded test predictions, and predictions.csv for the ensemble), rebuilt from the build
arguments sealed beside each checkpoint — not from the configuration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import hyperfusion
from hyperfusion.data import CohortDataset, ImageCache, collate_items
from hyperfusion.engine.trainer import predict
from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.plan import Unit
from hyperfusion.run.setup import image_spec
from hyperfusion.run.store import RunDirectoryError
from tests.run.test_runner import cohort_yaml, write_config  # noqa: F401 - the module-scoped cohort fixture

METHOD = "ad-hyperfusion"


@pytest.fixture(scope="module")
def run(cohort_yaml, tmp_path_factory) -> Path:  # noqa: F811
    from hyperfusion.cli import main

    folder = tmp_path_factory.mktemp("portable")
    config = write_config(folder / "run.yaml", cohort_yaml, methods=(METHOD,), warm_start="none")
    assert main(["run", str(config), "--out", str(folder / "run")]) == 0
    return folder / "run"


def _test_predictions(run: Path, loaded: hyperfusion.run.portable.LoadedModel) -> np.ndarray:
    finished = FinishedRun(run)
    cohort = finished.cohort
    rows = (finished.roles(cohort, loaded.unit.split_seed, loaded.unit.fold) == "test").to_numpy()
    frame = cohort.frame[rows]
    spec = image_spec(finished.config)
    dataset = CohortDataset(
        ImageCache(finished.directory.cache).ensure_all(frame["image"], spec),
        loaded.preprocessor.transform(frame),
        cohort.targets[rows],
        frame["subject_id"].tolist(),
        two_sides=spec.mode == "hippocampus",
        train=False,
    )
    loader = DataLoader(dataset, batch_size=8, shuffle=False, collate_fn=collate_items)
    return predict(loaded.network, loader, task=cohort.task).values


def test_load_model_reproduces_each_units_recorded_test_predictions(run):
    directory = FinishedRun(run).directory
    for fold in (0, 1):
        loaded = hyperfusion.load_model(run, METHOD, 0, fold)
        record = directory.read_record(Unit(METHOD, 0, 0, fold))
        assert not loaded.network.training and loaded.classes == tuple(record["classes"])
        np.testing.assert_allclose(_test_predictions(run, loaded), record["test"]["values"], atol=1e-6)


def test_the_build_record_holds_the_exact_arguments_and_models_json_no_misleading_sizes(run):
    finished = FinishedRun(run)
    unit = Unit(METHOD, 0, 0, 0)
    build = finished.directory.read_build(unit)
    n_features = len(finished.preprocessor(unit).feature_names_out)
    assert build["method"] == METHOD and build["kwargs"]["n_tabular"] == n_features
    assert build["kwargs"]["base_width"] == 2
    models = json.loads((run / "models.json").read_text())["methods"]
    assert all("n_tabular" not in arguments for arguments in models.values())


def test_load_model_uses_the_build_record_not_the_configuration(run, tmp_path):
    """A config whose model settings were edited after the run cannot change what load_model rebuilds."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    text = (copy / "config.yaml").read_text()
    (copy / "config.yaml").write_text(text.replace("base_width: 2", "base_width: 3"))
    loaded = hyperfusion.load_model(copy, METHOD, 0, 0)
    reference = hyperfusion.load_model(run, METHOD, 0, 0)
    for a, b in zip(loaded.network.state_dict().values(), reference.network.state_dict().values()):
        assert torch.equal(a, b)


def test_an_edited_build_record_is_refused_naming_the_file(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = FinishedRun(copy).directory.build_path(Unit(METHOD, 0, 0, 0))
    path.write_text(path.read_text().replace('"base_width": 2', '"base_width": 4'))
    with pytest.raises(RunDirectoryError, match=r"s0_v0_f0\.build\.json|build\.json was changed"):
        hyperfusion.load_model(copy, METHOD, 0, 0)


def test_load_ensemble_reproduces_predictions_csv(run):
    ensemble = hyperfusion.load_ensemble(run, METHOD)
    assert [m.unit.fold for m in ensemble.members] == [0, 1]
    finished = FinishedRun(run)
    cohort = finished.cohort
    table = pd.read_csv(run / "predictions.csv", dtype={"subject_id": str})
    table = table[table["method"] == METHOD]
    values = ensemble.predict(cohort)
    by_subject = dict(zip(cohort.frame["subject_id"].astype(str), values))
    expected = table[[f"p_{c}" for c in cohort.classes]].to_numpy()
    got = np.stack([by_subject[s] for s in table["subject_id"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_default_csv_logger_left_each_units_curves_equal_to_its_history(run):
    """training.logger: csv (the default) — RUN/logs/<method>/<unit>/metrics.csv, read back with pandas."""
    import yaml

    directory = FinishedRun(run).directory
    for fold in (0, 1):
        unit = Unit(METHOD, 0, 0, fold)
        rows = pd.read_csv(directory.log_dir(unit) / "metrics.csv")
        history = pd.DataFrame(directory.read_record(unit)["history"])
        assert rows["epoch"].tolist() == history["epoch"].tolist()
        for column in ("train_loss", "val_loss", "val_BA"):
            np.testing.assert_allclose(rows[column], history[column], rtol=1e-6)
        hparams = yaml.safe_load((directory.log_dir(unit) / "hparams.yaml").read_text())
        assert hparams["method"] == METHOD and hparams["fold"] == fold and hparams["epochs"] == 1


def test_logger_none_writes_no_logs(cohort_yaml, tmp_path):  # noqa: F811
    from hyperfusion.cli import main

    config = write_config(
        tmp_path / "run.yaml", cohort_yaml, methods=("ad-imaging",), warm_start="none", logger="none"
    )
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "units").is_dir() and not (tmp_path / "run" / "logs").exists()
