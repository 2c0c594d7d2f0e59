"""HyperConv1d/2d/3d (grouped or not) against a slow per-sample loop in float64: outputs and every gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hyperfusion.nn import HyperConv1d, HyperConv2d, HyperConv3d
from hyperfusion.nn.hyper_conv import HyperConv
from tests.faults import fault
from tests.nn.test_hyper import assert_matches_reference, randomise_heads

CLASSES = {1: HyperConv1d, 2: HyperConv2d, 3: HyperConv3d}
FUNCTIONAL = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.fixture(autouse=True)
def float64_by_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def loop_conv(layer: HyperConv, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """Reference: each sample convolved alone with the kernel generated from its own embedding."""
    conv = FUNCTIONAL[layer.spatial_dims]
    outputs = []
    for x_b, e_b in zip(x.unbind(0), embedding.unbind(0)):
        weight, bias = layer.generate(e_b[None])
        outputs.append(
            conv(
                x_b[None],
                weight[0],
                None if bias is None else bias[0],
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.groups,
            )
        )
    return torch.cat(outputs)


CASES = [
    # (dims, batch, in, out, kernel, stride, padding, dilation, groups, spatial, embedding_dim, bias)
    (3, 1, 2, 3, 1, 1, 0, 1, 1, (5, 4, 3), 3, True),
    (3, 3, 4, 5, 1, 2, 0, 1, 1, (7, 6, 5), 8, True),
    (3, 2, 3, 2, 3, 1, 1, 1, 1, (5, 6, 7), 2, True),
    (3, 3, 2, 4, 3, 2, 1, 1, 1, (9, 7, 5), 4, False),
    (3, 2, 1, 3, 2, 1, 0, 1, 1, (4, 5, 3), 1, True),
    (3, 2, 3, 2, (3, 1, 2), (1, 2, 1), (1, 0, 2), (2, 1, 1), 1, (7, 5, 6), 3, True),
    (3, 4, 2, 3, 3, 1, 2, 2, 1, (5, 5, 5), 3, True),
    (3, 2, 2, 3, 1, (1, 3, 2), 1, 1, 1, (5, 7, 4), 2, True),
    (3, 3, 4, 6, 3, 2, 1, 1, 2, (6, 5, 7), 3, True),
    (3, 2, 6, 4, 1, 2, 0, 1, 2, (5, 6, 4), 2, True),
    (2, 3, 3, 5, 3, 1, 1, 1, 1, (7, 6), 4, True),
    (2, 2, 4, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, (9, 8), 3, True),
    (2, 4, 6, 6, 3, 1, 1, 1, 6, (6, 5), 2, False),  # depthwise
    (2, 3, 4, 8, 1, 2, 0, 1, 4, (7, 6), 2, True),
    (2, 2, 3, 2, 1, 1, 0, 1, 1, (5, 4), 1, False),
    (1, 3, 3, 4, 5, 2, 2, 1, 1, (17,), 3, True),
    (1, 2, 4, 6, 3, 1, 2, 2, 2, (11,), 2, True),
    (1, 4, 6, 3, 1, 3, 0, 1, 3, (10,), 2, True),
]
CASE_KEYS = ("dims", "batch", "n_in", "n_out", "kernel", "stride", "padding", "dilation", "groups", "spatial")


def _layer(method, dims, n_in, n_out, kernel, stride, padding, dilation, groups, dim, bias) -> HyperConv:
    return CLASSES[dims](
        n_in,
        n_out,
        kernel,
        dim,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
        method=method,
    )


@pytest.mark.parametrize("method", ["auto", "factorized", "grouped", "bmm"])
@pytest.mark.parametrize((*CASE_KEYS, "dim", "bias"), CASES)
def test_hyper_conv_matches_per_sample_loop(
    method, dims, batch, n_in, n_out, kernel, stride, padding, dilation, groups, spatial, dim, bias
):
    pointwise = kernel == 1 and padding == 0
    args = (method, dims, n_in, n_out, kernel, stride, padding, dilation, groups, dim, bias)
    if method == "bmm" and not pointwise:
        with pytest.raises(ValueError, match="kernel without padding"):
            _layer(*args)
        return
    generator = torch.Generator().manual_seed(batch * 1000 + n_in * 10 + n_out + dims)
    layer = _layer(*args)
    randomise_heads(layer, generator)
    x = torch.randn(batch, n_in, *spatial, generator=generator)
    embedding = torch.randn(batch, dim, generator=generator)
    assert_matches_reference(layer, loop_conv, x, embedding)


def test_auto_method_rule():
    assert HyperConv3d(4, 2, 1, 3, stride=2).method == "bmm"
    assert HyperConv2d(4, 2, 1, 3, groups=2).method == "bmm"
    assert HyperConv3d(4, 2, 1, 3, padding=1).method == "grouped"
    assert HyperConv1d(4, 2, 3, 3, padding=1).method == "grouped"


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_same_and_valid_padding_strings_match_reference(dims):
    generator = torch.Generator().manual_seed(3)
    for padding in ("same", "valid"):
        layer = CLASSES[dims](2, 4, 3, 2, padding=padding, groups=2)
        randomise_heads(layer, generator)
        x = torch.randn(2, 2, *(6, 5, 4)[:dims], generator=generator)
        assert_matches_reference(layer, loop_conv, x, torch.randn(2, 2, generator=generator))


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: HyperConv3d(3, 4, 1, 3, stride=2),
        lambda: HyperConv3d(3, 4, 3, 3, padding=1, method="grouped"),
        lambda: HyperConv3d(3, 4, 3, 3, padding=1, method="factorized"),
        lambda: HyperConv2d(4, 4, 3, 3, padding=1, groups=2, method="factorized"),
        lambda: HyperConv1d(4, 2, 1, 3, groups=2),
    ],
    ids=["conv-bmm", "conv-grouped", "conv-factorized", "conv2d-groups-factorized", "conv1d-groups-bmm"],
)
def test_permuting_the_batch_permutes_the_output(make_layer):
    """The authors' conv layer applied sample i's kernel to sample i-1's input; this catches that."""
    layer = make_layer()
    generator = torch.Generator().manual_seed(0)
    randomise_heads(layer, generator)
    x = torch.randn(5, layer.in_channels, *(4, 5, 6)[: layer.spatial_dims], generator=generator)
    embedding = torch.randn(5, 3, generator=generator)
    permutation = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(
        layer(x, embedding)[permutation], layer(x[permutation], embedding[permutation])
    )
    changed = x.clone()
    changed[2] += 1.0
    delta = (layer(changed, embedding) - layer(x, embedding)).flatten(1).abs().amax(1)
    assert delta[2] > 0
    assert torch.all(delta[[0, 1, 3, 4]] == 0)


