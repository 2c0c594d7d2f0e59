"""Blocks against slow, obvious functional references (per sample, eval-mode BatchNorm with random statistics)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperfusion.nn.blocks import ConvNormAct3d, PreActResBlock3d, PreActResidual3d, Shortcut3d, VGGBlock3d
from tests.faults import fault


def _randomise_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so the references test them."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator))
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=generator))
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator))


def _bn(x: torch.Tensor, norm: nn.BatchNorm3d) -> torch.Tensor:
    """Per-channel affine normalisation of one sample [C, D, H, W] with the running statistics."""
    shape = (-1, 1, 1, 1)
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return (x - norm.running_mean.view(shape)) * scale.view(shape) + norm.bias.view(shape)


def _conv(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    return F.conv3d(x[None], conv.weight, conv.bias, conv.stride, conv.padding)[0]


@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "order"),
    [(3, 3, 1, "norm-conv"), (3, 5, 1, "norm-conv"), (4, 6, 2, "norm-conv"), (4, 6, 2, "conv-norm")],
)
def test_preact_block_matches_per_sample_reference(c_in: int, c_out: int, stride: int, order: str) -> None:
    g = torch.Generator().manual_seed(0)
    block = PreActResBlock3d(c_in, c_out, stride=stride, dropout=0.3, shortcut_order=order)
    _randomise_norms(block, g)
    block.eval()
    x = torch.randn(3, c_in, 6, 7, 5, generator=g)
    with torch.no_grad():
        out = block(x)
        for i in range(x.shape[0]):
            path = block.residual
            h = _conv(F.relu(_bn(x[i], path.norm1)), path.conv1)
            h = _conv(F.relu(_bn(h, path.norm2)), path.conv2)
            if stride == 1 and c_in == c_out:
                skip = x[i]
            elif order == "norm-conv":
                skip = _conv(_bn(x[i], block.shortcut.norm), block.shortcut.conv)
            else:
                skip = _bn(_conv(x[i], block.shortcut.conv), block.shortcut.norm)
            torch.testing.assert_close(out[i], h + skip, rtol=1e-5, atol=1e-5)


def test_preact_block_shapes_and_shortcut_kinds() -> None:
    assert isinstance(PreActResBlock3d(4, 4).shortcut, nn.Identity)
    assert isinstance(PreActResBlock3d(4, 8).shortcut, Shortcut3d)  # width change at stride 1 still projects
    assert isinstance(PreActResBlock3d(4, 4, stride=2).shortcut, Shortcut3d)
    out = PreActResBlock3d(2, 4, stride=2)(torch.randn(2, 2, 8, 7, 6))
    assert out.shape == (2, 4, 4, 4, 3)


def test_preact_block_parameter_count_matches_paper_table() -> None:
    # the authors' block1 16→32 has 42,208 parameters, block3 64→128 has 672,640 (Table C.6).
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(PreActResBlock3d(16, 32)) == 42_208
    assert count(PreActResBlock3d(64, 128, stride=2)) == 672_640


def test_shortcut_orders_normalise_the_right_side() -> None:
    assert Shortcut3d(4, 8, order="norm-conv").norm.num_features == 4
    assert Shortcut3d(4, 8, order="conv-norm").norm.num_features == 8


def test_dropout_is_channelwise_in_training() -> None:
    block = PreActResBlock3d(4, 4, dropout=0.5).train()
    assert isinstance(block.residual.dropout, nn.Dropout3d) and block.residual.dropout.p == 0.5


def test_residual_path_is_a_named_submodule() -> None:
    block = PreActResBlock3d(4, 6, stride=2)
    assert isinstance(block.get_submodule("residual"), PreActResidual3d)
    assert block.residual.in_channels == 4
    assert {name.split(".")[0] for name, _ in block.named_parameters()} == {"residual", "shortcut"}


@pytest.mark.parametrize("side", [9, 10, 16, 21])
def test_vgg_block_output_size_formula_and_reference(side: int) -> None:
    g = torch.Generator().manual_seed(1)
    block = VGGBlock3d(2, 3)
    _randomise_norms(block, g)
    block.eval()
    x = torch.randn(2, 2, side, side + 1, side + 2, generator=g)
    with torch.no_grad():
        out = block(x)
        expected = tuple(VGGBlock3d.output_size(s) for s in x.shape[2:])
        assert out.shape == (2, 3, *expected)
        for i in range(2):
            h = F.relu(_conv(F.relu(_conv(x[i], block.conv_a)), block.conv_b))
            torch.testing.assert_close(out[i], _bn(F.max_pool3d(h, 2), block.norm), rtol=1e-5, atol=1e-5)


def test_conv_norm_act_keeps_size() -> None:
    stem = ConvNormAct3d(1, 4)
    assert stem(torch.randn(2, 1, 5, 6, 7)).shape == (2, 4, 5, 6, 7)
    assert sum(p.numel() for p in ConvNormAct3d(1, 16).parameters()) == 480  # Table C.6 conv_bn_relu


@fault(
    "blocks",
    "building block with a non-positive size, dropout outside [0, 1) or unknown shortcut order",
    "ValueError naming the argument",
)
@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: PreActResBlock3d(0, 4), "in_channels"),
        (lambda: PreActResBlock3d(4, 4, stride=0), "stride"),
        (lambda: PreActResBlock3d(4, 4, dropout=1.0), "dropout"),
        (lambda: PreActResBlock3d(4, 4, dropout=-0.1), "dropout"),
        (lambda: Shortcut3d(4, 4, order="conv-bn"), "order"),
        (lambda: VGGBlock3d(4, 0), "out_channels"),
        (lambda: ConvNormAct3d(1, 4, kernel_size=0), "kernel_size"),
    ],
)
def test_illegal_arguments(factory, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()
