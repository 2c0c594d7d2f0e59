"""benchmarks/image_learning.py's schedule patch: each schedule run wraps the engine's own optimiser setup."""

from __future__ import annotations

import torch

from hyperfusion.engine import module as engine_module
from tests.scripts import load_benchmark


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
    script = load_benchmark("image_learning")
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
