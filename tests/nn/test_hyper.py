"""Hyper layers against a slow, obvious per-sample loop (float64), including every gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hyperfusion.nn import HyperConv3d, HyperLinear, principled_init_


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


def loop_conv(layer: HyperConv3d, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    outputs = []
    for x_b, e_b in zip(x.unbind(0), embedding.unbind(0)):
        weight, bias = layer.generate(e_b[None])
        outputs.append(
            F.conv3d(
                x_b[None],
                weight[0],
                None if bias is None else bias[0],
                layer.stride,
                layer.padding,
                layer.dilation,
            )
        )
    return torch.cat(outputs)


def randomise_heads(layer: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-zero constants c_W, c_B too, so every generator parameter matters."""
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def assert_matches_reference(layer, reference, x, embedding) -> None:
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


CONV_CASES = [
    # (batch, in, out, kernel, stride, padding, dilation, spatial, embedding_dim, bias)
    (1, 2, 3, 1, 1, 0, 1, (5, 4, 3), 3, True),
    (3, 4, 5, 1, 2, 0, 1, (7, 6, 5), 8, True),
    (2, 3, 2, 3, 1, 1, 1, (5, 6, 7), 2, True),
    (3, 2, 4, 3, 2, 1, 1, (9, 7, 5), 4, False),
    (2, 1, 3, 2, 1, 0, 1, (4, 5, 3), 1, True),
    (2, 3, 2, (3, 1, 2), (1, 2, 1), (1, 0, 2), (2, 1, 1), (7, 5, 6), 3, True),
    (1, 2, 2, 5, 1, 2, 1, (6, 5, 7), 2, True),
    (4, 2, 3, 3, 1, 2, 2, (5, 5, 5), 3, True),
    (2, 2, 3, 1, (1, 3, 2), 1, 1, (5, 7, 4), 2, True),
]


def _conv_layer(method, n_in, n_out, kernel, stride, padding, dilation, dim, bias) -> HyperConv3d:
    return HyperConv3d(
        n_in, n_out, kernel, dim, stride=stride, padding=padding, dilation=dilation, bias=bias, method=method
    )


@pytest.mark.parametrize("method", ["auto", "factorized", "grouped", "bmm"])
@pytest.mark.parametrize(
    ("batch", "n_in", "n_out", "kernel", "stride", "padding", "dilation", "spatial", "dim", "bias"),
    CONV_CASES,
)
def test_hyper_conv3d_matches_per_sample_loop(
    method, batch, n_in, n_out, kernel, stride, padding, dilation, spatial, dim, bias
):
    pointwise = kernel == 1 and padding == 0
    if method == "bmm" and not pointwise:
        with pytest.raises(ValueError, match="1x1x1"):
            _conv_layer(method, n_in, n_out, kernel, stride, padding, dilation, dim, bias)
        return
    generator = torch.Generator().manual_seed(batch * 1000 + n_in * 10 + n_out)
    layer = _conv_layer(method, n_in, n_out, kernel, stride, padding, dilation, dim, bias)
    randomise_heads(layer, generator)
    x = torch.randn(batch, n_in, *spatial, generator=generator)
    embedding = torch.randn(batch, dim, generator=generator)
    assert_matches_reference(layer, loop_conv, x, embedding)


def test_auto_method_rule():
    assert HyperLinear(4, 2, 3).method == "factorized"
    assert HyperConv3d(4, 2, 1, 3, stride=2).method == "bmm"
    assert HyperConv3d(4, 2, 1, 3, padding=1).method == "grouped"
    assert HyperConv3d(4, 2, 3, 3, padding=1).method == "grouped"


