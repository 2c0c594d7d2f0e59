"""film, daft and concat (and their mix with hyperize) on MONAI ResNets and nn.Sequential, against a per-sample
reference written from the formulas: outputs and every gradient in float64."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hyperfusion.nn import ConditionedModel, ModulatedInput, concat, daft, film, hyperize
from hyperfusion.nn.fusion import input_channels
from tests.faults import fault
from tests.nn.fused_reference import (
    assert_model_matches_reference,
    monai_resnet,
    randomise_fusion,
    randomise_norms,
)


@pytest.fixture(autouse=True)
def float64_by_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def encoder(n_tabular: int = 5, width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(n_tabular, width), nn.BatchNorm1d(width), nn.PReLU())


def small_cnn_2d() -> nn.Sequential:
    """A small 2D CNN for tiles or X-rays."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, groups=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
        nn.ReLU(),
        nn.Linear(5, 2),
    )


def small_cnn_1d() -> nn.Sequential:
    """A small 1D CNN for signals (e.g. an ECG lead)."""
    return nn.Sequential(
        nn.Conv1d(2, 4, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(4, 4, 3, groups=4),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


NETWORKS = {
    "monai-3d": (lambda: monai_resnet(3), (1, 10, 9, 8)),
    "monai-2d": (lambda: monai_resnet(2), (1, 12, 11)),
    "sequential-2d": (small_cnn_2d, (1, 9, 8)),
    "sequential-1d": (small_cnn_1d, (2, 13)),
}

# (network, fusion steps) — each step (function, layers, encoder kind); applied in order to the same model
RECIPES = {
    "film-monai-3d-location2": ("monai-3d", [(film, ["layer4.0.conv1"], "shared")]),
    "film-monai-3d-blocks-raw": ("monai-3d", [(film, ["layer3.0", "layer4"], None)]),
    "daft-monai-3d": ("monai-3d", [(daft, ["layer4.0.conv1", "layer2.0"], "per-layer")]),
    "concat-monai-3d": ("monai-3d", [(concat, ["fc"], "shared")]),
    "film-monai-2d": ("monai-2d", [(film, ["layer3.0.conv1"], "per-layer")]),
    "daft-monai-2d-raw": ("monai-2d", [(daft, ["layer4.0"], None)]),
    "concat-monai-2d-raw": ("monai-2d", [(concat, ["fc"], None)]),
    "film-sequential-2d": ("sequential-2d", [(film, ["3", "7"], "shared")]),
    "daft-sequential-2d": ("sequential-2d", [(daft, ["3"], "shared")]),
    "concat-sequential-2d": ("sequential-2d", [(concat, ["7", "9"], "per-layer")]),
    "daft-sequential-1d": ("sequential-1d", [(daft, ["2"], "shared")]),
    "hyper-then-film-monai-3d": (
        "monai-3d",
        [(hyperize, ["layer4.0.downsample.0", "fc"], "shared"), (film, ["layer4.0.conv1"], "shared-again")],
    ),
    "film-then-hyper-inside-monai-2d": (
        "monai-2d",
        [(film, ["layer4.0"], "per-layer"), (hyperize, ["layer4.0.conv2", "layer3.0.conv1"], "per-layer")],
    ),
    "all-four-sequential-2d": (
        "sequential-2d",
        [
            (hyperize, ["3"], "shared"),
            (film, ["0"], None),
            (daft, ["7"], "shared-again"),
            (concat, ["9"], "per-layer"),
        ],
    ),
}


def _encoders(kind, layers, shared):
    if kind is None:
        return None
    if kind == "shared":
        return encoder()
    if kind == "shared-again":
        return shared
    return {name: encoder(width=2 + i) for i, name in enumerate(layers)}


def build(recipe: str) -> tuple[ConditionedModel, nn.Module, tuple[int, ...]]:
    make, shape = NETWORKS[RECIPES[recipe][0]]
    torch.manual_seed(0)
    net = make()
    plain = copy.deepcopy(net)
    model: nn.Module = net
    shared = None
    for function, layers, kind in RECIPES[recipe][1]:
        chosen = _encoders(kind, layers, shared)
        shared = chosen if kind == "shared" else shared
        if function is hyperize:
            model = hyperize(model, layers, chosen, embedding_dim=5 if chosen is None else None)
        else:
            model = function(model, layers, 5, encoder=chosen)
    return model, plain, shape


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_fused_model_matches_per_sample_reference(recipe: str) -> None:
    model, plain, shape = build(recipe)
    generator = torch.Generator().manual_seed(1)
    randomise_norms(model, generator)
    randomise_fusion(model, generator)
    image = torch.randn(3, *shape, generator=generator)
    tabular = torch.randn(3, 5, generator=generator)
    assert_model_matches_reference(model, plain, image, tabular)


def test_encoders_run_once_per_batch_and_are_shared_by_identity() -> None:
    model, _, shape = build("hyper-then-film-monai-3d")
    assert len(model.encoders) == 1  # the same encoder module given twice is one encoder
    calls = []
    model.encoders[0].register_forward_hook(lambda *_: calls.append(1))
    model.eval()(torch.randn(2, *shape), torch.randn(2, 5))
    assert len(calls) == 1
    assert model.slot_names == ["layer4.0.downsample.0", "fc", "layer4.0.conv1"]
    assert model.layer_names == ["layer4.0.downsample.0", "fc"]


def test_per_layer_encoders_are_listed_in_order() -> None:
    model, _, _ = build("daft-monai-3d")
    assert [e[0].out_features for e in model.tabular_encoders] == [2, 3]
    assert model.encoder_for("layer2.0") is model.encoders[1]


@pytest.mark.parametrize("kind", [film, daft])
def test_identity_at_zero_init_and_at_zero_condition(kind) -> None:
    """init_std = 0 starts exactly at the plain network; FiLM with a zero condition is the identity at any init."""
    torch.manual_seed(0)
    net = small_cnn_2d().eval()
    plain = copy.deepcopy(net)
    image, tabular = torch.randn(4, 1, 9, 8), torch.randn(4, 5)
    exact = kind(copy.deepcopy(net), ["3", "7"], 5, init_std=0.0).eval()
    torch.testing.assert_close(exact(image, tabular), plain(image))
    near = kind(copy.deepcopy(net), ["3"], 5, init_std=0.01).eval()  # the small-start convention
    assert (near(image, tabular) - plain(image)).abs().max() < 0.1
    if kind is film:
        randomise_fusion(near, torch.Generator().manual_seed(3), scale=1.0)
        torch.testing.assert_close(near(image, torch.zeros(4, 5)), plain(image))


def test_concat_with_a_zero_condition_is_the_plain_network_and_widens_like_one_layer() -> None:
    torch.manual_seed(0)
    net = small_cnn_2d().eval()
    plain = copy.deepcopy(net)
    model = concat(net, ["7"], 5).eval()
    image = torch.randn(3, 1, 9, 8)
    torch.testing.assert_close(model(image, torch.zeros(3, 5)), plain(image))
    slot = model.slot("7")
    assert slot.module is plain_layer_of(model, "7") and slot.tabular.weight.shape == (5, 5)
    assert slot.tabular.weight.abs().max() <= (6 + 5) ** -0.5  # drawn as nn.Linear(6 + 5, 5) would


def plain_layer_of(model: ConditionedModel, name: str) -> nn.Module:
    return model.network.get_submodule(name).module


def test_film_location_two_leaves_the_shortcut_unmodulated() -> None:
    """Conditioning MONAI's block conv1 only (not the block) keeps the block's residual input raw."""
    model, _, shape = build("film-monai-3d-location2")
    seen = {}
    block = model.network.layer4[0]
    block.downsample.register_forward_hook(lambda m, args, out: seen.update(shortcut=args[0]))
    block.conv1.register_forward_hook(lambda m, args, out: seen.update(block_input=args[0]))
    block.conv1.module.register_forward_hook(lambda m, args, out: seen.update(modulated=args[0]))
    model.eval()(torch.randn(2, *shape), torch.randn(2, 5))
    assert isinstance(block.conv1, ModulatedInput)
    assert torch.equal(seen["shortcut"], seen["block_input"])
    assert not torch.allclose(seen["shortcut"], seen["modulated"])


def test_input_channels_inference() -> None:
    assert input_channels(nn.Conv2d(3, 4, 1), "c") == 3
    assert input_channels(monai_resnet(3).layer4, "layer4") == 8
    assert input_channels(nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 2)), "s") == 6
    with pytest.raises(ValueError, match="pass channels"):
        input_channels(nn.Sequential(nn.ReLU()), "s")
    model = film(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 2, 1)), ["0"], 4, channels=3)
    assert model.slot("0").modulator.num_channels == 3


