"""The modulators behind :func:`~hyperfusion.nn.film` and :func:`~hyperfusion.nn.daft`: FiLM and DAFT.

- FiLM, feature-wise linear modulation (Perez et al. 2018, AAAI): ``x' = γ(h) ⊙ x + β(h)`` per channel.
- DAFT, the dynamic affine feature-map transform (Wolf et al. 2022, NeuroImage; Pölsterl et al. 2021, MICCAI):
  the same affine map, but its parameters come from the tabular data *and* the image, ``[GAP(x); h]``.

Both generate ``[Δγ; β] = W₂ ReLU(W₁ ·)`` with two bias-free linear layers and a small bottleneck (Wolf et al. use a
bottleneck of 7 in the paper's setting). We parameterise the scale as ``γ = 1 + Δγ`` and draw ``W₂`` from
``N(0, init_std²)`` (default 0.01), so the modulation starts near the identity map ``x' ≈ x`` and training moves
away from it. The authors' adaptation used ``γ = Δγ`` with PyTorch's default init, i.e. a random scale near 0 that
nearly switches the modulated path off at the start; we do not repeat that. Parameter counts are unchanged by this
choice. The feature map may have any number of spatial axes (1D, 2D, 3D) or none.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: Standard deviation of the generator's last layer at initialisation (FiLM and DAFT). Measured on the AD demo
#: (docs/fairness.md): at 0.01 or 0.1 neither method opens its tabular path within a short training (tabular
#: sensitivity ≈ 0, balanced accuracy at the imaging-only level); at 1 both use the record as concatenation does.
DEFAULT_INIT_STD = 1.0


class FiLM(nn.Module):
    """Feature-wise linear modulation of ``x [B, C, ...]`` by ``t [B, F]``: ``x' = (1 + Δγ(t)) ⊙ x + β(t)``.

    ``[Δγ; β] = W₂ ReLU(W₁ t)``, ``W₁: F → bottleneck``, ``W₂: bottleneck → 2C``, both without bias
    (``bottleneck·(F + 2C)`` parameters).

    Args:
        num_channels: channels ``C`` of the modulated feature map.
        tabular_features: width ``F`` of the tabular condition (an encoder's output or the raw vector).
        bottleneck: hidden width of the generator.
        init_std: standard deviation of the normal initialisation of ``W₂``; small values start near identity.

    Raises:
        ValueError: for non-positive sizes or a negative ``init_std``.

    Example:
        >>> film = FiLM(8, 5)
        >>> film(torch.randn(2, 8, 4, 4, 4), torch.randn(2, 5)).shape
        torch.Size([2, 8, 4, 4, 4])
    """

    def __init__(
        self,
        num_channels: int,
        tabular_features: int,
        *,
        bottleneck: int = 7,
        init_std: float = DEFAULT_INIT_STD,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_channels", num_channels),
            ("tabular_features", tabular_features),
            ("bottleneck", bottleneck),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not (init_std >= 0.0 and math.isfinite(init_std)):
            raise ValueError(f"init_std must be a finite number >= 0, got {init_std}")
        self.num_channels = num_channels
        self.tabular_features = tabular_features
        self.init_std = init_std
        self.generator = nn.Sequential(
            nn.Linear(self.condition_features, bottleneck, bias=False),
            nn.ReLU(),
            nn.Linear(bottleneck, 2 * num_channels, bias=False),
        )
        self.reset_parameters()

    @property
    def condition_features(self) -> int:
        """Width of the generator's input ``h``."""
        return self.tabular_features

    def reset_parameters(self) -> None:
        """PyTorch's default init for ``W₁``; ``W₂ ~ N(0, init_std²)`` so that ``γ ≈ 1`` and ``β ≈ 0``."""
        self.generator[0].reset_parameters()
        nn.init.normal_(self.generator[2].weight, std=self.init_std)

    def condition(self, x: Tensor, tabular: Tensor) -> Tensor:
        """The generator input ``h``: the tabular vector (FiLM)."""
        return tabular

    def scale_shift(self, x: Tensor, tabular: Tensor) -> tuple[Tensor, Tensor]:
        """``(γ, β)``, each ``[B, C]``."""
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{type(self).__name__} expects a feature map [B, {self.num_channels}, ...], got {tuple(x.shape)}"
            )
        if tabular.ndim != 2 or tabular.shape != (x.shape[0], self.tabular_features):
            raise ValueError(
                f"{type(self).__name__} expects tabular [B={x.shape[0]}, {self.tabular_features}], "
                f"got {tuple(tabular.shape)}"
            )
        delta_scale, shift = self.generator(self.condition(x, tabular)).chunk(2, dim=1)
        return 1.0 + delta_scale, shift

    def forward(self, x: Tensor, tabular: Tensor) -> Tensor:
        scale, shift = self.scale_shift(x, tabular)
        view = (*scale.shape, *([1] * (x.ndim - 2)))
        return scale.view(view) * x + shift.view(view)


class DAFT(FiLM):
    """Dynamic affine feature-map transform: FiLM whose generator sees ``h = [GAP(x); t]``.

    ``GAP`` is the global average over the spatial axes of the *same* feature map that is modulated, so the
    generator has ``bottleneck·(C + F + 2C)`` parameters.

    Args:
        num_channels: channels ``C`` of the modulated feature map.
        tabular_features: width ``F`` of the tabular vector.
        bottleneck: hidden width of the generator (7 in the paper's DAFT-like baseline).
        init_std: standard deviation of the normal initialisation of ``W₂``.
    """

    @property
    def condition_features(self) -> int:
        return self.num_channels + self.tabular_features

    def condition(self, x: Tensor, tabular: Tensor) -> Tensor:
        pooled = x.mean(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x
        return torch.cat([pooled, tabular], dim=1)
