"""Image attribution on the run's ensemble: occlusion sensitivity or integrated gradients, per view.

The output explained is the ensemble's probability of the class it predicts for the subject (regression: its
prediction), with the subject's own tabular record. Each view (left crop, mirrored right crop, or the whole-brain
box) is attributed with the other views held fixed, against a baseline view:

- ``mean`` (default): the mean preprocessed image of the training rows (fold 0's), i.e. the cohort's average
  anatomy. A map then says where this subject's anatomy, as it differs from the average, moves the output. This
  matters for atrophy: grey matter sits near 0 after z-scoring, so blanking it to 0 changes almost nothing;
- ``zero``: 0 everywhere (the background, and the mean of a z-scored brain).

Methods:

- ``occlusion``: the ensemble itself is scored on occluded copies (members combined exactly as the run combines
  them), so the map says what the ensemble loses when a patch is replaced by the baseline's;
- ``integrated-gradients``: per member from the baseline view to the subject's, averaged over the members (the
  ensemble's combination rule is not differentiated).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hyperfusion.explain.attribution import explained_output
from hyperfusion.explain.ensemble import Ensemble
from hyperfusion.explain.gradients import DEFAULT_STEPS, integrated_gradients
from hyperfusion.explain.occlusion import occlusion_map

IMAGE_METHODS = ("occlusion", "integrated-gradients")
IMAGE_BASELINES = ("mean", "zero")
DEFAULT_PATCH_MM = 8.0


@dataclass
class ImageAttribution:
    """One subject's maps, one per view ``[S, D, H, W]``, and the output they explain."""

    subject_id: str
    explained: str
    output: float
    maps: np.ndarray


def patch_voxels(patch_mm: float, voxel_mm: float) -> int:
    """A patch of about ``patch_mm`` in voxels (at least 1).

    Raises:
        ValueError: a non-positive patch size.
    """
    if not (isinstance(patch_mm, (int, float)) and np.isfinite(patch_mm) and patch_mm > 0):
        raise ValueError(f"the occlusion patch must be a positive size in mm, got {patch_mm!r}")
    return max(1, round(patch_mm / voxel_mm))


def choose_subjects(predicted: Sequence[object], n: int) -> list[int]:
    """Up to ``n`` row positions, taking the predicted classes in turn so each class mean has members."""
    if n <= 0:
        return []
    groups: dict[object, list[int]] = {}
    for i, label in enumerate(predicted):
        groups.setdefault(label, []).append(i)
    queues = list(groups.values())
    chosen: list[int] = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def occlusion_views(
    ensemble: Ensemble,
    views: Tensor,
    tabular: list[Tensor],
    explained: int | None,
    *,
    patch: int,
    stride: int,
    baseline: Tensor | None = None,
    batch_size: int = 32,
) -> tuple[np.ndarray, float]:
    """Occlusion maps ``[S, D, H, W]`` of one subject (``views`` ``[1, S, 1, D, H, W]``) and the output explained.

    ``baseline``: views ``[S, 1, D, H, W]`` whose voxels replace the occluded ones (None: zeros).
    """
    base = ensemble.all_member_values(views, tabular)
    reference = ensemble.combine(base)[0]
    output = float(reference[explained] if explained is not None else reference)
    maps = []
    for s in range(views.shape[1]):

        def f(volumes: Tensor, s: int = s) -> Tensor:
            k = volumes.shape[0]
            per_member = np.repeat(base, k, axis=1)
            batch = volumes[:, None, None]
            for m, member in enumerate(ensemble.members):
                values = ensemble.member_values(member, batch, tabular[m].expand(k, -1))
                per_member[m, :, s] = values[:, 0].cpu().numpy()
            combined = ensemble.combine(per_member)
            return torch.from_numpy(combined[:, explained] if explained is not None else combined)

        reference_view = 0.0 if baseline is None else baseline[s, 0]
        maps.append(
            occlusion_map(
                f,
                views[0, s, 0],
                patch=(patch,) * 3,
                stride=(stride,) * 3,
                baseline=reference_view,
                batch_size=batch_size,
            )
        )
    return np.stack(maps), output


def gradient_views(
    ensemble: Ensemble,
    views: Tensor,
    tabular: list[Tensor],
    explained: int | None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Tensor | None = None,
) -> tuple[np.ndarray, float]:
    """Integrated-gradient maps ``[S, D, H, W]`` of one subject, averaged over the members, and the output.

    ``baseline``: the views ``[S, 1, D, H, W]`` the path starts from (None: zeros).
    """
    reference = ensemble.combine(ensemble.all_member_values(views, tabular))[0]
    output = float(reference[explained] if explained is not None else reference)
    classes = None if explained is None else torch.tensor([explained])
    views = views.to(ensemble.device)
    total = np.zeros(views.shape[1:2] + views.shape[3:])
    for m in range(len(ensemble.members)):
        for s in range(views.shape[1]):

            def f(volume: Tensor, m: int = m, s: int = s) -> Tensor:
                parts = [volume if i == s else views[:, i] for i in range(views.shape[1])]
                values = ensemble.member_values(
                    ensemble.members[m], torch.stack(parts, dim=1), tabular[m], grad=True
                )
                return explained_output(ensemble.task, values, classes)

            start = torch.zeros(()) if baseline is None else baseline[s][None]
            ig = integrated_gradients(f, views[:, s], start, steps=steps)
            total[s] += ig[0, 0].detach().cpu().numpy()
    return total / len(ensemble.members), output


def safe_name(text: str) -> str:
    """A subject id or class name as a file name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)) or "_"