def test_grouped_weights_have_the_plain_grouped_shape():
    layer = HyperConv2d(6, 9, 3, 4, groups=3)
    weight, bias = layer.generate(torch.randn(2, 4))
    assert weight.shape == (2, 9, 2, 3, 3) and bias.shape == (2, 9)
    assert layer.fan_in == 2 * 9


@fault(
    "hyper layers",
    "impossible hyper-convolution argument (size, kernel, stride, padding, groups, method)",
    "ValueError naming the argument",
)
@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: HyperConv3d(2, 3, 0, 2), "kernel_size"),
        (lambda: HyperConv3d(2, 3, (3, 3), 2), "kernel_size"),
        (lambda: HyperConv2d(2, 3, (3, 3, 3), 2), "kernel_size"),
        (lambda: HyperConv3d(2, 3, 3, 2, stride=0), "stride"),
        (lambda: HyperConv1d(2, 3, 3, 2, padding=-1), "padding"),
        (lambda: HyperConv3d(2, 3, 3, 2, padding="full"), "padding"),
        (lambda: HyperConv2d(2, 3, 3, 2, padding="same", stride=2), "stride 1"),
        (lambda: HyperConv3d(2, 3, 3, 2, dilation=0), "dilation"),
        (lambda: HyperConv3d(2, 3, 3, 2, method="loop"), "method"),
        (lambda: HyperConv2d(4, 6, 3, 2, groups=0), "groups"),
        (lambda: HyperConv2d(4, 6, 3, 2, groups=4), "divisible by groups=4"),
        (lambda: HyperConv(4, 6, 3, 2, spatial_dims=4), "spatial_dims"),
        (lambda: HyperConv1d(0, 6, 3, 2), "in_channels"),
    ],
)
def test_impossible_arguments_raise_value_error(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


@fault(
    "hyper layers", "image of the wrong rank or channels for a hyper convolution", "ValueError with the shape"
)
def test_wrong_input_shapes_raise_value_error():
    with pytest.raises(ValueError, match=r"\[B, 2, D, H, W\]"):
        HyperConv3d(2, 3, 3, 2)(torch.randn(2, 3, 5, 5, 5), torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"\[B, 2, H, W\]"):
        HyperConv2d(2, 3, 3, 2)(torch.randn(2, 2, 5, 5, 5), torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"\[B, 2, L\]"):
        HyperConv1d(2, 3, 3, 2)(torch.randn(2, 2, 5, 5), torch.randn(2, 2))


def test_bf16_autocast_runs_and_stays_close():
    torch.manual_seed(0)
    layer = HyperConv3d(8, 16, 1, 4, stride=2).float()
    x = torch.randn(4, 8, 6, 6, 6, dtype=torch.float32)
    embedding = torch.randn(4, 4, dtype=torch.float32)
    expected = layer(x, embedding)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x, embedding)
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05)
