"""Hyper layers: ``nn.Linear`` (here) and ``nn.Conv1d/2d/3d`` (:mod:`~hyperfusion.nn.hyper_conv`) whose weights a
hypernetwork generates per sample.

HyperFusion (Duenias et al., §3.1.1) generates the parameters of an "external" layer of the primary network from an
embedding ``e = Emb(T)`` of the tabular record through two linear heads::

    W(e) = H_W · e + c_W      (reshaped to the plain layer's weight shape)
    b(e) = H_B · e + c_B

Because the heads are linear, ``W(e) = c_W + Σ_j e_j · A_j`` with ``A_j`` the j-th column of ``H_W`` reshaped. We
store exactly that: ``weight_head[0] = c_W`` and ``weight_head[1 + j] = A_j``, so the layer can be applied in
whichever exact batched form is cheapest, never with a Python loop over the batch:

* ``"factorized"``: ``layer(x_b, W(e_b)) = layer(x_b, c_W) + Σ_j e_bj · layer(x_b, A_j)`` — ONE ordinary
  linear/conv with ``(E + 1)·out`` outputs, then a per-sample weighted sum. No per-sample weight is ever formed.
* ``"grouped"``: per-sample weights are generated, the batch is folded into channels and one convolution with
  ``groups = B·groups`` applies each sample's kernel to that sample only (any kernel, stride, padding, dilation).
* ``"bmm"``: 1×…×1 convolutions with zero padding are a strided slice followed by one batched matrix product
  (and a linear layer is one batched matrix-vector product).

Which form ``method="auto"`` picks (measured in ``benchmarks/hyper_layers.py``):

* ``HyperLinear`` → ``factorized``. Its FLOPs equal those of the materialised weights for any ``E`` (one output
  position), it is one dense GEMM, and it needs no ``B × |W|`` weight tensor (16–30× less memory for the big layers).
* a hyper convolution with a 1×…×1 kernel and no padding → ``bmm`` (the paper's AD shortcut).
* any other hyper convolution → ``grouped``: general, exact and adds no memory beyond the generated weights; the
  factorized conv costs ``(E + 1)×`` the conv FLOPs, which only a GPU in bf16 absorbs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Method = Literal["auto", "factorized", "grouped", "bmm"]


def check_positive(**values: int) -> None:
    """Raise a ValueError naming the first argument that is not a positive int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


