"""What the hypernetwork generates: each subject's weights of each hyper layer, their spread, and subgroups.

For a hyper model every subject's record is embedded and each hyper layer generates that subject's weights and
biases (``layer.generate(embedding)``). Two summaries say whether the conditioning does something:

- spread: the standard deviation of each generated parameter across subjects, summarised per layer, and relative
  to the size of the mean weights;
- separation of subgroups: for two groups of subjects (two sexes, APOE4 carriers and non-carriers, two
  diagnoses), the distance between their mean generated parameter vectors ``‖μ_a − μ_b‖`` relative to the pooled
  within-group spread ``s = sqrt(Σ_g Σ_{i∈g} ‖w_i − μ_g‖² / (n_a + n_b − 2))``. For groups drawn at random the
  ratio is about ``sqrt(1/n_a + 1/n_b)`` (``null_ratio``); a permutation test (group labels shuffled among the
  two groups' subjects) gives its p-value. The ratio is infinite when every subject of each group gets the same
  weights (a record that holds only the grouping attribute, e.g. sex for brain age); ``relative_distance``,
  ``‖μ_a − μ_b‖`` over the norm of the two groups' mean vector, then says how large the difference is.

Weights of different fold models are not comparable (each has its own hypernetwork), so every statistic is per
model; the text summary reports how consistent they are across models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from hyperfusion.nn import ConditionedModel

DEFAULT_PERMUTATIONS = 999
MIN_GROUP = 2


@dataclass
class LayerWeights:
    """One hyper layer's generated parameters for every subject."""

    layer: str
    embedding: np.ndarray  # [N, E]
    weight: np.ndarray  # [N, *weight_shape]
    bias: np.ndarray | None  # [N, out]

    def vectors(self) -> np.ndarray:
        """Each subject's parameters as one float64 vector ``[N, P]`` (weights, then biases)."""
        parts = [self.weight.reshape(len(self.weight), -1)]
        if self.bias is not None:
            parts.append(self.bias.reshape(len(self.bias), -1))
        return np.concatenate(parts, axis=1).astype(np.float64)


def conditioned(model: nn.Module) -> ConditionedModel | None:
    """The fused model inside ``model`` (a regression wrapper's network), or None for a model without one."""
    seen = 0
    while not isinstance(model, ConditionedModel) and hasattr(model, "network") and seen < 4:
        model, seen = model.network, seen + 1
    return model if isinstance(model, ConditionedModel) else None


def has_hyper_layers(model: nn.Module) -> bool:
    fused = conditioned(model)
    return fused is not None and bool(fused.hyper_layers)


@torch.no_grad()
def generate(model: nn.Module, tabular: Tensor) -> list[LayerWeights]:
    """Every hyper layer's generated weights and biases for the rows of ``tabular`` (empty: no hyper layer)."""
    fused = conditioned(model)
    if fused is None or not fused.hyper_layers:
        return []
    was_training = fused.training
    fused.eval()
    try:
        device = next(fused.parameters()).device
        embeddings = fused.embed(tabular.to(device))
        out = []
        for name, layer in fused.hyper_layers.items():
            e = embeddings[name]
            weight, bias = layer.generate(e)
            out.append(
                LayerWeights(
                    name,
                    e.float().cpu().numpy(),
                    weight.float().cpu().numpy(),
                    None if bias is None else bias.float().cpu().numpy(),
                )
            )
        return out
    finally:
        fused.train(was_training)


def spread(vectors: np.ndarray) -> dict[str, float]:
    """Summary of the across-subject standard deviation of each parameter of ``[N, P]`` vectors.

    ``relative_spread`` is the mean standard deviation over the root-mean-square of the mean parameters: how large
    the subject-to-subject change is against the weights themselves.
    """
    std = vectors.std(axis=0)
    mean = vectors.mean(axis=0)
    rms = float(np.sqrt(np.mean(mean**2)))
    return {
        "parameters": int(vectors.shape[1]),
        "std_mean": float(std.mean()),
        "std_median": float(np.median(std)),
        "std_max": float(std.max()),
        "mean_weight_rms": rms,
        "relative_spread": float(std.mean() / rms) if rms > 0 else float("nan"),
    }


