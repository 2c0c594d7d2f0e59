"""3D convolutional building blocks shared by the paper's networks and every baseline.

- :class:`PreActResBlock3d` (main path :class:`PreActResidual3d`): the pre-activation residual block (He et al.
  2016, "Identity mappings in deep residual networks") used by the AD classifier (paper §3.5.2, Fig. 3D, Table C.6).
- :class:`Shortcut3d`: its projection shortcut, a 1×1×1 (strided) convolution with a batch-norm.
- :class:`ConvNormAct3d`: convolution → batch-norm → ReLU, the AD network's stem.
- :class:`VGGBlock3d`: two valid 3×3×3 convolutions with ReLU, max-pool, batch-norm — the brain-age network's stage
  (paper §3.5.1, Fig. 2C, Table A.5).

All blocks are image-only ``forward(x)``; fusion is added to them from outside (``film``, ``daft``, ``concat`` or
``hyperize`` in :mod:`hyperfusion.nn`), so a fused network differs from its baseline only by the fusion.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

ShortcutOrder = Literal["norm-conv", "conv-norm"]


def _check_channels(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


class Shortcut3d(nn.Module):
    """Projection shortcut of a residual block: a 1×1×1 convolution with stride plus a batch-norm.

    ``order="norm-conv"`` (default) computes ``conv(BN_in(x))``, the pre-activation ordering every block of our
    networks uses. ``order="conv-norm"`` computes ``BN_out(conv(x))``; it exists only to reproduce the authors'
    hyper block, whose shortcut alone uses that order (reference bug B7), so that parameter counts and behaviour
    can be compared. The convolution is the attribute ``conv`` so it can be named as a hyper layer
    (``"block4.shortcut.conv"``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: spatial stride of the convolution.
        bn_momentum: BatchNorm momentum (PyTorch convention).
        order: ``"norm-conv"`` or ``"conv-norm"``.

    Raises:
        ValueError: for non-positive sizes or an unknown order.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        bn_momentum: float = 0.1,
        order: ShortcutOrder = "norm-conv",
    ) -> None:
        super().__init__()
        _check_channels(in_channels=in_channels, out_channels=out_channels, stride=stride)
        if order not in ("norm-conv", "conv-norm"):
            raise ValueError(f"order must be 'norm-conv' or 'conv-norm', got {order!r}")
        self.order = order
        self.norm = nn.BatchNorm3d(
            in_channels if order == "norm-conv" else out_channels, momentum=bn_momentum
        )
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        if self.order == "norm-conv":
            return self.conv(self.norm(x))
        return self.norm(self.conv(x))


class PreActResidual3d(nn.Module):
    """Main path of a pre-activation residual block, a module of its own so that it can be named as a fusion site.

    ``F(x) = conv2(drop(relu(norm2(conv1(drop(relu(norm1(x))))))))`` with 3×3×3 convolutions (``conv1`` strided)
    and channel dropout (``nn.Dropout3d``, the same module before each convolution).
    Naming ``"blockN.residual"`` in :func:`~hyperfusion.nn.film` or :func:`~hyperfusion.nn.daft` modulates the
    main path's input while the shortcut keeps the raw input (DAFT's "location 2").

    Args:
        in_channels, out_channels, stride, dropout, bn_momentum: as :class:`PreActResBlock3d`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int, dropout: float, bn_momentum: float
    ) -> None:
        super().__init__()
        _check_channels(in_channels=in_channels, out_channels=out_channels, stride=stride)
        _check_probability("dropout", dropout)
        self.in_channels = in_channels
        self.norm1 = nn.BatchNorm3d(in_channels, momentum=bn_momentum)
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.norm2 = nn.BatchNorm3d(out_channels, momentum=bn_momentum)
        self.conv2 = nn.Conv3d(out_channels, out_channels, kernel_size=3, padding=1)
        self.dropout = nn.Dropout3d(dropout)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.dropout(self.relu(self.norm1(x))))
        return self.conv2(self.dropout(self.relu(self.norm2(h))))


class PreActResBlock3d(nn.Module):
    """Pre-activation residual block: ``y = residual(x) + shortcut(x)``.

    ``residual`` is :class:`PreActResidual3d`; ``shortcut`` is :class:`Shortcut3d` when the stride or the width
    changes, the identity otherwise. There is no activation after the sum (pre-activation design).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the main path's first convolution and of the shortcut.
        dropout: channel-dropout probability, applied before each convolution of the main path.
        bn_momentum: BatchNorm momentum.
        shortcut_order: see :class:`Shortcut3d`.

    Raises:
        ValueError: for non-positive sizes or a dropout outside [0, 1).

    Example:
        >>> block = PreActResBlock3d(16, 32, stride=2)
        >>> block(torch.zeros(2, 16, 8, 8, 8)).shape
        torch.Size([2, 32, 4, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        dropout: float = 0.0,
        bn_momentum: float = 0.1,
        shortcut_order: ShortcutOrder = "norm-conv",
    ) -> None:
        super().__init__()
        self.residual = PreActResidual3d(
            in_channels, out_channels, stride=stride, dropout=dropout, bn_momentum=bn_momentum
        )
        self.shortcut: nn.Module = (
            Shortcut3d(
                in_channels, out_channels, stride=stride, bn_momentum=bn_momentum, order=shortcut_order
            )
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class ConvNormAct3d(nn.Sequential):
    """Convolution → BatchNorm3d → ReLU (the AD network's stem).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: cubic kernel size; padding keeps the size for odd kernels at stride 1.
        stride: convolution stride.
        bn_momentum: BatchNorm momentum.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        bn_momentum: float = 0.1,
    ) -> None:
        _check_channels(
            in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, stride=stride
        )
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
            nn.BatchNorm3d(out_channels, momentum=bn_momentum),
            nn.ReLU(),
        )


class VGGBlock3d(nn.Module):
    """Brain-age stage: ``BN(maxpool2(relu(conv_b(relu(conv_a(x))))))`` with valid (unpadded) 3×3×3 convolutions.

    Each side ``n`` becomes ``⌊(n − 4) / 2⌋`` (:meth:`output_size`). The batch-norm follows the pooling, as in the
    paper's network (Table A.5).

    Args:
        in_channels: input channels.
        out_channels: output channels of both convolutions.
        bn_momentum: BatchNorm momentum.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bn_momentum: float = 0.1) -> None:
        super().__init__()
        _check_channels(in_channels=in_channels, out_channels=out_channels)
        self.conv_a = nn.Conv3d(in_channels, out_channels, kernel_size=3)
        self.conv_b = nn.Conv3d(out_channels, out_channels, kernel_size=3)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.norm = nn.BatchNorm3d(out_channels, momentum=bn_momentum)

    @staticmethod
    def output_size(size: int) -> int:
        """Spatial side after the block: two valid 3-convs (−4) then a 2-pool (floor halving)."""
        return (size - 4) // 2

    def forward(self, x: Tensor) -> Tensor:
        h = self.relu(self.conv_b(self.relu(self.conv_a(x))))
        return self.norm(self.pool(h))
