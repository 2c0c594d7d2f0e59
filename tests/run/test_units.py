"""A unit's training settings: Lightning's progress bar stays off; a method's own settings reach its units only."""

from __future__ import annotations

import dataclasses

import pytest

from hyperfusion.config import load_config
from hyperfusion.run.plan import Unit
from hyperfusion.run.units import settings_for
from tests.faults import fault


@pytest.mark.parametrize("progress", [True, False])
def test_lightning_bars_never_interleave_with_the_runs_progress(progress):
    config = load_config("ad-demo")
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, progress=progress))
    settings = settings_for(config, "classification", 3, Unit("ad-imaging", 0, 0, 0))
    assert settings.progress_bar is False
    assert settings.epochs == config.training.epochs  # the rest still comes from the config


def test_a_cohort_warning_is_printed_once_per_run_not_again_by_each_units_reread(tmp_path, capsys):
    """The tiny cohort reads 2 censored ABETA values: the run says so once, the units' own read stays quiet."""
    from hyperfusion.cli import main
    from hyperfusion.simulate import simulate_ad
    from tests.run.test_runner import write_config

    cohort = simulate_ad(
        tmp_path / "c", n=40, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False
    )
    config = write_config(
        tmp_path / "run.yaml", cohort, methods=("ad-imaging",), warm_start="none", logger="none"
    )
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert err.count("censored value(s) at their bound (ABETA: 2)") == 1, err


@pytest.fixture(scope="module")
def cohort_yaml(tmp_path_factory):
    from hyperfusion.simulate import simulate_ad

    out = tmp_path_factory.mktemp("cohort")
    return simulate_ad(out, n=40, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False)


def tiny_run_config(cohort, method_training):
    from hyperfusion.config import config_from_dict

    return config_from_dict(
        {
            "cohort": str(cohort),
            "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
            "methods": ["ad-tabular", "ad-film"],
            "model": {"base_width": 2},
            "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 1},
            "training": {"epochs": 1, "batch_size": 8, "lr": 0.001, "device": "cpu", "progress": False},
            "method_training": method_training,
        }
    )


@fault(
    "run directory",
    "a rerun into a finished run with another per-method training setting (method_training)",
    "exit status 2 naming method_training.<method>.<key> and its two values",
)
def test_method_training_reaches_its_units_only_and_is_recorded(cohort_yaml, tmp_path):
    from hyperfusion.run.runner import run_protocol
    from hyperfusion.run.store import RunDirectory, RunDirectoryError

    own = {"ad-film": {"epochs": 3, "lr": 0.0003, "batch_size": 4}}
    run_protocol(tiny_run_config(cohort_yaml, own), tmp_path / "run", echo=lambda _: None)
    run = RunDirectory(tmp_path / "run")
    film, tabular = (run.read_record(Unit(m, 0, 0, 0)) for m in ("ad-film", "ad-tabular"))
    assert film["training"] == {"epochs": 3, "batch_size": 4, "lr": 0.0003, "weight_decay": 1e-5}
    assert len(film["history"]) == 3  # trained for its own epochs ...
    assert tabular["training"] == {"epochs": 1, "batch_size": 8, "lr": 0.001, "weight_decay": 1e-5}
    assert len(tabular["history"]) == 1  # ... its warm-start member at the run's
    changed = {"ad-film": {**own["ad-film"], "lr": 0.001}}
    with pytest.raises(RunDirectoryError, match=r"method_training.ad-film.lr: 0.0003 → 0.001"):
        run_protocol(tiny_run_config(cohort_yaml, changed), tmp_path / "run", echo=lambda _: None)
