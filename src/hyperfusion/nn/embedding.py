"""Tabular embedding networks: their output size, and the second moment the principled initialisation needs."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn


def infer_embedding_dim(embedding: nn.Module) -> int:
    """Output size of an embedding network: the ``out_features`` of its last ``nn.Linear``.

    Raises:
        ValueError: when the network contains no ``nn.Linear`` (pass ``embedding_dim`` explicitly then).
    """
    linears = [m for m in embedding.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"cannot infer the output size of embedding {type(embedding).__name__}: it has no nn.Linear; "
            "pass embedding_dim explicitly"
        )
    return linears[-1].out_features


def _tabular_of(batch: Any) -> Tensor:
    """The tabular tensor of a batch: the batch itself, or item 1 of ``(image, tabular, target, id)``."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and len(batch) > 1 and isinstance(batch[1], Tensor):
        return batch[1]
    raise ValueError(
        "each batch must be a tabular tensor or a (image, tabular, ...) tuple; "
        f"got {type(batch).__name__} (pass select= to pick the tabular tensor)"
    )


@torch.no_grad()
def estimate_embedding_variance(
    embedding: nn.Module,
    batches: Iterable[Any],
    *,
    select: Callable[[Any], Tensor] | None = None,
    mode: Literal["train", "eval"] = "train",
    centred: bool = False,
) -> float:
    """Estimate ``V`` for :func:`~hyperfusion.nn.principled_init_` by running the embedding over training data.

    Returns the second moment ``E[e_k²]`` averaged over samples and embedding units — the quantity the
    derivation of eqs. (1)–(2) needs — or, with ``centred=True``, the variance the paper writes (equal for a
    centred embedding). ``mode="train"`` measures what the first training steps see (BatchNorm with batch
    statistics) on a copy of the network, so its running statistics are left untouched.

    Args:
        embedding: the embedding network ``T -> e``.
        batches: an iterable of tabular tensors ``[B, F]`` or of dataset batches ``(image, tabular, ...)``,
            e.g. a training DataLoader.
        select: picks the tabular tensor out of a batch when the default rule does not fit.
        mode: ``"train"`` or ``"eval"`` behaviour of the network while measuring.
        centred: return the variance instead of the second moment.

    Raises:
        ValueError: when there is no data, or the result is not positive and finite.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    network = copy.deepcopy(embedding).train(mode == "train")
    pick = select or _tabular_of
    total = total_sq = 0.0
    count = 0
    device = next(network.parameters(), torch.empty(0)).device
    for batch in batches:
        tabular = pick(batch).to(device)
        if mode == "train" and tabular.shape[0] < 2:
            continue  # BatchNorm cannot normalise a batch of one
        values = network(tabular).double()
        total += float(values.sum())
        total_sq += float((values * values).sum())
        count += values.numel()
    if count == 0:
        raise ValueError("estimate_embedding_variance got no data (every batch empty or of size 1)")
    second_moment = total_sq / count
    estimate = second_moment - (total / count) ** 2 if centred else second_moment
    if not estimate > 0:
        raise ValueError(f"the embedding's {'variance' if centred else 'second moment'} is {estimate!r}")
    return estimate
