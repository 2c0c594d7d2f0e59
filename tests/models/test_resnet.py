"""The AD trunk: Table C.6's layout, the concatenation head, FiLM/DAFT variants and input errors."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.models.resnet import ModulatedPreActResNet3d, PreActResNet3d, default_block_dropout
from hyperfusion.nn.blocks import Shortcut3d
from hyperfusion.nn.conditioning import DAFT, FiLM


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_layout() -> None:
    net = PreActResNet3d()
    # Table C.6 / reference.md §1.1 (block4 as the standard block of the baselines)
    assert count(net.stem) == 480
    assert [count(net.get_submodule(f"block{i}")) for i in range(1, 5)] == [
        42_208,
        168_384,
        672_640,
        2_688_768,
    ]
    assert (count(net.fc1), count(net.fc2)) == (16_448, 195)
    assert [net.get_submodule(f"block{i}").conv1.stride for i in range(1, 5)] == [(1, 1, 1)] + [(2, 2, 2)] * 3
    assert [net.get_submodule(f"block{i}").dropout.p for i in range(1, 5)] == [0.1, 0.2, 0.2, 0.3]
    assert (net.drop1.p, net.drop2.p) == (0.6, 0.5)
    assert all(m.momentum == 0.05 for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert net.last_block_name == "block4"


def test_stage_shapes() -> None:
    net = PreActResNet3d(base_width=2, head_hidden=4).eval()
    x = torch.randn(2, 1, 16, 24, 16)
    assert net.encode(x).shape == (2, 16, 2, 3, 2)  # stem+pool 8×12×8, block2 4×6×4, block3 2×3×2
    assert net(x).shape == (2, 3)


def test_default_block_dropout() -> None:
    assert default_block_dropout(4) == (0.1, 0.2, 0.2, 0.3)
    assert default_block_dropout(1) == (0.3,)
    assert default_block_dropout(2) == (0.1, 0.3)
    assert default_block_dropout(5) == (0.1, 0.2, 0.2, 0.2, 0.3)
    assert PreActResNet3d(base_width=2, depth=2).block2.conv2.out_channels == 8


def test_last_shortcut_order_changes_only_the_last_block() -> None:
    net = PreActResNet3d(base_width=2, last_shortcut_order="conv-norm")
    orders = [net.get_submodule(f"block{i}.shortcut").order for i in range(1, 5)]
    assert orders == ["norm-conv"] * 3 + ["conv-norm"]
    assert isinstance(net.block4.shortcut, Shortcut3d) and net.block4.shortcut.norm.num_features == 32


def test_concat_head_drops_only_the_image_part() -> None:
    torch.manual_seed(0)
    net = PreActResNet3d(base_width=2, head_hidden=4, head_dropout=(0.5, 0.0), extra_features=3).train()
    seen = {}
    net.fc1.register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0]))
    tabular = torch.randn(4, 3)
    net(torch.randn(4, 1, 8, 8, 8), tabular)
    assert seen["x"].shape == (4, 32 + 3)
    torch.testing.assert_close(seen["x"][:, 32:], tabular)
    assert (seen["x"][:, :32] == 0).any()  # dropout acted on the image features


@pytest.mark.parametrize(("kind", "cls"), [("film", FiLM), ("daft", DAFT)])
def test_modulated_trunk_replaces_only_the_last_block(kind: str, cls: type) -> None:
    net = ModulatedPreActResNet3d(n_tabular=5, modulation=kind, base_width=2, head_hidden=4)
    assert type(net.block4.modulator) is cls and net.block4.modulator.num_channels == 16
    assert not hasattr(net.block3, "modulator")
    assert net(torch.randn(2, 1, 16, 16, 16), torch.randn(2, 5)).shape == (2, 3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PreActResNet3d(base_width=0), "base_width"),
        (lambda: PreActResNet3d(depth=3, block_dropout=(0.1, 0.2)), "one value per block"),
        (lambda: PreActResNet3d(head_dropout=(0.5,)), "head_dropout"),
        (lambda: PreActResNet3d(extra_features=-1), "extra_features"),
        (lambda: ModulatedPreActResNet3d(n_tabular=3, modulation="dafty"), "modulation"),
        (lambda: PreActResNet3d(base_width=2)(torch.randn(2, 2, 8, 8, 8)), r"\[B, 1, D, H, W\]"),
        (lambda: PreActResNet3d(base_width=2)(torch.randn(2, 8, 8, 8)), r"got \(2, 8, 8, 8\)"),
        (lambda: PreActResNet3d(base_width=2)(torch.randn(2, 1, 1, 8, 8)), ">= 2 voxels"),
        (
            lambda: PreActResNet3d(base_width=2, extra_features=3)(torch.randn(2, 1, 8, 8, 8)),
            "needs a tabular",
        ),
        (
            lambda: ModulatedPreActResNet3d(n_tabular=3, base_width=2)(
                torch.randn(2, 1, 8, 8, 8), torch.randn(3, 3)
            ),
            r"tabular must have shape \[2, 3\]",
        ),
    ],
)
def test_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
