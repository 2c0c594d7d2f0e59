"""The brain-age trunk: flatten size for the paper's input, and input errors."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.models.vgg import VGG3dRegressor
from hyperfusion.nn.blocks import VGGBlock3d
from tests.faults import fault


def test_paper_input_gives_the_authors_flatten_size() -> None:
    net = VGG3dRegressor()
    assert net.flat_features == 64 * 7 * 11 * 8 == 39_424
    assert net.linear1.in_features == 39_424 and net.final_layer.out_features == 1
    assert sum(p.numel() for name, p in net.named_parameters() if name.startswith("block")) == 215_152


@pytest.mark.parametrize("shape", [(36, 37, 44), (40, 36, 38)])
def test_flatten_size_matches_a_real_forward(shape: tuple[int, int, int]) -> None:
    net = VGG3dRegressor(input_shape=shape, base_width=1, hidden=(3,)).eval()
    x = torch.randn(2, 1, *shape)
    features = net.block3(net.block2(net.block1(x)))
    assert features.flatten(1).shape[1] == net.flat_features
    assert net(x).shape == (2,)
    assert torch.equal(net(x, torch.randn(2, 2)), net(x))  # a tabular argument is ignored


def test_side_formula_ranges_from_the_reference() -> None:
    # three blocks give 7 for n in [84, 91], 8 for [92, 99], 11 for [116, 123] (the authors' 7·11·8 flatten)
    def three(n: int) -> int:
        for _ in range(3):
            n = VGGBlock3d.output_size(n)
        return n

    assert {three(n) for n in range(84, 92)} == {7}
    assert {three(n) for n in range(92, 100)} == {8}
    assert {three(n) for n in range(116, 124)} == {11}


@fault(
    "brain-age trunk",
    "bad trunk size, an input too small for its blocks, or an image of another shape",
    "ValueError naming the argument or both shapes",
)
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: VGG3dRegressor(input_shape=(32, 32, 32)), r"too small for 3 blocks"),
        (lambda: VGG3dRegressor(input_shape=(32, 32)), r"\(D, H, W\)"),
        (lambda: VGG3dRegressor(hidden=(16, 0)), "hidden"),
        (lambda: VGG3dRegressor(dropout=1.5), "dropout"),
        (lambda: VGG3dRegressor(depth=0), "depth"),
        (
            lambda: VGG3dRegressor(input_shape=(20, 20, 20), base_width=1, depth=2)(
                torch.randn(2, 1, 20, 20, 21)
            ),
            r"spatial shape \(20, 20, 20\).*got \(20, 20, 21\)",
        ),
    ],
)
def test_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
