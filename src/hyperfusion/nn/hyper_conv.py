"""Hyper convolutions in 1, 2 and 3 spatial dimensions, grouped or not, applied to the whole batch at once.

``HyperConv{1,2,3}d(x, e)[b]`` is exactly ``F.conv{1,2,3}d(x[b], W(e_b), b(e_b), stride, padding, dilation,
groups)`` with ``W``, ``b`` generated as described in :mod:`hyperfusion.nn.hyper`. 3D is the paper's MRI case; 2D
covers histopathology tiles, X-rays or slices, 1D signals such as ECGs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from hyperfusion.nn.hyper import HyperLayer, Method, check_positive

_METHODS = ("auto", "factorized", "grouped", "bmm")
_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_AXES = {1: "L", 2: "H, W", 3: "D, H, W"}


def _ntuple(value: int | Sequence[int], n: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """A convolution argument as an n-tuple of ints, checked against a lower bound."""
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) for v in values):
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return values


class HyperConv(HyperLayer):
    """A hyper convolution over ``spatial_dims`` axes; use :class:`HyperConv1d`, :class:`HyperConv2d` or
    :class:`HyperConv3d`.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: int or one int per axis.
        embedding_dim: size of the embedding ``e`` that generates the kernels.
        stride, padding, dilation, groups: as the plain ``nn.ConvNd`` (``padding`` may also be ``"valid"`` or
            ``"same"``; zero padding only).
        bias: generate a bias too.
        method: ``"auto"``, ``"factorized"``, ``"grouped"`` or ``"bmm"`` (1×…×1 kernels without padding only);
            see :mod:`hyperfusion.nn.hyper` for the rule ``"auto"`` follows.
        spatial_dims: 1, 2 or 3.

    Raises:
        ValueError: for non-positive sizes, channels not divisible by ``groups``, an unknown padding string,
            ``padding="same"`` with a stride, or ``method="bmm"`` for a kernel that is not pointwise.
    """

    default_spatial_dims = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        embedding_dim: int,
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        method: Method = "auto",
        spatial_dims: int | None = None,
    ) -> None:
        spatial_dims = self.default_spatial_dims if spatial_dims is None else spatial_dims
        if spatial_dims not in _CONVS:
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        check_positive(in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by "
                f"groups={groups}"
            )
        n = spatial_dims
        self.spatial_dims = n
        self.in_channels = in_channels
        self.groups = groups
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size", minimum=1)
        self.stride = _ntuple(stride, n, "stride", minimum=1)
        self.dilation = _ntuple(dilation, n, "dilation", minimum=1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid', 'same', an int or {n} ints, got {padding!r}")
            if padding == "same" and self.stride != (1,) * n:
                raise ValueError(f"padding='same' needs stride 1, got stride={stride!r}")
            self.padding: tuple[int, ...] | str = padding
        else:
            self.padding = _ntuple(padding, n, "padding", minimum=0)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        pointwise = self.kernel_size == (1,) * n and self.padding in ((0,) * n, "valid", "same")
        if method == "bmm" and not pointwise:
            raise ValueError(
                f"method='bmm' needs a {'x'.join('1' * n)} kernel without padding, got "
                f"kernel_size={kernel_size!r}, padding={padding!r}"
            )
        self.method = ("bmm" if pointwise else "grouped") if method == "auto" else method
        weight_shape = (out_channels, in_channels // groups, *self.kernel_size)
        super().__init__(weight_shape, embedding_dim, bias=bias)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must have shape [B, {self.in_channels}, {_AXES[self.spatial_dims]}], got {list(x.shape)}"
            )
        self._check_embedding(embedding, x.shape[0])
        bias = self.generate_bias(embedding)
        if self.method == "factorized":
            return self._forward_factorized(x, embedding, bias)
        if self.method == "bmm":
            return self._forward_pointwise(x, embedding, bias)
        return self._forward_grouped(x, embedding, bias)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
        conv = _CONVS[self.spatial_dims]
        return conv(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def _forward_factorized(self, x: Tensor, embedding: Tensor, bias: Tensor | None) -> Tensor:
        """One grouped conv with the ``E + 1`` kernels ``c_W, A_1, …`` of every output channel, then a mix."""
        g, k = self.groups, self.embedding_dim + 1
        head = self.weight_head
        if g > 1:  # outputs of one channel group must stay together: order [group, E+1, out/g]
            head = head.view(k, g, self.out_features // g, *self.weight_shape[1:]).transpose(0, 1)
        stacked = self._conv(x, head.reshape(-1, *self.weight_shape[1:]), None, g)
        spatial = stacked.shape[2:]
        if g > 1:
            stacked = stacked.view(x.shape[0], g, k, self.out_features // g, *spatial).transpose(1, 2)
        stacked = stacked.reshape(x.shape[0], k, self.out_features, *spatial)
        out = self._mix(stacked, embedding)
        if bias is None:
            return out
        return out + bias.to(out.dtype).view(*bias.shape, *([1] * self.spatial_dims))

    def _forward_grouped(self, x: Tensor, embedding: Tensor, bias: Tensor | None) -> Tensor:
        """The batch folded into channels: one conv with ``B·groups`` groups, sample b's kernel on sample b."""
        batch = x.shape[0]
        weight = self.generate_weight(embedding)
        folded = x.reshape(1, batch * self.in_channels, *x.shape[2:])
        flat_bias = None if bias is None else bias.to(weight.dtype).flatten()  # added inside the conv
        out = self._conv(folded, weight.flatten(0, 1), flat_bias, batch * self.groups)
        return out.view(batch, self.out_features, *out.shape[2:])

    def _forward_pointwise(self, x: Tensor, embedding: Tensor, bias: Tensor | None) -> Tensor:
        """A 1×…×1 kernel: a strided slice, then one batched matrix product per channel group."""
        batch, g = x.shape[0], self.groups
        sampled = x[(slice(None), slice(None), *(slice(None, None, s) for s in self.stride))]
        spatial = sampled.shape[2:]
        weight = self.generate_weight(embedding).flatten(2)  # [B, out, in / g]
        weight = weight.reshape(batch * g, self.out_features // g, self.in_channels // g)
        inputs = sampled.reshape(batch * g, self.in_channels // g, -1)  # [B·g, in / g, N]
        if bias is None:
            out = torch.bmm(weight, inputs)
        else:
            flat_bias = bias.to(weight.dtype).reshape(batch * g, self.out_features // g, 1)
            out = torch.baddbmm(flat_bias, weight, inputs)
        return out.view(batch, self.out_features, *spatial)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_features}, kernel_size={self.kernel_size}, "
            f"embedding_dim={self.embedding_dim}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, groups={self.groups}, bias={self.bias_generator is not None}, "
            f"method={self.method}"
        )


class HyperConv1d(HyperConv):
    """Hyper ``nn.Conv1d``: input ``[B, C, L]``; arguments as :class:`HyperConv`.

    Example:
        >>> HyperConv1d(4, 6, 3, embedding_dim=2, padding=1)(torch.randn(2, 4, 9), torch.randn(2, 2)).shape
        torch.Size([2, 6, 9])
    """

    default_spatial_dims = 1


class HyperConv2d(HyperConv):
    """Hyper ``nn.Conv2d``: input ``[B, C, H, W]``; arguments as :class:`HyperConv`.

    Example:
        >>> HyperConv2d(4, 6, 3, embedding_dim=2, groups=2)(torch.randn(2, 4, 9, 8), torch.randn(2, 2)).shape
        torch.Size([2, 6, 7, 6])
    """

    default_spatial_dims = 2


class HyperConv3d(HyperConv):
    """Hyper ``nn.Conv3d``: input ``[B, C, D, H, W]``; arguments as :class:`HyperConv`.

    Example:
        >>> layer = HyperConv3d(4, 6, 3, embedding_dim=8, padding=1)
        >>> layer(torch.randn(2, 4, 5, 6, 7), torch.randn(2, 8)).shape
        torch.Size([2, 6, 5, 6, 7])
    """

    default_spatial_dims = 3
