"""Input validation shared by the models: wrong shapes fail with a message naming the tensor and the shape."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def check_image(image: Tensor, *, channels: int, spatial: Sequence[int] | None = None) -> None:
    """Require ``image`` to be ``[B, channels, D, H, W]`` (and ``(D, H, W) == spatial`` when given).

    Raises:
        ValueError: naming the expected and the received shape.
    """
    if not isinstance(image, Tensor):
        raise ValueError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 5 or image.shape[1] != channels:
        raise ValueError(f"image must have shape [B, {channels}, D, H, W], got {tuple(image.shape)}")
    if spatial is not None and tuple(image.shape[2:]) != tuple(spatial):
        raise ValueError(
            f"image must have spatial shape {tuple(spatial)} (the network was built for it), "
            f"got {tuple(image.shape[2:])}"
        )


def check_tabular(tabular: Tensor | None, *, features: int, batch: int | None = None) -> Tensor:
    """Require ``tabular`` to be ``[B, features]`` (with ``B == batch`` when given) and return it.

    Raises:
        ValueError: when it is missing or has the wrong shape.
    """
    if tabular is None:
        raise ValueError(f"this model needs a tabular tensor [B, {features}], got None")
    if not isinstance(tabular, Tensor):
        raise ValueError(f"tabular must be a torch.Tensor, got {type(tabular).__name__}")
    if tabular.ndim != 2 or tabular.shape[1] != features or (batch is not None and tabular.shape[0] != batch):
        expected = f"[{batch if batch is not None else 'B'}, {features}]"
        raise ValueError(f"tabular must have shape {expected}, got {tuple(tabular.shape)}")
    return tabular