def _sums(gram: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``1_gᵀ G 1_g`` for each row of boolean ``masks`` ``[K, n]``."""
    m = masks.astype(np.float64)
    return np.einsum("ki,ij,kj->k", m, gram, m)


def _pair_statistics(gram: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance between the two groups' means and pooled within spread, for masks ``first`` ``[K, n]``."""
    n = gram.shape[0]
    second = ~first
    n_a, n_b = first.sum(axis=1), second.sum(axis=1)
    s_a, s_b = _sums(gram, first), _sums(gram, second)
    cross = np.einsum("ki,ij,kj->k", first.astype(np.float64), gram, second.astype(np.float64))
    distance2 = s_a / n_a**2 + s_b / n_b**2 - 2 * cross / (n_a * n_b)
    within2 = (np.trace(gram) - s_a / n_a - s_b / n_b) / (n - 2)
    return np.sqrt(np.maximum(distance2, 0)), np.sqrt(np.maximum(within2, 0))


def _ratio(distance: np.ndarray, within: np.ndarray) -> np.ndarray:
    """distance / within; NaN when both vanish (identical vectors), infinite when only the spread does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = distance / within
    return np.where((within == 0) & (distance == 0), np.nan, out)


def separation(
    vectors: np.ndarray,
    labels: Sequence[object],
    *,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """Distance between the mean vectors of every pair of groups, against the within-group spread.

    Args:
        vectors: ``[N, P]`` parameters per subject.
        labels: a group per subject (None or NaN: in no group).
        permutations: label shuffles of the permutation test (0: no p-value).
        seed: seeds the shuffles.

    Returns:
        One row per pair of groups with at least ``MIN_GROUP`` subjects each: ``group_a, group_b, n_a, n_b,
        distance, within, ratio, null_ratio, relative_distance, p_value``.
    """
    labels = pd.Series(list(labels), dtype=object)
    present = labels.notna().to_numpy()
    counts = labels[present].astype(str).value_counts()
    groups = sorted(counts.index[counts >= MIN_GROUP])
    text = labels.map(lambda v: None if pd.isna(v) else str(v)).to_numpy()
    rows = []
    rng = np.random.default_rng(seed)
    for a, b in combinations(groups, 2):
        members = np.flatnonzero((text == a) | (text == b))
        x = vectors[members] - vectors[members].mean(axis=0)
        gram = x @ x.T
        first = (text[members] == a)[None]
        distance, within = _pair_statistics(gram, first)
        ratio = float(_ratio(distance, within)[0])
        n_a, n_b = int(first.sum()), len(members) - int(first.sum())
        p_value = float("nan")
        if permutations > 0 and not np.isnan(ratio):
            shuffled = np.stack([rng.permutation(first[0]) for _ in range(permutations)])
            d, w = _pair_statistics(gram, shuffled)
            null = _ratio(d, w)
            p_value = float((1 + np.sum(null >= ratio * (1 - 1e-9))) / (1 + permutations))
        scale = float(np.linalg.norm(vectors[members].mean(axis=0)))
        rows.append(
            {
                "group_a": a,
                "group_b": b,
                "n_a": n_a,
                "n_b": n_b,
                "distance": float(distance[0]),
                "within": float(within[0]),
                "ratio": ratio,
                "null_ratio": float(np.sqrt(1 / n_a + 1 / n_b)),
                "relative_distance": float(distance[0]) / scale if scale > 0 else float("nan"),
                "p_value": p_value,
            }
        )
    return pd.DataFrame(rows)


def groupings(
    frame: pd.DataFrame,
    attributes: Sequence[tuple[str, str]],
    *,
    predicted: Sequence[object] | None = None,
    max_levels: int = 4,
) -> dict[str, list[object]]:
    """The subgroupings worth comparing: each binary/categorical attribute, each continuous one with at most
    ``max_levels`` distinct values among the subjects (an allele count), the target class when known, and the
    predicted class.

    Args:
        frame: the subjects' rows (a ``Cohort`` frame).
        attributes: ``(name, kind)`` pairs.
        predicted: the ensemble's predicted class per subject (classification).
    """
    out: dict[str, list[object]] = {}
    for name, kind in attributes:
        values = frame[name]
        if kind == "continuous":
            if values.dropna().nunique() > max_levels:
                continue
            values = values.map(lambda v: v if pd.isna(v) else f"{float(v):g}")
        out[name] = [None if pd.isna(v) else str(v) for v in values]
    if "label" in frame.columns and frame["label"].notna().any():
        out["target"] = [None if pd.isna(v) else str(v) for v in frame["label"]]
    if predicted is not None:
        out["predicted"] = [str(v) for v in predicted]
    return out
