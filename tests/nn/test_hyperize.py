"""``hyperize`` on MONAI ResNets (3D, 2D) and nn.Sequential (Conv1d/2d/3d with groups, Linear), against a per-sample
reference; keeping the plain weights; and the principled initialisation from data."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hyperfusion.nn import (
    ConditionedLayer,
    HyperConv,
    HyperLinear,
    estimate_embedding_variance,
    hyperize,
    principled_init_from_data_,
)
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


def embedding() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.PReLU())


@pytest.mark.parametrize(
    ("spatial_dims", "shape"),
    [(3, (1, 12, 10, 11)), (2, (1, 12, 11))],
    ids=["monai-3d", "monai-2d"],
)
def test_hyperize_monai_resnet_matches_reference(spatial_dims: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = monai_resnet(spatial_dims)
    plain = copy.deepcopy(net)
    layers = ["fc", "layer3.0.conv1", "layer4.0.downsample.0"]
    model = hyperize(net, layers, embedding(), embedding_variance=0.8)
    kinds = {name: type(layer) for name, layer in model.hyper_layers.items()}
    assert kinds == {"fc": HyperLinear, "layer3.0.conv1": HyperConv, "layer4.0.downsample.0": HyperConv}
    assert model.hyper_layers["layer3.0.conv1"].spatial_dims == spatial_dims
    generator = torch.Generator().manual_seed(1)
    randomise_norms(model, generator)
    randomise_fusion(model, generator)
    image, tabular = torch.randn(3, *shape, generator=generator), torch.randn(3, 5, generator=generator)
    assert model(image, tabular).shape == (3, 3)
    assert_model_matches_reference(model, plain, image, tabular)


@pytest.mark.parametrize(
    ("layers", "shape"),
    [
        ([nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 6, 3, stride=2, groups=2)], (2, 11)),
        (
            [nn.Conv2d(2, 4, 3, dilation=2), nn.ReLU(), nn.Conv2d(4, 4, 3, padding="same", groups=4)],
            (2, 9, 8),
        ),
        ([nn.Conv3d(2, 6, 1, stride=2, groups=2), nn.ReLU(), nn.Conv3d(6, 4, 2, bias=False)], (2, 6, 5, 7)),
    ],
    ids=["conv1d", "conv2d", "conv3d"],
)
def test_hyperize_every_convolution_kind_with_groups(layers: list[nn.Module], shape: tuple[int, ...]) -> None:
    torch.manual_seed(2)
    dims = len(shape) - 1
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dims]
    net = nn.Sequential(*layers, pool(1), nn.Flatten(), nn.Linear(layers[-1].out_channels, 2))
    plain = copy.deepcopy(net)
    model = hyperize(net, ["0", "2", "5"], {"0": nn.Linear(5, 3), "2": embedding(), "5": nn.Linear(5, 1)})
    assert not model.shared_embedding
    assert [layer.embedding_dim for layer in model.hyper_layers.values()] == [3, 4, 1]
    assert model.hyper_layers["2"].groups == layers[2].groups
    generator = torch.Generator().manual_seed(3)
    randomise_norms(model, generator)
    randomise_fusion(model, generator)
    image, tabular = torch.randn(4, *shape, generator=generator), torch.randn(4, 5, generator=generator)
    assert_model_matches_reference(model, plain, image, tabular)


def test_raw_tabular_vector_as_the_embedding() -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    plain = copy.deepcopy(net)
    model = hyperize(net, ["1"], None, embedding_dim=5)
    assert model.tabular_encoders == [] and model.n_tabular == 5
    image, tabular = torch.randn(3, 3, 4), torch.randn(3, 5)
    assert_model_matches_reference(model, plain, image, tabular)


def test_shared_embedding_runs_once_per_forward() -> None:
    calls = []
    shared = nn.Linear(3, 2)
    shared.register_forward_hook(lambda *_: calls.append(1))
    model = hyperize(nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.Linear(4, 1)), ["1", "2"], shared)
    model(torch.randn(5, 8), torch.randn(5, 3))
    assert len(calls) == 1 and model.shared_embedding


def test_keep_layer_weights_with_a_zero_embedding_is_the_plain_network() -> None:
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    plain = copy.deepcopy(net)
    model = hyperize(net, ["0", "3"], None, embedding_dim=4, keep_layer_weights=True)
    x = torch.randn(3, 1, 6, 6)
    torch.testing.assert_close(model(x, torch.zeros(3, 4)), plain(x))
    assert not torch.allclose(model(x, torch.randn(3, 4)), plain(x))


def test_kept_layer_weights_survive_the_data_driven_initialisation() -> None:
    torch.manual_seed(15)
    net = nn.Sequential(nn.Linear(6, 5))
    plain = copy.deepcopy(net)
    model = hyperize(net, ["0"], nn.Sequential(nn.Linear(3, 4), nn.PReLU()), keep_layer_weights=True)
    principled_init_from_data_(model, [torch.randn(20, 3)])
    layer = model.hyper_layers["0"]
    torch.testing.assert_close(layer.weight_head[0], plain[0].weight)
    torch.testing.assert_close(layer.bias_generator.bias, plain[0].bias)


@pytest.mark.parametrize("scale", [0.1, 0.5])
def test_residual_scale_starts_at_the_plain_layer_plus_a_correction_of_that_relative_size(
    scale: float,
) -> None:
    torch.manual_seed(16)
    net = nn.Sequential(nn.Conv3d(32, 64, 1))
    plain = copy.deepcopy(net)
    model = hyperize(net, ["0"], None, embedding_dim=8, residual_scale=scale)
    layer = model.hyper_layers["0"]
    torch.testing.assert_close(layer.weight_head[0], plain[0].weight)  # W0: the layer's own weights
    torch.testing.assert_close(layer.bias_generator.bias, plain[0].bias)
    weight, bias = layer.generate(torch.randn(512, 8))  # unit second moment, as the initialisation assumes
    w0 = float(plain[0].weight.detach().std())
    assert float((weight - plain[0].weight).std()) == pytest.approx(scale * w0, rel=0.1)
    # the bias correction: scale × the spread of W0·x for a unit-variance input (fan_in · Var(W0))
    assert float((bias - plain[0].bias).std()) == pytest.approx(scale * w0 * 32**0.5, rel=0.1)
    x = torch.randn(4, 32, 2, 2, 2)
    torch.testing.assert_close(model(x, torch.zeros(4, 8)), plain(x))  # a zero record: the plain layer


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_residual_scale_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="residual_scale must be a finite number > 0"):
        hyperize(nn.Sequential(nn.Linear(3, 2)), ["0"], None, embedding_dim=2, residual_scale=bad)


def test_bias_variance_sets_the_generated_bias_scale() -> None:
    torch.manual_seed(6)
    model = hyperize(nn.Sequential(nn.Linear(10, 400)), ["0"], None, embedding_dim=8, bias_variance=0.01)
    _, bias = model.hyper_layers["0"].generate(torch.randn(256, 8))
    assert float(bias.detach().std()) == pytest.approx(0.1, rel=0.1)


def test_principled_init_from_data_measures_each_encoder_once_and_keeps_the_scales() -> None:
    torch.manual_seed(7)
    shared = nn.Sequential(nn.Linear(5, 4), nn.PReLU())
    own = nn.Linear(5, 2)
    net = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3), nn.Linear(3, 2))
    model = hyperize(net, ["0", "2"], shared, bias_variance=0.25, gain=2.0)
    model = hyperize(model, ["3"], {"3": own})
    calls = []
    shared.register_forward_hook(lambda *_: calls.append(1))
    batches = [3.0 + torch.randn(8, 5) for _ in range(3)]
    measured = principled_init_from_data_(model, iter(batches))  # a one-shot iterator is accepted
    assert (
        len(calls) == 3
    )  # one pass over the three batches for the shared encoder (its measuring copy keeps the hook)
    assert measured["0"] == measured["2"] == pytest.approx(estimate_embedding_variance(shared, batches))
    assert measured["3"] == pytest.approx(estimate_embedding_variance(own, batches))
    layer = model.hyper_layers["2"]
    assert (layer.init_gain, layer.init_bias_variance) == (2.0, 0.25)
    bound = (3 * 2.0 / (layer.fan_in * layer.embedding_dim * measured["2"])) ** 0.5
    assert float(layer.weight_head[1:].detach().abs().max()) <= bound
    assert float(layer.weight_head[1:].detach().abs().max()) > 0.9 * bound


def test_principled_init_from_data_leaves_models_without_hyper_layers() -> None:
    from hyperfusion.nn import film

    model = film(nn.Sequential(nn.Linear(3, 3)), ["0"], 5)
    before = copy.deepcopy(model.state_dict())
    assert principled_init_from_data_(model, [torch.randn(4, 5)]) == {}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@fault(
    "hyperize",
    "hyperize given bad layers, a layer that cannot be hyperized or embeddings that do not fit",
    "ValueError naming the layer or argument",
)
@pytest.mark.parametrize(
    ("layers", "embedding_module", "kwargs", "message"),
    [
        ([], nn.Linear(3, 2), {}, "at least one"),
        (["0", "0"], nn.Linear(3, 2), {}, "repeated"),
        (["missing"], nn.Linear(3, 2), {}, "no submodule named 'missing'"),
        (["1"], nn.Linear(3, 2), {}, "ReLU"),
        (["0"], {"2": nn.Linear(3, 2)}, {}, "exactly the layer names"),
        (["0"], nn.Sequential(nn.Tanh()), {}, "pass embedding_dim"),
        (["0"], nn.Linear(3, 2), {"embedding_dim": 0}, "embedding_dim"),
        (["3"], nn.Linear(3, 2), {}, "padding_mode='reflect'"),
        (["4"], nn.Linear(3, 2), {}, "ConvTranspose3d"),
    ],
)
def test_hyperize_rejects_impossible_arguments(layers, embedding_module, kwargs, message) -> None:
    network = nn.Sequential(
        nn.Conv3d(2, 4, 3),
        nn.ReLU(),
        nn.Conv3d(4, 4, 1, groups=2),
        nn.Conv3d(4, 4, 3, padding=1, padding_mode="reflect"),
        nn.ConvTranspose3d(4, 4, 2),
    )
    with pytest.raises(ValueError, match=message):
        hyperize(network, layers, embedding_module, **kwargs)
    assert isinstance(network[0], nn.Conv3d)


def test_principled_init_from_data_needs_a_fused_model() -> None:
    with pytest.raises(ValueError, match="expects a fused model"):
        principled_init_from_data_(nn.Linear(2, 2), [torch.randn(3, 2)])


def test_hyper_slot_is_a_conditioned_layer() -> None:
    model = hyperize(nn.Sequential(nn.Linear(4, 2)), ["0"], nn.Linear(3, 2))
    assert isinstance(model.network[0], ConditionedLayer) and model.layer_names == ["0"]
