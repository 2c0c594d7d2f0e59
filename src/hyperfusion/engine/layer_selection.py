"""Where to put a hyper layer: the loss-entropy ranking of paper §3.1.2 (after Lutati and Wolf, 2021).

For an *untrained* backbone, each candidate layer is re-drawn many times from its own initialiser while every other
layer keeps its random weights; the loss over a fixed set of training samples is recorded each time. A layer whose
re-draws spread the loss over many values (high entropy of the normalised loss histogram) is one the output is
sensitive to — a good candidate for a tabular-generated layer. Every layer's histogram uses the same bins (the range
of all losses), so entropies are comparable across layers.

Differences from the authors' script (removed from their repository), on purpose: the network is the
one that will be trained (its real width), the inputs are fixed (no random augmentation between draws), and each
draw is scored on the same whole sample set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFunction = Callable[[Tensor, Tensor], Tensor]


def candidate_layers(model: nn.Module) -> list[str]:
    """Qualified names of the layers a hypernetwork can generate (``nn.Linear`` and ``nn.Conv3d``)."""
    return [
        name for name, module in model.named_modules() if isinstance(module, (nn.Linear, nn.Conv3d)) and name
    ]


def histogram_entropy(values: np.ndarray, *, bins: int, value_range: tuple[float, float]) -> float:
    """Entropy in bits of the normalised histogram of ``values`` (``-Σ p log2 p`` over non-empty bins)."""
    counts, _ = np.histogram(values, bins=bins, range=value_range)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _first_view(image: Tensor) -> Tensor:
    """Two-sided evaluation batches ``[B, S, 1, D, H, W]`` are scored on their first view (fixed input)."""
    return image[:, 0] if image.dim() == 6 else image


def _default_loss(output: Tensor, target: Tensor) -> Tensor:
    if output.dim() == 2 and not torch.is_floating_point(target):
        return F.cross_entropy(output, target)
    return F.mse_loss(output.float(), target.float())


@torch.no_grad()
def loss_entropy(
    model: nn.Module,
    batches: Sequence[Sequence[Tensor]],
    *,
    layers: Sequence[str] | None = None,
    loss: LossFunction | None = None,
    draws: int = 100,
    bins: int = 30,
    seed: int = 0,
) -> pd.DataFrame:
    """Rank ``layers`` of an untrained ``model`` by the entropy of the loss over re-draws of each layer alone.

    Args:
        model: called ``model(image, tabular)``; evaluated in eval mode, its parameters restored afterwards.
        batches: fixed ``(image, tabular, target, ...)`` batches, e.g. a list taken from a training loader.
        layers: candidate layer names (default: every ``nn.Linear`` / ``nn.Conv3d``).
        loss: ``loss(output, target)`` (default: cross-entropy for logits and class indices, else MSE).
        draws: re-draws per layer (the paper used 1000).
        bins: histogram bins over the common loss range.
        seed: the re-draws are seeded per (seed, layer, draw), so a ranking is reproducible.

    Returns:
        One row per layer — ``layer, entropy_bits, loss_mean, loss_std, loss_min, loss_max`` — highest entropy
        first.

    Raises:
        ValueError: no batches, fewer than two draws or bins, an unknown layer, or a layer without
            ``reset_parameters``.
    """
    if not batches:
        raise ValueError("loss_entropy needs at least one batch")
    if draws < 2 or bins < 2:
        raise ValueError(f"draws and bins must be >= 2, got draws={draws}, bins={bins}")
    names = list(layers) if layers is not None else candidate_layers(model)
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules or not name:
            raise ValueError(f"model has no layer named {name!r}; candidates: {candidate_layers(model)}")
        if not hasattr(modules[name], "reset_parameters"):
            raise ValueError(f"layer {name!r} ({type(modules[name]).__name__}) has no reset_parameters()")
    loss = loss or _default_loss
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    def total_loss() -> float:
        values = []
        for batch in batches:
            image, tabular, target = (t.to(device) for t in batch[:3])
            values.append(float(loss(model(_first_view(image), tabular), target)) * target.shape[0])
        return sum(values) / sum(int(b[2].shape[0]) for b in batches)

    losses: dict[str, np.ndarray] = {}
    try:
        for index, name in enumerate(names):
            layer = modules[name]
            original = {k: v.clone() for k, v in layer.state_dict().items()}
            values = np.empty(draws)
            for draw in range(draws):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(np.random.SeedSequence([seed, index, draw]).generate_state(1)[0]))
                    layer.reset_parameters()
                values[draw] = total_loss()
            layer.load_state_dict(original)
            losses[name] = values
    finally:
        model.train(was_training)
    every = np.concatenate(list(losses.values()))
    value_range = (float(every.min()), float(every.max()))
    if value_range[0] == value_range[1]:
        value_range = (value_range[0] - 0.5, value_range[1] + 0.5)
    rows = [
        {
            "layer": name,
            "entropy_bits": histogram_entropy(values, bins=bins, value_range=value_range),
            "loss_mean": float(values.mean()),
            "loss_std": float(values.std(ddof=1)),
            "loss_min": float(values.min()),
            "loss_max": float(values.max()),
        }
        for name, values in losses.items()
    ]
    return (
        pd.DataFrame(rows).sort_values("entropy_bits", ascending=False, kind="stable").reset_index(drop=True)
    )