class HyperLayer(nn.Module):
    """Shared machinery of the hyper layers: the two linear generator heads and their application.

    Args:
        weight_shape: shape of the plain layer's weight (``[out, in]`` or ``[out, in / groups, *kernel]``).
        embedding_dim: ``E``, the size of the embedding the heads read.
        bias: whether a bias is generated (``b(e) = H_B·e + c_B``).

    Attributes:
        init_gain, init_bias_variance: the ``gain`` and ``bias_variance`` of the last
            :func:`principled_init_`; a later call without them (e.g. once ``E[e²]`` has been measured on the
            training data) keeps them.
        keeps_offset: :func:`principled_init_` leaves the constant terms ``c_W``, ``c_B`` as they are (they hold
            a plain layer's own weights: the residual initialisation of :func:`~hyperfusion.nn.hyperize`)
            instead of zeroing them.
    """

    weight_head: nn.Parameter

    def __init__(self, weight_shape: Sequence[int], embedding_dim: int, *, bias: bool) -> None:
        super().__init__()
        check_positive(embedding_dim=embedding_dim)
        self.embedding_dim = embedding_dim
        self.weight_shape = tuple(weight_shape)
        self.init_gain = 1.0
        self.init_bias_variance = 1.0
        self.keeps_offset = False
        # weight_head[0] = c_W, weight_head[1 + j] = column j of H_W, each reshaped to the plain weight's shape.
        self.weight_head = nn.Parameter(torch.empty(embedding_dim + 1, *self.weight_shape))
        self.bias_generator = nn.Linear(embedding_dim, self.weight_shape[0]) if bias else None
        self.reset_parameters()

    @property
    def out_features(self) -> int:
        return self.weight_shape[0]

    @property
    def fan_in(self) -> int:
        """``d_j`` of the paper: inputs feeding one output unit of the primary layer."""
        return math.prod(self.weight_shape[1:])

    def reset_parameters(self) -> None:
        """Principled initialisation for a unit-second-moment embedding (see :func:`principled_init_`)."""
        principled_init_(self, embedding_variance=1.0)

    def _coefficients(self, embedding: Tensor) -> Tensor:
        """``[1, e]`` per sample: the weights of ``c_W`` and of each ``A_j`` in ``W(e)``."""
        ones = embedding.new_ones(embedding.shape[0], 1)
        return torch.cat([ones, embedding], dim=1)

    def _check_embedding(self, embedding: Tensor, batch: int | None = None) -> None:
        if embedding.dim() != 2 or embedding.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embedding must have shape [B, {self.embedding_dim}], got {list(embedding.shape)}"
            )
        if batch is not None and embedding.shape[0] != batch:
            raise ValueError(f"embedding batch {embedding.shape[0]} does not match input batch {batch}")

    def generate(self, embedding: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per-sample parameters: weight ``[B, *weight_shape]`` and bias ``[B, out]`` (or ``None``)."""
        self._check_embedding(embedding)
        return self.generate_weight(embedding), self.generate_bias(embedding)

    def generate_weight(self, embedding: Tensor) -> Tensor:
        """``W(e) = c_W + Σ_j e_j·A_j`` per sample, ``[B, *weight_shape]``, in one kernel."""
        basis = self.weight_head[1:].flatten(1)  # [E, |W|]
        offset = self.weight_head[0].flatten()  # c_W
        return torch.addmm(offset, embedding.to(basis.dtype), basis).view(-1, *self.weight_shape)

    def generate_bias(self, embedding: Tensor) -> Tensor | None:
        """``b(e) = H_B·e + c_B`` per sample, ``[B, out]``, or ``None`` for a layer without bias."""
        return None if self.bias_generator is None else self.bias_generator(embedding)

    def _mix(self, stacked: Tensor, embedding: Tensor, bias: Tensor | None = None) -> Tensor:
        """Factorized combination ``Σ_k coef_bk · stacked[b, k]`` for stacked ``[B, E+1, out, *rest]``.

        A bias ``[B, out]`` is added in the same kernel when there is no ``rest`` (linear layers).
        """
        coefficients = self._coefficients(embedding).to(stacked.dtype).unsqueeze(1)
        flat = stacked.flatten(2)  # [B, E+1, out * rest]
        if bias is not None and stacked.dim() == 3:
            mixed = torch.baddbmm(bias.to(stacked.dtype).unsqueeze(1), coefficients, flat)
        else:
            mixed = torch.bmm(coefficients, flat)
        return mixed.view(stacked.shape[0], *stacked.shape[2:])


class HyperLinear(HyperLayer):
    """``F.linear(x_b, W(e_b), b(e_b))`` for every sample b, with W, b generated from the embedding e_b.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        embedding_dim: size of the embedding ``e`` that generates the weights.
        bias: generate a bias too.
        method: ``"auto"`` (= ``"factorized"``), ``"factorized"`` or ``"bmm"`` (materialised per-sample weights).

    Example:
        >>> layer = HyperLinear(32, 4, embedding_dim=8)
        >>> layer(torch.randn(5, 32), torch.randn(5, 8)).shape
        torch.Size([5, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        embedding_dim: int,
        *,
        bias: bool = True,
        method: Method = "auto",
    ) -> None:
        check_positive(in_features=in_features, out_features=out_features)
        if method not in ("auto", "factorized", "bmm"):
            raise ValueError(f"HyperLinear method must be 'auto', 'factorized' or 'bmm', got {method!r}")
        self.in_features = in_features
        self.method = "factorized" if method == "auto" else method
        super().__init__((out_features, in_features), embedding_dim, bias=bias)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"input must have shape [B, {self.in_features}], got {list(x.shape)}")
        self._check_embedding(embedding, x.shape[0])
        bias = self.generate_bias(embedding)
        if self.method == "factorized":
            stacked = F.linear(x, self.weight_head.flatten(0, 1))  # [B, (E+1)·out]
            stacked = stacked.view(x.shape[0], self.embedding_dim + 1, self.out_features)
            return self._mix(stacked, embedding, bias)
        weight = self.generate_weight(embedding)
        if bias is None:
            return torch.bmm(weight, x.unsqueeze(2)).squeeze(2)
        return torch.baddbmm(bias.to(weight.dtype).unsqueeze(2), weight, x.unsqueeze(2)).squeeze(2)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"embedding_dim={self.embedding_dim}, bias={self.bias_generator is not None}, method={self.method}"
        )


