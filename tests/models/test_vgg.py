"""The brain-age trunk: flatten size for the paper's input, concatenation layers and input errors."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.models.vgg import VGG3dRegressor
from hyperfusion.nn.blocks import VGGBlock3d


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


def test_side_formula_ranges_from_the_reference() -> None:
    # reference.md §1.4: three blocks give 7 for n in [84, 91], 8 for [92, 99], 11 for [116, 123].
    def three(n: int) -> int:
        for _ in range(3):
            n = VGGBlock3d.output_size(n)
        return n

    assert {three(n) for n in range(84, 92)} == {7}
    assert {three(n) for n in range(92, 100)} == {8}
    assert {three(n) for n in range(116, 124)} == {11}


def test_concat_layers_widen_their_inputs_and_use_the_tabular_vector() -> None:
    net = VGG3dRegressor(
        input_shape=(20, 20, 20),
        base_width=2,
        depth=2,
        hidden=(4, 5),
        concat_features=2,
        concat_layers=["final_layer", "linear1"],
    ).eval()
    assert net.concat_layers == ("linear1", "final_layer")
    assert (net.linear1.in_features, net.linear2.in_features, net.final_layer.in_features) == (
        net.flat_features + 2,
        4,
        5 + 2,
    )
    x = torch.randn(3, 1, 20, 20, 20)
    t = torch.randn(3, 2)
    h = torch.relu(net.linear1(torch.cat([net.block2(net.block1(x)).flatten(1), t], dim=1)))
    expected = net.final_layer(torch.cat([torch.relu(net.linear2(h)), t], dim=1))[:, 0]
    torch.testing.assert_close(net(x, t), expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: VGG3dRegressor(input_shape=(32, 32, 32)), r"too small for 3 blocks"),
        (lambda: VGG3dRegressor(input_shape=(32, 32)), r"\(D, H, W\)"),
        (lambda: VGG3dRegressor(hidden=(16, 0)), "hidden"),
        (lambda: VGG3dRegressor(dropout=1.5), "dropout"),
        (lambda: VGG3dRegressor(depth=0), "depth"),
        (lambda: VGG3dRegressor(concat_features=2, concat_layers=["fc1"]), r"unknown layers \['fc1'\]"),
        (lambda: VGG3dRegressor(concat_layers=["linear1"]), "concat_features"),
        (
            lambda: VGG3dRegressor(input_shape=(20, 20, 20), base_width=1, depth=2)(
                torch.randn(2, 1, 20, 20, 21)
            ),
            r"spatial shape \(20, 20, 20\).*got \(20, 20, 21\)",
        ),
        (
            lambda: VGG3dRegressor(
                input_shape=(20, 20, 20), base_width=1, depth=2, concat_features=2, concat_layers=["linear2"]
            )(torch.randn(2, 1, 20, 20, 20)),
            "needs a tabular",
        ),
    ],
)
def test_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
