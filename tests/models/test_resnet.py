"""The AD trunk: Table C.6's layout, the named residual path, and input errors."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.models.resnet import PreActResNet3d, default_block_dropout
from hyperfusion.nn.blocks import PreActResidual3d, Shortcut3d
from tests.faults import fault


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_layout() -> None:
    net = PreActResNet3d()
    # Table C.6 and the authors' code (block4 as the standard block of the baselines)
    assert count(net.stem) == 480
    assert [count(net.get_submodule(f"block{i}")) for i in range(1, 5)] == [
        42_208,
        168_384,
        672_640,
        2_688_768,
    ]
    assert (count(net.fc1), count(net.fc2)) == (16_448, 195)
    strides = [net.get_submodule(f"block{i}.residual.conv1").stride for i in range(1, 5)]
    assert strides == [(1, 1, 1)] + [(2, 2, 2)] * 3
    assert [net.get_submodule(f"block{i}.residual.dropout").p for i in range(1, 5)] == [0.1, 0.2, 0.2, 0.3]
    assert (net.drop1.p, net.drop2.p) == (0.6, 0.5)
    assert all(m.momentum == 0.05 for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert net.last_block_name == "block4" and net.n_classes == 3
    assert isinstance(net.get_submodule("block4.residual"), PreActResidual3d)


def test_stage_shapes_and_tabular_is_ignored() -> None:
    net = PreActResNet3d(base_width=2, head_hidden=4).eval()
    x = torch.randn(2, 1, 16, 24, 16)
    assert net.encode(x).shape == (2, 16, 2, 3, 2)  # stem+pool 8×12×8, block2 4×6×4, block3 2×3×2
    assert net(x).shape == (2, 3)
    assert torch.equal(net(x, torch.randn(2, 7)), net(x))


def test_default_block_dropout() -> None:
    assert default_block_dropout(4) == (0.1, 0.2, 0.2, 0.3)
    assert default_block_dropout(1) == (0.3,)
    assert default_block_dropout(2) == (0.1, 0.3)
    assert default_block_dropout(5) == (0.1, 0.2, 0.2, 0.2, 0.3)
    assert PreActResNet3d(base_width=2, depth=2).block2.residual.conv2.out_channels == 8


def test_last_shortcut_order_changes_only_the_last_block() -> None:
    net = PreActResNet3d(base_width=2, last_shortcut_order="conv-norm")
    orders = [net.get_submodule(f"block{i}.shortcut").order for i in range(1, 5)]
    assert orders == ["norm-conv"] * 3 + ["conv-norm"]
    assert isinstance(net.block4.shortcut, Shortcut3d) and net.block4.shortcut.norm.num_features == 32


@fault(
    "AD trunk", "bad trunk size or an image of the wrong shape", "ValueError naming the argument or the shape"
)
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PreActResNet3d(base_width=0), "base_width"),
        (lambda: PreActResNet3d(depth=3, block_dropout=(0.1, 0.2)), "one value per block"),
        (lambda: PreActResNet3d(head_dropout=(0.5,)), "head_dropout"),
        (lambda: PreActResNet3d(base_width=2)(torch.randn(2, 2, 8, 8, 8)), r"\[B, 1, D, H, W\]"),
        (lambda: PreActResNet3d(base_width=2)(torch.randn(2, 8, 8, 8)), r"got \(2, 8, 8, 8\)"),
        (lambda: PreActResNet3d(base_width=2)(torch.randn(2, 1, 1, 8, 8)), ">= 2 voxels"),
    ],
)
def test_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
