"""Feature-wise conditioning of 3D feature maps on tabular data: FiLM and DAFT.

- FiLM, feature-wise linear modulation (Perez et al. 2018, AAAI): ``x' = γ(t) ⊙ x + β(t)`` per channel.
- DAFT, the dynamic affine feature-map transform (Wolf et al. 2022, NeuroImage; Pölsterl et al. 2021, MICCAI):
  the same affine map, but its parameters come from the tabular data *and* the image, ``[GAP(x); t]``.

Both generate ``[Δγ; β] = W₂ ReLU(W₁ h)`` with two bias-free linear layers and a small bottleneck (Wolf et al. use a
bottleneck of 7 in the paper's setting). We parameterise the scale as ``γ = 1 + Δγ`` and draw ``W₂`` from
``N(0, init_std²)`` (default 0.01), so the block starts near the identity map ``x' ≈ x`` and training moves away
from it. The authors' adaptation used ``γ = Δγ`` with PyTorch's default init, i.e. a random scale near 0 that
nearly switches the modulated path off at the start (reference.md §1.2); we do not repeat that. Parameter counts
are unchanged by this choice.

:class:`ModulatedPreActResBlock3d` is a pre-activation residual block whose main-path input is modulated while the
shortcut sees the unmodulated input (DAFT's "location 2"), as in the paper's FiLM-like and DAFT-like baselines.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hyperfusion.nn.blocks import PreActResBlock3d, ShortcutOrder


class FiLM(nn.Module):
    """Feature-wise linear modulation of ``x [B, C, ...]`` by ``t [B, F]``: ``x' = (1 + Δγ(t)) ⊙ x + β(t)``.

    ``[Δγ; β] = W₂ ReLU(W₁ t)``, ``W₁: F → bottleneck``, ``W₂: bottleneck → 2C``, both without bias
    (``bottleneck·(F + 2C)`` parameters).

    Args:
        num_channels: channels ``C`` of the modulated feature map.
        tabular_features: width ``F`` of the tabular vector.
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
        self, num_channels: int, tabular_features: int, *, bottleneck: int = 7, init_std: float = 1e-2
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


class ModulatedPreActResBlock3d(PreActResBlock3d):
    """Pre-activation residual block with a FiLM/DAFT modulation of its main-path input.

    ``y = F(m(x, t)) + S(x)``: the shortcut ``S`` sees the unmodulated input, the residual path ``F`` the modulated
    one (DAFT's location 2). With ``m`` at identity this is exactly :class:`PreActResBlock3d`.

    Args:
        in_channels, out_channels, stride, dropout, bn_momentum, shortcut_order: as :class:`PreActResBlock3d`.
        modulator: a :class:`FiLM` or :class:`DAFT` over ``in_channels`` channels.

    Raises:
        ValueError: when the modulator's channel count is not ``in_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        modulator: FiLM,
        stride: int = 1,
        dropout: float = 0.0,
        bn_momentum: float = 0.1,
        shortcut_order: ShortcutOrder = "norm-conv",
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            stride=stride,
            dropout=dropout,
            bn_momentum=bn_momentum,
            shortcut_order=shortcut_order,
        )
        if modulator.num_channels != in_channels:
            raise ValueError(
                f"modulator works on {modulator.num_channels} channels, the block's input has {in_channels}"
            )
        self.modulator = modulator

    def forward(self, x: Tensor, tabular: Tensor) -> Tensor:  # type: ignore[override]
        return self.residual(self.modulator(x, tabular)) + self.shortcut(x)
