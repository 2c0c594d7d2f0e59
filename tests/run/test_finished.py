"""hyperfusion.run.finished: a finished run read back as data — its plugins only as recorded, its cohort against
the fingerprint, roles from the partitions its models name, ensemble members, and each member's files verified."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hyperfusion.config import ConfigError, load_config
from hyperfusion.data import load_manifest
from hyperfusion.run.finished import FinishedRun, check_device, load_run_config
from hyperfusion.run.plan import Unit
from hyperfusion.run.runner import unit_roles
from hyperfusion.run.store import RunDirectoryError
from hyperfusion.tasks import get_task
from tests.explain.runs import classification_config, make_run, regression_config, write_cohort
from tests.faults import fault

PLUGIN = "import os\nwith open(os.environ['PLUGIN_LOG'], 'a') as log:\n    log.write({what!r} + '\\n')\n"


@fault(
    "run directory",
    "a finished run whose config names a relative plugin (plugins: [my_models.py]), reported from another folder "
    "that holds a my_models.py of its own",
    "the run's own plugin file is executed, found by the absolute path the run recorded; the other is never run "
    "(report had executed it; from elsewhere a correct run failed with no file 'my_models.py')",
)
def test_a_runs_plugin_is_the_file_the_run_executed(tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "my_models.py").write_text(PLUGIN.format(what="ours"))
    log = tmp_path / "plugin.log"
    monkeypatch.setenv("PLUGIN_LOG", str(log))
    config = classification_config(write_cohort(tmp_path / "cohort")) | {"plugins": ["my_models.py"]}
    run = make_run(config, exp / "run")
    assert log.read_text() == "ours\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "my_models.py").write_text(PLUGIN.format(what="FOREIGN"))
    code = "import sys; from hyperfusion.run.finished import load_run_config; load_run_config(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(run)], cwd=elsewhere, capture_output=True, text=True,
                          env={**os.environ, "PLUGIN_LOG": str(log)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "ours\nours\n"  # the fresh process ran the run's file, never the foreign one


def test_a_changed_or_foreign_plugin_is_never_executed(tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "my_models.py").write_text(PLUGIN.format(what="ours"))
    monkeypatch.setenv("PLUGIN_LOG", str(tmp_path / "plugin.log"))
    config = classification_config(write_cohort(tmp_path / "cohort")) | {"plugins": ["my_models.py"]}
    run = make_run(config, exp / "run")
    (exp / "my_models.py").write_text(PLUGIN.format(what="edited"))
    with pytest.raises(ConfigError, match=r"my_models\.py is not the code the run executed"):
        load_run_config(run)
    (exp / "my_models.py").write_text(PLUGIN.format(what="ours"))
    load_run_config(run)
    inside = run / "evil.py"  # a forged run directory naming a plugin inside itself, with a matching record
    inside.write_text(PLUGIN.format(what="EVIL"))
    from hyperfusion.plugins import import_plugins

    with pytest.raises(ValueError, match="inside the run directory"):
        import_plugins(["evil.py"], recorded={"evil.py": {"path": str(inside), "sha256": _sha256(inside)}},
                       data_folder=run)  # fmt: skip
    assert "EVIL" not in (tmp_path / "plugin.log").read_text()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def classification(cohort, tmp_path_factory) -> Path:
    return make_run(classification_config(cohort), tmp_path_factory.mktemp("runs") / "classification")


@pytest.fixture(scope="module")
def regression(cohort, tmp_path_factory) -> Path:
    return make_run(regression_config(cohort), tmp_path_factory.mktemp("runs") / "regression")


@pytest.mark.parametrize("which", ["classification", "regression"])
def test_roles_are_the_ones_the_protocol_computes_for_each_unit(which, request):
    run = request.getfixturevalue(which)
    finished = FinishedRun(run)
    cohort = finished.cohort
    config = load_config(run.parent / f"{run.name}.yaml")
    for fold in range(get_task(cohort.task).folds(config.protocol)):
        read = finished.roles(cohort, 0, fold)
        recomputed = unit_roles(config, cohort, Unit(config.methods[0], 0, 0, fold))
        assert read.tolist() == recomputed.tolist()
        assert set(read) == {"train", "val", "test"}


def test_no_skill_targets_are_the_non_test_rows(classification):
    finished = FinishedRun(classification)
    cohort = finished.cohort
    roles = finished.roles(cohort, 0, 0)
    expected = cohort.targets[(roles != "test").to_numpy()]
    assert np.array_equal(finished.no_skill_targets(cohort, 0), expected)


def test_choose_defaults_to_the_reference_method_and_first_seed_and_names_what_the_run_has(classification):
    finished = FinishedRun(classification)
    assert finished.choose(None, None) == ("ad-hyperfusion", 0)
    with pytest.raises(
        ValueError, match=r"method 'ad-film' is not in this run; its methods: \['ad-hyperfusion'\]"
    ):
        finished.choose("ad-film", None)
    with pytest.raises(ValueError, match=r"split seed 7 is not in this run: \[0\]"):
        finished.choose(None, 7)


def test_members_are_every_version_for_fold_ensembles_and_the_top_k_for_regression(
    classification, regression
):
    finished = FinishedRun(classification)
    assert finished.members("ad-hyperfusion", 0, None, get_task("classification")) == [0]
    reg = FinishedRun(regression)
    task = get_task("regression")
    # make_run records best_metric 1 + version: the lower validation MAE is version 0's (top_k: 1)
    assert reg.members("brainage-hyperfusion", 0, None, task) == [0]
    assert reg.members("brainage-hyperfusion", 0, 1, task) == [1]
    with pytest.raises(ValueError, match=r"version 5 is not in this run: \[0, 1\]"):
        reg.members("brainage-hyperfusion", 0, 5, task)


def test_a_member_without_a_record_is_named(cohort, tmp_path):
    run = make_run(regression_config(cohort), tmp_path / "run")
    record = FinishedRun(run).directory.record_path(Unit("brainage-hyperfusion", 0, 1, 0))
    record.unlink()
    with pytest.raises(FileNotFoundError, match="models never trained to the end"):
        FinishedRun(run).members("brainage-hyperfusion", 0, None, get_task("regression"))


def test_a_member_model_and_preprocessing_are_rebuilt_as_trained(classification):
    finished = FinishedRun(classification)
    unit = Unit("ad-hyperfusion", 0, 0, 1)
    preprocessor = finished.preprocessor(unit)
    model = finished.model(unit, preprocessor, tuple(finished.cohort.classes))
    import torch

    saved = torch.load(finished.directory.checkpoint(unit), weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="in another order"):
        finished.model(unit, preprocessor, tuple(reversed(finished.cohort.classes)))


def test_a_changed_cohort_is_refused(tmp_path):
    cohort = write_cohort(tmp_path / "cohort")
    run = make_run(classification_config(cohort), tmp_path / "run")
    table = pd.read_csv(cohort / "table.csv")
    table.loc[0, "AGE"] = table.loc[0, "AGE"] + 1
    table.to_csv(cohort / "table.csv", index=False)
    with pytest.raises(RunDirectoryError, match=r"the cohort differs .*1 row\(s\) changed"):
        _ = FinishedRun(run).cohort


def test_new_subjects_from_a_table_are_read_with_the_runs_manifest(classification, cohort):
    finished = FinishedRun(classification)
    read = finished.new_subjects(cohort / "table.csv")
    assert (
        read.frame["subject_id"].tolist()
        == load_manifest(cohort / "classification.yaml").frame["subject_id"].tolist()
    )


def test_check_device_refuses_what_the_machine_lacks():
    assert check_device("cpu") == "cpu"
    assert check_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="--device"):
        check_device("tpu")
