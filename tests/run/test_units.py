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