def test_same_and_valid_padding_strings_match_reference():
    generator = torch.Generator().manual_seed(3)
    for padding in ("same", "valid"):
        layer = HyperConv3d(2, 3, 3, 2, padding=padding)
        randomise_heads(layer, generator)
        x = torch.randn(2, 2, 5, 6, 4, generator=generator)
        assert_matches_reference(layer, loop_conv, x, torch.randn(2, 2, generator=generator))


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: HyperLinear(6, 4, 3),
        lambda: HyperConv3d(3, 4, 1, 3, stride=2),
        lambda: HyperConv3d(3, 4, 3, 3, padding=1, method="grouped"),
        lambda: HyperConv3d(3, 4, 3, 3, padding=1, method="factorized"),
    ],
    ids=["linear", "conv-bmm", "conv-grouped", "conv-factorized"],
)
def test_permuting_the_batch_permutes_the_output(make_layer):
    """The reference's conv layer applied sample i's kernel to sample i-1's input; this catches that."""
    layer = make_layer()
    generator = torch.Generator().manual_seed(0)
    randomise_heads(layer, generator)
    shape = (5, 6) if isinstance(layer, HyperLinear) else (5, 3, 4, 5, 6)
    x = torch.randn(*shape, generator=generator)
    embedding = torch.randn(5, 3, generator=generator)
    permutation = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(
        layer(x, embedding)[permutation], layer(x[permutation], embedding[permutation])
    )
    # and changing one sample's input changes that sample's output only
    changed = x.clone()
    changed[2] += 1.0
    delta = (layer(changed, embedding) - layer(x, embedding)).flatten(1).abs().amax(1)
    assert delta[2] > 0
    assert torch.all(delta[[0, 1, 3, 4]] == 0)


@pytest.mark.parametrize("gain", [1.0, 2.0])
@pytest.mark.parametrize(
    ("make_layer", "mean"),
    [
        (lambda: HyperLinear(64, 32, 8), 0.0),
        (lambda: HyperLinear(40, 16, 1), 1.0),  # brain-age style: a constant, non-centred embedding
        (lambda: HyperConv3d(16, 24, 3, 8), 0.5),
        (lambda: HyperConv3d(128, 64, 1, 8, stride=2), 0.3),
    ],
    ids=["linear-centred", "linear-constant-embedding", "conv3", "conv1-shortcut"],
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


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: HyperLinear(0, 3, 2), "in_features"),
        (lambda: HyperLinear(3, -1, 2), "out_features"),
        (lambda: HyperLinear(3, 3, 0), "embedding_dim"),
        (lambda: HyperLinear(3, 3, 2, method="grouped"), "method"),
        (lambda: HyperConv3d(2, 3, 0, 2), "kernel_size"),
        (lambda: HyperConv3d(2, 3, (3, 3), 2), "kernel_size"),
        (lambda: HyperConv3d(2, 3, 3, 2, stride=0), "stride"),
        (lambda: HyperConv3d(2, 3, 3, 2, padding=-1), "padding"),
        (lambda: HyperConv3d(2, 3, 3, 2, padding="full"), "padding"),
        (lambda: HyperConv3d(2, 3, 3, 2, padding="same", stride=2), "stride 1"),
        (lambda: HyperConv3d(2, 3, 3, 2, dilation=0), "dilation"),
        (lambda: HyperConv3d(2, 3, 3, 2, method="loop"), "method"),
        (lambda: principled_init_(HyperLinear(3, 3, 2), 0.0), "embedding_variance"),
        (lambda: principled_init_(HyperLinear(3, 3, 2), 1.0, gain=-1.0), "gain"),
        (lambda: principled_init_(HyperLinear(3, 3, 2), 1.0, bias_variance=float("nan")), "bias_variance"),
        (lambda: principled_init_(torch.nn.Linear(3, 3), 1.0), "HyperLinear or HyperConv3d"),
    ],
)
def test_impossible_arguments_raise_value_error(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_wrong_input_shapes_raise_value_error():
    linear = HyperLinear(4, 2, 3)
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        linear(torch.randn(2, 5), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        linear(torch.randn(2, 4), torch.randn(2, 2))
    with pytest.raises(ValueError, match="batch"):
        linear(torch.randn(2, 4), torch.randn(3, 3))
    conv = HyperConv3d(2, 3, 3, 2)
    with pytest.raises(ValueError, match=r"\[B, 2, D, H, W\]"):
        conv(torch.randn(2, 3, 5, 5, 5), torch.randn(2, 2))


def test_bf16_autocast_runs_and_stays_close():
    torch.manual_seed(0)
    layer = HyperConv3d(8, 16, 1, 4, stride=2).float()
    x = torch.randn(4, 8, 6, 6, 6, dtype=torch.float32)
    embedding = torch.randn(4, 4, dtype=torch.float32)
    expected = layer(x, embedding)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x, embedding)
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05)
