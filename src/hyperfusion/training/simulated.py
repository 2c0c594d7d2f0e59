"""Configs that ask for a simulated cohort (``simulate:``) get it written into the run directory first.

This is how `make demo` runs on a fresh machine: the simulator writes NIfTI files, a table and a manifest exactly
as a user's cohort, and the protocol then reads them through the data layer like any other cohort.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hyperfusion.config import ConfigError, RunConfig

SIMULATORS = ("ad", "brain-age")


def ensure_simulated_cohort(config: RunConfig, out: str | Path) -> RunConfig:
    """Simulate the config's cohort into ``out/cohort`` (resuming a partial one) and point the config at it."""
    if config.simulate is None:
        return config
    from hyperfusion.simulate import simulate_ad, simulate_brain_age

    arguments = dict(config.simulate)
    task = arguments.pop("task", None)
    if task not in SIMULATORS:
        raise ConfigError(f"simulate.task: {task!r} is not allowed; choose one of {list(SIMULATORS)}")
    simulator = simulate_ad if task == "ad" else simulate_brain_age
    try:
        spec_path = simulator(Path(out) / "cohort", progress=config.training.progress, **arguments)
    except TypeError as err:
        raise ConfigError(f"simulate: {err}") from None
    return dataclasses.replace(config, cohort=str(Path(spec_path).resolve()))
