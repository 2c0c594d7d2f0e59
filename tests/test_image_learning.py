"""benchmarks/image_learning.py's schedule patch: each schedule run wraps the engine's own optimiser setup."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from hyperfusion.engine import module as engine_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "image_learning.py"


def load_script():
    spec = importlib.util.spec_from_file_location("image_learning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Trainer:
    estimated_stepping_batches = 10


class _Module:
    """Enough of a TrainingModule for configure_optimizers: one parameter, a learning rate, a trainer."""

    lr = 1e-3
    weight_decay = 1e-5
    trainer = _Trainer()

    def __init__(self):
        self.model = torch.nn.Linear(2, 1)


def test_a_second_schedule_run_after_a_restore_still_schedules_an_optimiser(monkeypatch):
    script = load_script()
    own = engine_module.TrainingModule.configure_optimizers
    for _ in range(2):  # what two seeds of the schedule axis do: patch, train, restore
        patched = script.with_schedule("onecycle")
        monkeypatch.setattr(engine_module.TrainingModule, "configure_optimizers", patched)
        configured = patched(_Module())
        assert isinstance(configured["optimizer"], torch.optim.Optimizer)
        assert isinstance(configured["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.OneCycleLR)
        monkeypatch.setattr(
            engine_module.TrainingModule, "configure_optimizers", script.with_schedule("constant")
        )
        assert engine_module.TrainingModule.configure_optimizers is own
