"""A slow, obvious reference for any fused model: one sample at a time, the fusion written out by hand.

The reference runs an untouched copy of the original network with ``torch.func.functional_call``, feeding it the
fused model's own parameter tensors (so gradients can be compared parameter by parameter) and, per sample:

* hyper layer: ``W = c_W + Σ_j e_j·A_j`` and ``b = H_B·e + c_B`` built by an explicit loop over ``j``;
* FiLM / DAFT: a forward pre-hook replacing the input ``x`` by ``(1 + Δγ_c)·x_c + β_c`` channel by channel, with
  ``[Δγ; β] = W₂ relu(W₁ h)`` and ``h = e`` (FiLM) or ``[mean of each channel of x; e]`` (DAFT);
* concatenation: a forward hook replacing the layer's output by ``F.linear([x; e], [W, W_h], b)``, the widened layer.

Encoders run on the one sample in eval mode. None of it goes through the slots' hand-over.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from torch import Tensor, nn
from torch.func import functional_call

from hyperfusion.nn import ConcatInput, ConditionedLayer, ConditionedModel, ModulatedInput


def monai_resnet(spatial_dims: int) -> ResNet:
    """A tiny MONAI ResNet (one basic block per stage)."""
    return ResNet(
        block="basic",
        layers=[1, 1, 1, 1],
        block_inplanes=[4, 6, 8, 8],
        spatial_dims=spatial_dims,
        n_input_channels=1,
        num_classes=3,
        conv1_t_size=3,
        conv1_t_stride=1,
    )


def randomise_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters in every batch-norm."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                if m.affine:
                    m.weight.copy_(1 + 0.3 * torch.randn(m.num_features, generator=generator))
                    m.bias.copy_(0.3 * torch.randn(m.num_features, generator=generator))


def randomise_fusion(model: ConditionedModel, generator: torch.Generator, scale: float = 0.3) -> None:
    """Non-zero values in every fusion parameter (slot parameters outside the wrapped module, and encoders)."""
    with torch.no_grad():
        for slot in model.slots():
            for name, parameter in slot.named_parameters():
                if not name.startswith("module."):
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
        for parameter in model.encoders.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def plain_name(fused_name: str, wrapped: set[str]) -> str:
    """The name a parameter of the fused network has in the original network."""
    for prefix in sorted(wrapped, key=len, reverse=True):
        if fused_name.startswith(prefix + ".module."):
            return prefix + fused_name[len(prefix) + len(".module") :]
    return fused_name


def _condition(model: ConditionedModel, slot, tabular_b: Tensor) -> Tensor:
    return tabular_b if slot.source is None else model.encoders[slot.source](tabular_b)


def _film_hook(slot: ModulatedInput, h: Tensor) -> Callable:
    w1, w2 = slot.modulator.generator[0].weight, slot.modulator.generator[2].weight
    daft = slot.kind == "daft"

    def hook(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        channels = x.shape[1]
        vector = h[0]
        if daft:
            vector = torch.cat([torch.stack([x[0, c].mean() for c in range(channels)]), h[0]])
        params = w2 @ torch.relu(w1 @ vector)
        out = torch.stack([(1 + params[c]) * x[0, c] + params[channels + c] for c in range(channels)])
        return (out[None], *args[1:])

    return hook


def _concat_hook(slot: ConcatInput, h: Tensor) -> Callable:
    weight = torch.cat([slot.module.weight, slot.tabular.weight], dim=1)
    bias = slot.module.bias

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        return F.linear(torch.cat([args[0], h], dim=1), weight, bias)

    return hook


def per_sample_reference(model: ConditionedModel, plain: nn.Module, image: Tensor, tabular: Tensor) -> Tensor:
    """The fused model's output computed sample by sample from the formulas (see the module docstring)."""
    slots = list(model.slots())
    wrapped = {s.name for s in slots if isinstance(s, (ModulatedInput, ConcatInput))}
    hyper = {s.name for s in slots if isinstance(s, ConditionedLayer)}
    fused = dict(itertools.chain(model.network.named_parameters(), model.network.named_buffers()))
    shared = {}
    for name, tensor in fused.items():
        mapped = plain_name(name, wrapped)
        fusion_parts = [h + ".hyper." for h in hyper]
        fusion_parts += [w + part for w in wrapped for part in (".tabular.", ".modulator.")]
        if not mapped.startswith(tuple(fusion_parts)):
            shared[mapped] = tensor
    outputs = []
    for b in range(image.shape[0]):
        overrides = dict(shared)
        handles = []
        for slot in slots:
            h = _condition(model, slot, tabular[b : b + 1])
            target = plain.get_submodule(slot.name)
            if isinstance(slot, ConditionedLayer):
                layer = slot.hyper
                weight = layer.weight_head[0]
                for j in range(layer.embedding_dim):
                    weight = weight + h[0, j] * layer.weight_head[1 + j]
                overrides[f"{slot.name}.weight"] = weight
                if layer.bias_generator is not None:
                    generator = layer.bias_generator
                    overrides[f"{slot.name}.bias"] = generator.weight @ h[0] + generator.bias
            elif isinstance(slot, ModulatedInput):
                handles.append(target.register_forward_pre_hook(_film_hook(slot, h)))
            else:
                handles.append(target.register_forward_hook(_concat_hook(slot, h)))
        missing = set(plain.state_dict()) - set(overrides)
        assert not missing, f"the reference would use the plain copy's own {sorted(missing)}"
        try:
            outputs.append(functional_call(plain, overrides, (image[b : b + 1],)))
        finally:
            for handle in handles:
                handle.remove()
    return torch.cat(outputs)


def assert_model_matches_reference(model: ConditionedModel, plain: nn.Module, image: Tensor, tabular: Tensor):
    """Outputs and the gradients of image, tabular and every parameter equal the reference's (float64)."""
    model.eval()
    plain.eval()
    image = image.clone().requires_grad_(True)
    tabular = tabular.clone().requires_grad_(True)
    parameters = list(model.parameters())
    out = model(image, tabular)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), [image, tabular, *parameters])
    image_ref = image.detach().clone().requires_grad_(True)
    tabular_ref = tabular.detach().clone().requires_grad_(True)
    expected = per_sample_reference(model, plain, image_ref, tabular_ref)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [image_ref, tabular_ref, *parameters])
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-10)
    names = ["image", "tabular", *(name for name, _ in model.named_parameters())]
    for name, got, want in zip(names, grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")
