"""HyperLinear against a slow, obvious per-sample loop (float64), including every gradient; the initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hyperfusion.nn import HyperConv2d, HyperConv3d, HyperLinear, principled_init_
from tests.faults import fault


@pytest.fixture(autouse=True)
def float64_by_default():
    """Exactness checks in float64, restored afterwards so other test modules are unaffected."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def loop_linear(layer: HyperLinear, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """Reference: generate each sample's weights from its own embedding, apply F.linear sample by sample."""
    outputs = []
    for x_b, e_b in zip(x.unbind(0), embedding.unbind(0)):
        weight, bias = layer.generate(e_b[None])
        outputs.append(F.linear(x_b[None], weight[0], None if bias is None else bias[0]))
    return torch.cat(outputs)


def randomise_heads(layer: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-zero constants c_W, c_B too, so every generator parameter matters."""
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def assert_matches_reference(layer, reference, x, embedding) -> None:
    """Outputs and the gradients of input, embedding and every parameter equal the reference's (float64)."""
    x = x.clone().requires_grad_(True)
    embedding = embedding.clone().requires_grad_(True)
    out = layer(x, embedding)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), [x, embedding, *layer.parameters()])

    x_ref = x.detach().clone().requires_grad_(True)
    e_ref = embedding.detach().clone().requires_grad_(True)
    expected = reference(layer, x_ref, e_ref)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [x_ref, e_ref, *layer.parameters()])

    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


LINEAR_CASES = [
    # (batch, in, out, embedding_dim, bias)
    (1, 5, 3, 1, True),
    (4, 7, 2, 8, True),
    (3, 1, 9, 2, False),
    (6, 33, 17, 5, True),
]


@pytest.mark.parametrize("method", ["factorized", "bmm"])
@pytest.mark.parametrize(("batch", "n_in", "n_out", "dim", "bias"), LINEAR_CASES)
def test_hyper_linear_matches_per_sample_loop(method, batch, n_in, n_out, dim, bias):
    generator = torch.Generator().manual_seed(batch * 100 + n_in)
    layer = HyperLinear(n_in, n_out, dim, bias=bias, method=method)
    randomise_heads(layer, generator)
    x = torch.randn(batch, n_in, generator=generator)
    embedding = torch.randn(batch, dim, generator=generator)
    assert_matches_reference(layer, loop_linear, x, embedding)


def test_permuting_the_batch_permutes_the_output():
    layer = HyperLinear(6, 4, 3)
    generator = torch.Generator().manual_seed(0)
    randomise_heads(layer, generator)
    x, embedding = torch.randn(5, 6, generator=generator), torch.randn(5, 3, generator=generator)
    permutation = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(
        layer(x, embedding)[permutation], layer(x[permutation], embedding[permutation])
    )


@pytest.mark.parametrize("gain", [1.0, 2.0])
@pytest.mark.parametrize(
    ("make_layer", "mean"),
    [
        (lambda: HyperLinear(64, 32, 8), 0.0),
        (lambda: HyperLinear(40, 16, 1), 1.0),  # brain-age style: a constant, non-centred embedding
        (lambda: HyperConv3d(16, 24, 3, 8), 0.5),
        (lambda: HyperConv3d(128, 64, 1, 8, stride=2), 0.3),
        (lambda: HyperConv2d(32, 48, 3, 4, groups=4), 0.2),
    ],
    ids=["linear-centred", "linear-constant-embedding", "conv3", "conv1-shortcut", "conv2d-grouped"],
)
def test_principled_init_gives_target_variance(gain, make_layer, mean):
    layer = make_layer()
    generator = torch.Generator().manual_seed(7)
    embedding = mean + 0.7 * torch.randn(512, layer.embedding_dim, generator=generator)
    if mean == 1.0:
        embedding = torch.ones(512, layer.embedding_dim)
    second_moment = float((embedding**2).mean())
    torch.manual_seed(11)
    principled_init_(layer, second_moment, gain=gain, bias_variance=0.5)
    with torch.no_grad():
        weight, bias = layer.generate(embedding)
    weight_variance = float(weight.pow(2).mean())  # the generated weights have mean zero (c_W = 0)
    target = gain / layer.fan_in
    assert abs(weight_variance / target - 1) < 0.15
    assert abs(float(bias.pow(2).mean()) / 0.5 - 1) < 0.15
    assert torch.all(layer.weight_head[0] == 0)
    assert torch.all(layer.bias_generator.bias == 0)


def test_principled_init_bounds_follow_equations_one_and_two():
    layer = HyperConv3d(128, 256, 1, 8, stride=2)
    principled_init_(layer, 0.63)
    weight_bound = (3 / (128 * 8 * 0.63)) ** 0.5
    bias_bound = (3 / (8 * 0.63)) ** 0.5
    assert float(layer.weight_head[1:].detach().abs().max()) <= weight_bound
    assert float(layer.weight_head[1:].detach().abs().max()) > 0.95 * weight_bound
    assert float(layer.bias_generator.weight.detach().abs().max()) <= bias_bound


def test_a_later_init_without_scales_keeps_the_chosen_ones():
    """Re-initialising with a measured E[e²] keeps the gain and bias variance chosen before."""
    layer = HyperLinear(50, 40, 4)
    principled_init_(layer, 1.0, gain=2.0, bias_variance=0.04)
    principled_init_(layer, 0.25)
    assert (layer.init_gain, layer.init_bias_variance) == (2.0, 0.04)
    assert float(layer.weight_head[1:].detach().abs().max()) == pytest.approx(
        (3 * 2.0 / (50 * 4 * 0.25)) ** 0.5, rel=0.05
    )
    assert float(layer.bias_generator.weight.detach().abs().max()) == pytest.approx(
        (3 * 0.04 / (4 * 0.25)) ** 0.5, rel=0.1
    )


@fault(
    "hyper layers", "impossible HyperLinear or principled_init_ argument", "ValueError naming the argument"
)
@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: HyperLinear(0, 3, 2), "in_features"),
        (lambda: HyperLinear(3, -1, 2), "out_features"),
        (lambda: HyperLinear(3, 3, 0), "embedding_dim"),
        (lambda: HyperLinear(3, 3, 2.5), "embedding_dim"),
        (lambda: HyperLinear(3, 3, 2, method="grouped"), "method"),
        (lambda: principled_init_(HyperLinear(3, 3, 2), 0.0), "embedding_variance"),
        (lambda: principled_init_(HyperLinear(3, 3, 2), 1.0, gain=-1.0), "gain"),
        (lambda: principled_init_(HyperLinear(3, 3, 2), 1.0, bias_variance=float("nan")), "bias_variance"),
        (lambda: principled_init_(torch.nn.Linear(3, 3), 1.0), "expects a hyper layer"),
    ],
)
def test_impossible_arguments_raise_value_error(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


@fault(
    "hyper layers", "input or embedding of the wrong shape for a hyper layer", "ValueError with both shapes"
)
def test_wrong_input_shapes_raise_value_error():
    linear = HyperLinear(4, 2, 3)
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        linear(torch.randn(2, 5), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        linear(torch.randn(2, 4), torch.randn(2, 2))
    with pytest.raises(ValueError, match="batch"):
        linear(torch.randn(2, 4), torch.randn(3, 3))