@torch.no_grad()
def principled_init_(
    layer: HyperLayer,
    embedding_variance: float,
    *,
    gain: float | None = None,
    bias_variance: float | None = None,
) -> HyperLayer:
    """Initialise the generator heads so generated parameters have a chosen variance (paper eqs. 1–2).

    Following Chang et al. (2019), with ``d_k`` the embedding size, ``d_j`` the primary layer's fan-in and
    ``V = E[e_k²]`` the embedding's second moment over the training data::

        H_W ~ U(±√(3·𝒱_W)),  𝒱_W = gain / (d_j · d_k · V)          (eq. 1 with gain = 1)
        H_B ~ U(±√(3·𝒱_B)),  𝒱_B = bias_variance / (d_k · V)        (eq. 2 with bias_variance = 1)
        c_W = c_B = 0          (left as they are when ``layer.keeps_offset``)

    so that ``Var(W(e)) = Σ_k 𝒱_W · e_k² ≈ gain / d_j`` and ``Var(b(e)) ≈ bias_variance`` (the generated bias
    starts with standard deviation ``√bias_variance``). Use ``gain = 2`` for He scaling before a ReLU. The paper
    writes ``Var(e(T))``; the derivation needs ``E[e²]``, which equals it for a centred embedding and stays correct
    for a non-centred one (a PReLU output, or the brain-age embedding that is constant at initialisation).
    :func:`~hyperfusion.nn.estimate_embedding_variance` measures it.

    ``gain`` / ``bias_variance`` left at ``None`` keep the layer's current values (``init_gain``,
    ``init_bias_variance``; 1 for a new layer), so re-initialising with a measured ``V`` keeps a chosen scale.

    Raises:
        ValueError: for a layer that is not a hyper layer, a non-positive or non-finite ``embedding_variance`` or
            ``gain``, or a negative ``bias_variance``.
    """
    if not isinstance(layer, HyperLayer):
        raise ValueError(
            f"principled_init_ expects a hyper layer (HyperLinear, HyperConv1d/2d/3d), got {type(layer).__name__}"
        )
    gain = layer.init_gain if gain is None else gain
    bias_variance = layer.init_bias_variance if bias_variance is None else bias_variance
    if not (math.isfinite(embedding_variance) and embedding_variance > 0):
        raise ValueError(f"embedding_variance must be positive and finite, got {embedding_variance!r}")
    if not (math.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be positive and finite, got {gain!r}")
    if not (math.isfinite(bias_variance) and bias_variance >= 0):
        raise ValueError(f"bias_variance must be >= 0 and finite, got {bias_variance!r}")
    layer.init_gain, layer.init_bias_variance = float(gain), float(bias_variance)
    d_k, d_j = layer.embedding_dim, layer.fan_in
    weight_bound = math.sqrt(3.0 * gain / (d_j * d_k * embedding_variance))
    if not layer.keeps_offset:
        layer.weight_head[0].zero_()
    layer.weight_head[1:].uniform_(-weight_bound, weight_bound)
    if layer.bias_generator is not None:
        bias_bound = math.sqrt(3.0 * bias_variance / (d_k * embedding_variance))
        layer.bias_generator.weight.uniform_(-bias_bound, bias_bound)
        if not layer.keeps_offset:
            layer.bias_generator.bias.zero_()
    return layer
