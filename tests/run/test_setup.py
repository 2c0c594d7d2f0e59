"""Rebuilding a unit's model: checkpoints that are not ours are refused by name, devices the machine lacks too."""

from __future__ import annotations

import pickle

import pytest
import torch

from hyperfusion.config import config_from_dict
from hyperfusion.engine.target import StandardizedRegressor
from hyperfusion.models import create_model
from hyperfusion.run.setup import CheckpointError, check_device, load_checkpoint
from tests.faults import fault


class Foreign:
    """Not a tensor: loading it would need full unpickling."""


@fault(
    "checkpoints",
    "a checkpoint that is not a hyperfusion state_dict (a pickled object, a renamed file)",
    "one-line error: 'not a hyperfusion checkpoint', never a suggestion to unpickle it",
)
def test_a_foreign_checkpoint_is_refused_without_unpickling(tmp_path):
    model = create_model("ad-imaging", base_width=2)
    pickled = tmp_path / "foreign.pt"
    pickled.write_bytes(pickle.dumps(Foreign()))
    with pytest.raises(CheckpointError, match="is not a hyperfusion checkpoint") as caught:
        load_checkpoint(model, pickled)
    assert "weights_only" not in str(caught.value)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="is not a hyperfusion checkpoint"):
        load_checkpoint(model, text)
    torch.save({"a": 1}, tmp_path / "dict.pt")
    with pytest.raises(CheckpointError, match="not a state_dict of tensors"):
        load_checkpoint(model, tmp_path / "dict.pt")


@fault(
    "checkpoints",
    "checkpoints of two methods swapped on disk",
    "one-line error naming the file: it holds weights of another model",
)
def test_a_swapped_checkpoint_is_named(tmp_path):
    path = tmp_path / "tabular.pt"
    torch.save(create_model("ad-tabular").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"tabular.pt holds weights of another model"):
        load_checkpoint(create_model("ad-imaging", base_width=2), path)


@fault("checkpoints", "a truncated checkpoint file", "one-line error naming the file")
def test_a_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(create_model("ad-tabular").state_dict(), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"cut.pt is not a hyperfusion checkpoint"):
        load_checkpoint(create_model("ad-tabular"), path)


@fault(
    "configuration",
    "training.device: cuda on a machine without CUDA",
    "exit status 2 before anything is preprocessed: no CUDA GPU, use cpu",
)
def test_a_missing_gpu_is_named_before_anything_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="has no CUDA GPU"):
        check_device("cuda")
    check_device("cpu")
    check_device("auto")
    config = config_from_dict(
        {"cohort": "c.yaml", "methods": ["ad-imaging"], "training": {"device": "cuda:1"}}
    )
    from hyperfusion.run.setup import check_config_device

    with pytest.raises(ValueError, match="'cuda:1'"):
        check_config_device(config)


def test_standardised_regression_predicts_the_training_mean_at_first():
    class Zero(torch.nn.Module):
        def forward(self, image, tabular):
            return torch.zeros(image.shape[0])

    model = StandardizedRegressor.fit(Zero(), torch.tensor([60.0, 70.0, 80.0]).numpy())
    assert model(torch.zeros(2, 1), torch.zeros(2, 1)).tolist() == [70.0, 70.0]
    assert float(model.target_std) == pytest.approx(10.0)
    restored = StandardizedRegressor(Zero())
    restored.load_state_dict(model.state_dict())
    assert float(restored.target_mean) == 70.0
    with pytest.raises(ValueError, match="std > 0"):
        StandardizedRegressor(Zero(), 0.0, 0.0)
