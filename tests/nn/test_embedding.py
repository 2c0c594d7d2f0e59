"""The embedding-size inference and the second-moment estimate used by the principled initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyperfusion.nn import estimate_embedding_variance, infer_embedding_dim


def test_infer_embedding_dim_reads_the_last_linear():
    assert infer_embedding_dim(nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.PReLU())) == 8
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        infer_embedding_dim(nn.Sequential(nn.ReLU()))


def test_estimate_matches_a_hand_computation_in_eval_mode():
    torch.manual_seed(0)
    embedding = nn.Sequential(nn.Linear(5, 3), nn.PReLU())
    batches = [torch.randn(7, 5) for _ in range(4)]
    with torch.no_grad():
        values = torch.cat([embedding(b) for b in batches]).double()
    got = estimate_embedding_variance(embedding, batches, mode="eval")
    assert got == pytest.approx(float(values.pow(2).mean()), rel=1e-6)
    got_var = estimate_embedding_variance(embedding, batches, mode="eval", centred=True)
    assert got_var == pytest.approx(float(values.var(unbiased=False)), rel=1e-6)


def test_train_mode_uses_batch_statistics_and_leaves_running_stats_alone():
    torch.manual_seed(1)
    embedding = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
    before = embedding[1].running_mean.clone()
    batches = [(torch.zeros(8, 1), 3.0 + 2.0 * torch.randn(8, 4), torch.zeros(8)) for _ in range(5)]
    estimate = estimate_embedding_variance(embedding, batches)  # dataset-style batches: tabular is item 1
    # BatchNorm in train mode normalises every batch: each unit has mean 0 and (biased) variance ~1
    assert estimate == pytest.approx(1.0, rel=1e-3)
    torch.testing.assert_close(embedding[1].running_mean, before)
    assert embedding.training


def test_estimate_rejects_empty_or_degenerate_data():
    with pytest.raises(ValueError, match="no data"):
        estimate_embedding_variance(nn.Linear(2, 2), [])
    zero = nn.Linear(2, 2)
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    with pytest.raises(ValueError, match="second moment"):
        estimate_embedding_variance(zero, [torch.randn(4, 2)], mode="eval")
    with pytest.raises(ValueError, match="tabular tensor"):
        estimate_embedding_variance(nn.Linear(2, 2), [{"tabular": torch.randn(3, 2)}])