@fault(
    "fusion",
    "film/daft/concat/hyperize given bad layer names, a wrong layer type or mismatched encoders",
    "ValueError naming the value; the network is left unchanged",
)
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda net: film(net, [], 5), "at least one"),
        (lambda net: film(net, "3", 5), "list of names"),
        (lambda net: daft(net, ["3", "3"], 5), "repeated"),
        (lambda net: film(net, ["3.weight"], 5), r"no submodule named '3\.weight'"),
        (lambda net: film(net, ["missing"], 5), "no submodule named 'missing'"),
        (lambda net: film(net, ["3"], 0), "n_tabular"),
        (lambda net: film(net, ["3"], 5, bottleneck=0), "bottleneck"),
        (lambda net: daft(net, ["3"], 5, init_std=-1.0), "init_std"),
        (lambda net: film(net, ["3"], 5, channels=0), "channels"),
        (lambda net: concat(net, ["3"], 5), "Conv2d; concat needs an nn.Linear"),
        (lambda net: concat(net, ["7"], 5, encoder={"9": nn.Linear(5, 2)}), "exactly the layer names"),
        (lambda net: concat(net, ["7"], 5, encoder="mlp"), "encoder must be"),
        (lambda net: concat(net, ["7"], 5, encoder=nn.Linear(4, 2)), r"cannot read a tabular batch"),
        (lambda net: concat(net, ["7"], 5, encoder=nn.Flatten(0)), r"must return \[B, width\]"),
        (lambda net: hyperize(net, ["2"], nn.Linear(5, 2)), "ReLU; only nn.Linear and nn.Conv1d/2d/3d"),
        (lambda net: hyperize(net, ["7"], None), "embedding_dim"),
        (lambda net: film("net", ["3"], 5), "net must be an nn.Module"),
    ],
)
def test_bad_arguments_raise_value_error_and_leave_the_network(call, message: str) -> None:
    net = small_cnn_2d()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match=message):
        call(net)
    assert [type(m) for m in net] == [type(m) for m in small_cnn_2d()]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@fault("fusion", "the same layer conditioned twice", "ValueError: layer is already conditioned")
def test_conditioning_a_layer_twice_is_refused() -> None:
    model = film(small_cnn_2d(), ["3"], 5)
    with pytest.raises(ValueError, match="already conditioned"):
        daft(model, ["3"], 5)
    with pytest.raises(ValueError, match="n_tabular=4 but the fused model reads 5"):
        film(model, ["7"], 4)


@fault("fusion", "tabular tensor of the wrong width or batch for a fused model", "ValueError with the shapes")
def test_wrong_tabular_shape_is_refused() -> None:
    model = film(small_cnn_2d(), ["3"], 5).eval()
    with pytest.raises(ValueError, match=r"5 features \(shape \[B, 5\]\), got \[2, 4\]"):
        model(torch.randn(2, 1, 9, 8), torch.randn(2, 4))
    with pytest.raises(ValueError, match="tabular batch 3 does not match image batch 2"):
        model(torch.randn(2, 1, 9, 8), torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"tensor \[B, features\]"):
        model(torch.randn(2, 1, 9, 8), torch.randn(2))
