"""One model on several devices: DDP over two CPU processes (gloo) follows the one-process loss trajectory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from hyperfusion.data import CohortDataset
from hyperfusion.engine.trainer import ShardedShuffleSampler, TrainSettings, train_model
from hyperfusion.nn import hyperize


class Squeeze(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image, tabular):
        return self.model(image, tabular)[:, 0]


def _data(n: int = 32, seed: int = 0) -> CohortDataset:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 4, 4, 4)).astype(np.float32)
    tabular = rng.normal(size=(n, 3)).astype(np.float32)
    targets = (images.mean(axis=(1, 2, 3)) * 3 + tabular[:, 0] * tabular[:, 1]).astype(np.float32)
    return CohortDataset(list(images), tabular, targets, [str(i) for i in range(n)], train=True)


def _model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 1))
    return Squeeze(hyperize(net, ["1", "3"], nn.Linear(3, 2)))


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path):
    train, val = _data(32, 0), _data(16, 1)
    settings = dict(task="regression", epochs=3, lr=1e-2, seed=5, device="cpu", progress_bar=False)
    # one process over the same shuffled global batches the DDP processes split between them
    single_loader = DataLoader(
        train, batch_size=8, sampler=ShardedShuffleSampler(32, seed=5, per_process_batch=8)
    )
    one = _model()
    single = train_model(
        one, single_loader, DataLoader(val, batch_size=8), TrainSettings(**settings), tmp_path / "a.pt"
    )
    two = _model()
    shuffled = DataLoader(train, batch_size=8, shuffle=True)
    ddp = train_model(
        two, shuffled, DataLoader(val, batch_size=8), TrainSettings(**settings, devices=2), tmp_path / "b.pt"
    )

    assert len(ddp.history) == len(single.history) == 3
    for a, b in zip(single.history, ddp.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    assert ddp.best_epoch == single.best_epoch
    for (name, p), q in zip(one.state_dict().items(), two.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)


def test_sharded_sampler_splits_each_global_batch_between_processes(monkeypatch):
    sampler = ShardedShuffleSampler(10, seed=3, per_process_batch=2)
    order = list(sampler)  # one process: the whole permutation, in global-batch order
    assert sorted(order) == list(range(10))
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(ShardedShuffleSampler, "_rank_world", lambda self, r=rank: (r, 2))
        shards.append(list(sampler))
        assert len(sampler) == 4  # two full global batches of 4; the last 2 samples are dropped
    interleaved = [i for step in range(2) for r in (0, 1) for i in shards[r][2 * step : 2 * step + 2]]
    assert interleaved == order[:8]
    sampler.set_epoch(1)
    monkeypatch.setattr(ShardedShuffleSampler, "_rank_world", lambda self: (0, 1))
    assert list(sampler) != order  # a fresh permutation each epoch


def test_devices_need_a_divisible_batch(tmp_path):
    loader = DataLoader(_data(8), batch_size=5, shuffle=True)
    settings = TrainSettings(task="regression", epochs=1, device="cpu", devices=2, progress_bar=False)
    with pytest.raises(ValueError, match="divisible by devices=2"):
        train_model(_model(), loader, loader, settings, tmp_path / "c.pt")
