"""``hyperize`` on a MONAI network and on nn.Sequential, against a hand computation with the generated weights."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import ResNet
from torch import nn

from hyperfusion.nn import ConditionedLayer, HyperConv3d, HyperLinear, HyperModel, hyperize


@pytest.fixture(autouse=True)
def float64_by_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def small_monai_resnet() -> ResNet:
    return ResNet(
        block="basic",
        layers=[1, 1, 1, 1],
        block_inplanes=[4, 6, 8, 8],
        spatial_dims=3,
        n_input_channels=1,
        num_classes=3,
        conv1_t_size=3,
        conv1_t_stride=1,
    )


def per_sample_reference(plain: nn.Module, model: HyperModel, image, tabular) -> torch.Tensor:
    """Copy each sample's generated weights into a plain copy of the network and run that sample alone."""
    embeddings = model.embed(tabular)
    outputs = []
    for b in range(image.shape[0]):
        network = copy.deepcopy(plain)
        for name, layer in model.hyper_layers.items():
            weight, bias = layer.generate(embeddings[name][b : b + 1])
            target = network.get_submodule(name)
            with torch.no_grad():
                target.weight.copy_(weight[0])
                if bias is not None:
                    target.bias.copy_(bias[0])
        outputs.append(network(image[b : b + 1]))
    return torch.cat(outputs)


def sync_other_parameters(plain: nn.Module, hyper_network: nn.Module) -> None:
    """The plain copy gets the hyperized network's non-hyper parameters and buffers (BN statistics)."""
    hyper_state = hyper_network.state_dict()
    with torch.no_grad():
        for name, tensor in plain.state_dict().items():
            if name in hyper_state:
                tensor.copy_(hyper_state[name])


def test_hyperize_monai_resnet_equals_hand_computation():
    torch.manual_seed(0)
    plain = small_monai_resnet()
    layers = ["fc", "layer3.0.conv1", "layer4.0.downsample.0"]
    assert isinstance(plain.get_submodule("layer4.0.downsample.0"), nn.Conv3d)
    model = hyperize(
        copy.deepcopy(plain),
        layers,
        nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.PReLU()),
        embedding_variance=0.8,
    )
    kinds = {name: type(layer) for name, layer in model.hyper_layers.items()}
    assert kinds == {"fc": HyperLinear, "layer3.0.conv1": HyperConv3d, "layer4.0.downsample.0": HyperConv3d}
    model.eval()
    # non-trivial BN statistics, shared with the reference copy
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    sync_other_parameters(plain, model.network)
    plain.eval()
    image = torch.randn(3, 1, 12, 10, 11)
    tabular = torch.randn(3, 5)
    out = model(image, tabular)
    assert out.shape == (3, 3)
    torch.testing.assert_close(out, per_sample_reference(plain, model, image, tabular))


def test_hyperize_sequential_with_one_embedding_per_layer():
    torch.manual_seed(1)
    plain = nn.Sequential(
        nn.Conv3d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(3, 4, 1, stride=2),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    embeddings = {"2": nn.Linear(6, 3), "5": nn.Sequential(nn.Linear(6, 2), nn.Tanh())}
    model = hyperize(copy.deepcopy(plain), ["2", "5"], embeddings)
    assert not model.shared_embedding
    assert model.hyper_layers["2"].embedding_dim == 3
    assert model.hyper_layers["5"].embedding_dim == 2
    sync_other_parameters(plain, model.network)
    image, tabular = torch.randn(4, 1, 6, 5, 7), torch.randn(4, 6)
    torch.testing.assert_close(model(image, tabular), per_sample_reference(plain, model, image, tabular))
    # every parameter (embeddings, heads, plain layers) gets a gradient
    model(image, tabular).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_shared_embedding_runs_once_per_forward():
    calls = []
    embedding = nn.Linear(3, 2)
    embedding.register_forward_hook(lambda *_: calls.append(1))
    model = hyperize(nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.Linear(4, 1)), ["1", "2"], embedding)
    model(torch.randn(5, 8), torch.randn(5, 3))
    assert len(calls) == 1


def test_keep_layer_weights_starts_from_the_plain_layer():
    torch.manual_seed(2)
    plain = nn.Sequential(nn.Linear(6, 3))
    model = hyperize(copy.deepcopy(plain), ["0"], nn.Linear(2, 4), keep_layer_weights=True)
    layer = model.hyper_layers["0"]
    with torch.no_grad():
        layer.weight_head[1:].zero_()
        layer.bias_generator.weight.zero_()
    x = torch.randn(5, 6)
    torch.testing.assert_close(model(x, torch.randn(5, 2)), plain(x))


def test_calling_the_inner_network_without_tabular_is_an_error():
    model = hyperize(nn.Sequential(nn.Linear(4, 2)), ["0"], nn.Linear(3, 2))
    assert isinstance(model.network[0], ConditionedLayer)
    with pytest.raises(RuntimeError, match="without an embedding"):
        model.network(torch.randn(2, 4))
    # the embedding is cleared even when the network raises
    with pytest.raises(ValueError):
        model(torch.randn(2, 5), torch.randn(2, 3))
    assert model.network[0].embedding is None


@pytest.mark.parametrize(
    ("layers", "embedding", "kwargs", "message"),
    [
        ([], nn.Linear(3, 2), {}, "at least one"),
        (["0", "0"], nn.Linear(3, 2), {}, "repeated"),
        (["missing"], nn.Linear(3, 2), {}, "no submodule named 'missing'"),
        (["1"], nn.Linear(3, 2), {}, "ReLU"),
        (["0"], {"2": nn.Linear(3, 2)}, {}, "exactly the layer names"),
        (["0"], nn.Sequential(nn.Tanh()), {}, "pass embedding_dim"),
        (["0"], nn.Linear(3, 2), {"embedding_dim": 0}, "embedding_dim"),
        (["2"], nn.Linear(3, 2), {}, "groups=2"),
    ],
)
def test_hyperize_rejects_impossible_arguments(layers, embedding, kwargs, message):
    network = nn.Sequential(nn.Conv3d(2, 4, 3), nn.ReLU(), nn.Conv3d(4, 4, 1, groups=2))
    with pytest.raises(ValueError, match=message):
        hyperize(network, layers, embedding, **kwargs)


def test_batch_mismatch_between_image_and_tabular():
    model = hyperize(nn.Sequential(nn.Linear(4, 2)), ["0"], nn.Linear(3, 2))
    with pytest.raises(ValueError, match="does not match"):
        model(torch.randn(2, 4), torch.randn(3, 3))
