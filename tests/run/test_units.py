"""A unit's training settings: Lightning's progress bar stays off whether the run's own progress shows or not."""

from __future__ import annotations

import dataclasses

import pytest

from hyperfusion.config import load_config
from hyperfusion.run.plan import Unit
from hyperfusion.run.units import settings_for


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
