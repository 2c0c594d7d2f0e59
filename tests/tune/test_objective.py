"""A trial's pieces: which methods a trial can train, per-epoch pruning, a trial's settings on one method only."""

from __future__ import annotations

import optuna
import pytest

from hyperfusion.config import config_from_dict
from hyperfusion.tune.objective import PruneOnValidation, tunable, with_trial


def test_only_gradient_trained_methods_are_tuned():
    assert tunable("ad-hyperfusion") is None and tunable("ad-tabular") is None
    assert "closed form" in tunable("ad-crop-reader")
    assert "composed" in tunable("ad-late-fusion")


class _Module:
    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []


def test_pruning_reports_every_epoch_and_stops_a_bad_trial():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    module = _Module()
    callback = PruneOnValidation(trial, "BA", step_offset=10)
    module.history.append({"val_BA": 0.7})
    callback.on_train_epoch_end(None, module)  # above the threshold: goes on
    module.history.append({"val_BA": 0.2})
    with pytest.raises(optuna.TrialPruned):
        callback.on_train_epoch_end(None, module)
    assert study.trials[0].intermediate_values == {10: 0.7, 11: 0.2}


def test_no_epoch_of_the_warm_up_is_judged():
    """Near-chance first epochs are reported but never prune: the pruner judges from epoch ``warmup`` on."""
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    module = _Module()
    callback = PruneOnValidation(trial, "BA", step_offset=0, warmup=3)
    for value in (0.2, 0.3, 0.33):  # below the threshold, inside the warm-up
        module.history.append({"val_BA": value})
        callback.on_train_epoch_end(None, module)
    module.history.append({"val_BA": 0.34})
    with pytest.raises(optuna.TrialPruned):
        callback.on_train_epoch_end(None, module)
    assert list(study.trials[0].intermediate_values) == [0, 1, 2, 3]


def test_a_trial_changes_one_method_only():
    config = config_from_dict(
        {"cohort": "c.yaml", "methods": ["ad-film", "ad-daft"], "training": {"lr": 0.001, "epochs": 5}}
    )
    trial = with_trial(config, "ad-film", {"lr": 0.01}, {"init_std": 0.1})
    assert trial.training_for("ad-film").lr == 0.01 and trial.training_for("ad-film").epochs == 5
    assert trial.training_for("ad-daft") == trial.training == config.training  # the others keep theirs
    assert dict(trial.model_overrides) == {"ad-film": {"init_std": 0.1}}
    assert config.training.lr == 0.001 and not config.model_overrides and not config.method_training
