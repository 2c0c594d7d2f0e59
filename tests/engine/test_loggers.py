"""hyperfusion.engine.loggers: each of Lightning's loggers gets one row per epoch equal to the training history and
the hyper-parameters — read back with the logger's own reader (pandas, TensorBoard's EventAccumulator, MLflow's
client) — and training reaches bit-identical weights with any logger or none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from hyperfusion.engine import trainer as t
from hyperfusion.engine.loggers import Tracking
from tests.run.training_toys import ToyNet, classification_data

COLUMNS = ("train_loss", "val_loss", "val_BA")
HYPERPARAMETERS = {"lr": 0.01, "method": "toy", "shape": [4, 4]}


def _train(
    tmp_path: Path, name: str, tracking: Tracking | None
) -> tuple[dict[str, torch.Tensor], t.TrainResult]:
    t.seed_everything(0)
    model = ToyNet()
    result = t.train_model(
        model,
        DataLoader(classification_data(48, 0), batch_size=16, shuffle=True),
        DataLoader(classification_data(24, 1), batch_size=16),
        t.TrainSettings(task="classification", n_classes=3, progress_bar=False, lr=0.02, epochs=3),
        tmp_path / f"{name}.pt",
        tracking=tracking,
    )
    return {k: v.clone() for k, v in model.state_dict().items()}, result


def _read_csv(log_dir: Path, tracking: Tracking) -> tuple[pd.DataFrame, dict]:
    rows = pd.read_csv(log_dir / "metrics.csv")
    return rows, yaml.safe_load((log_dir / "hparams.yaml").read_text())


def _read_tensorboard(log_dir: Path, tracking: Tracking) -> tuple[pd.DataFrame, dict]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    columns = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in ("epoch", *COLUMNS)}
    return pd.DataFrame(columns).sort_index(), yaml.safe_load((log_dir / "hparams.yaml").read_text())


def _read_mlflow(log_dir: Path, tracking: Tracking) -> tuple[pd.DataFrame, dict]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == tracking.run_name and run.info.status == "FINISHED"
    assert run.data.tags["unit"] == "toy/s0_v0_f0"
    columns = {
        key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
        for key in ("epoch", *COLUMNS)
    }
    params = {k: yaml.safe_load(v) for k, v in run.data.params.items()}  # MLflow keeps parameters as text
    return pd.DataFrame(columns).sort_index(), params


READERS = {"csv": _read_csv, "tensorboard": _read_tensorboard, "mlflow": _read_mlflow}


@pytest.mark.parametrize("kind", list(READERS))
def test_each_logger_writes_one_row_per_epoch_equal_to_the_history_without_changing_training(kind, tmp_path):
    log_dir = tmp_path / "logs"
    tracking = Tracking(
        kind,
        log_dir,
        HYPERPARAMETERS,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}" if kind == "mlflow" else None,
        experiment="toy-run" if kind == "mlflow" else None,
        run_name="toy/s0_v0_f0",
        tags={"unit": "toy/s0_v0_f0"},
    )
    plain, _ = _train(tmp_path, "plain", None)
    logged, result = _train(tmp_path, "logged", tracking)
    assert all(torch.equal(plain[k], logged[k]) for k in plain)  # logging changes nothing
    rows, hyperparameters = READERS[kind](log_dir, tracking)
    history = pd.DataFrame(result.history)
    assert rows["epoch"].tolist() == [0, 1, 2] == history["epoch"].tolist()
    for column in COLUMNS:
        np.testing.assert_allclose(rows[column], history[column], rtol=1e-6)
    assert hyperparameters == HYPERPARAMETERS
    if kind == "mlflow":  # MLflow writes only to its store
        assert not log_dir.exists()


def test_a_retrained_models_curves_start_fresh(tmp_path):
    log_dir = tmp_path / "logs"
    (log_dir / "stale").mkdir(parents=True)
    _train(tmp_path, "m", Tracking("csv", log_dir, {}))
    assert sorted(p.name for p in log_dir.iterdir()) == ["hparams.yaml", "metrics.csv"]


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("wandb", {}, r"logger 'wandb' is not one of csv, tensorboard, mlflow"),
        ("mlflow", {"experiment": "e"}, r"the mlflow logger needs a tracking_uri and an experiment name"),
    ],
)
def test_a_bad_logger_is_refused_in_one_line(kind, extra, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        Tracking(kind, tmp_path, {}, **extra)


def test_a_missing_logger_package_is_named_with_the_extra_that_installs_it(monkeypatch):
    import importlib.util

    from hyperfusion.engine.loggers import check_installed

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "tensorboard" else real(name)
    )
    with pytest.raises(
        ValueError, match=r"training.logger: tensorboard needs the tensorboard package.*\[tracking\]"
    ):
        check_installed("tensorboard")
    check_installed("csv")
    check_installed("mlflow")
