"""The AD family: one trunk plus one fusion per model, the same tabular encoder for every fusion, warm starts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyperfusion.models import create_model, model_arguments
from hyperfusion.nn import ConditionedLayer, ConditionedModel, tabular_encoders, warm_start_
from tests.faults import fault
from tests.models.trunk_parts import hyperized_names, split_parameters

TINY = {"base_width": 2, "head_hidden": 6, "n_tabular": 5}
FUSED = ["ad-concat", "ad-film", "ad-daft", "ad-hyperfusion"]
C = 16  # block4's input channels at base width 2


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(3, 1, 16, 16, 16, generator=g), torch.randn(3, 5, generator=g)


def _encoder_count(n_tabular: int = 5, width: int = 8) -> int:
    return n_tabular * width + width + 2 * width + 1  # Linear + BatchNorm1d + one PReLU slope


def _fusion_count(name: str, encoder: bool = True) -> int:
    width = 8 if encoder else 5
    own = {
        "ad-concat": width * 6,  # the new columns of fc1 (6 outputs)
        "ad-film": 7 * (width + 2 * C),
        "ad-daft": 7 * (C + width + 2 * C),
        # (E+1)·out·in heads + bias generator, minus nothing here (the plain conv is counted on the trunk side)
        "ad-hyperfusion": (width + 1) * 2 * C * C + (width + 1) * 2 * C,
    }[name]
    return own + (_encoder_count() if encoder else 0)


@pytest.mark.parametrize("encoder", ["mlp", "none"])
@pytest.mark.parametrize("name", FUSED)
def test_fused_model_is_exactly_the_trunk_plus_its_fusion(name: str, encoder: str) -> None:
    """Same names, shapes and (same seed) values as ad-imaging, plus the fusion's parameters and nothing else."""
    torch.manual_seed(0)
    trunk = create_model("ad-imaging", **TINY)
    torch.manual_seed(0)
    fused = create_model(name, **TINY, tabular_encoder=encoder)
    assert isinstance(fused, ConditionedModel)
    trunk_part, fusion_part = split_parameters(fused)
    expected = {k: v for k, v in trunk.named_parameters() if k not in hyperized_names(fused)}
    assert set(trunk_part) == set(expected)
    for key, value in expected.items():
        assert torch.equal(trunk_part[key], value), key
    assert sum(p.numel() for p in fusion_part.values()) == _fusion_count(name, encoder == "mlp")
    assert len(tabular_encoders(fused)) == (encoder == "mlp")


@pytest.mark.parametrize(
    ("name", "extra"),
    [("ad-concat", {}), ("ad-film", {}), ("ad-daft", {"init_std": 0.0}), ("ad-film", {"init_std": 0.0})],
)
def test_fused_model_with_a_neutral_condition_is_the_trunk(name: str, extra: dict) -> None:
    """At initialisation: concat and FiLM with a zero raw condition, DAFT (and FiLM) with W₂ = 0, equal the trunk."""
    torch.manual_seed(0)
    trunk = create_model("ad-imaging", **TINY).eval()
    torch.manual_seed(0)
    fused = create_model(name, **TINY, tabular_encoder="none", **extra).eval()
    image, tabular = _batch()
    condition = tabular if extra else torch.zeros_like(tabular)
    with torch.no_grad():
        torch.testing.assert_close(fused(image, condition), trunk(image, condition), rtol=1e-6, atol=1e-7)
        if not extra:  # while a non-zero condition does change the output
            assert not torch.allclose(fused(image, tabular), trunk(image, tabular))


def test_hyperfusion_with_a_zero_embedding_drops_its_shortcut() -> None:
    """c_W = c_B = 0 at the paper's initialisation: e = 0 generates a zero shortcut convolution."""
    torch.manual_seed(0)
    trunk = create_model("ad-imaging", **TINY).eval()
    torch.manual_seed(0)
    fused = create_model("ad-hyperfusion", **TINY, tabular_encoder="none", residual_scale=None).eval()
    with torch.no_grad():
        trunk.block4.shortcut.conv.weight.zero_()
        trunk.block4.shortcut.conv.bias.zero_()
        image, _ = _batch()
        zero = torch.zeros(3, 5)
        torch.testing.assert_close(fused(image, zero), trunk(image, zero), rtol=1e-6, atol=1e-7)


def test_default_hyperfusion_with_a_zero_embedding_is_its_imaging_trunk() -> None:
    """The residual default: c_W, c_B are the trunk's own shortcut, so e = 0 reproduces the imaging model."""
    torch.manual_seed(0)
    trunk = create_model("ad-imaging", **TINY).eval()
    torch.manual_seed(0)
    fused = create_model("ad-hyperfusion", **TINY, tabular_encoder="none").eval()
    image, tabular = _batch()
    with torch.no_grad():
        zero = torch.zeros(3, 5)
        torch.testing.assert_close(fused(image, zero), trunk(image, zero), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(fused(image, tabular), trunk(image, tabular))


def test_every_fusion_reads_the_tabular_models_hidden_layer_by_default() -> None:
    tabular = create_model("ad-tabular", n_tabular=5)
    for name in FUSED:
        model = create_model(name, **TINY)
        (encoder,) = tabular_encoders(model)
        assert [type(m) for m in encoder] == [type(m) for m in tabular.network.embedding]
        assert {k: v.shape for k, v in encoder.state_dict().items()} == {
            k: v.shape for k, v in tabular.network.embedding.state_dict().items()
        }


@pytest.mark.parametrize("name", FUSED)
def test_warm_start_from_a_trained_tabular_model(name: str) -> None:
    tabular = create_model("ad-tabular", n_tabular=5)
    with torch.no_grad():
        for p in tabular.parameters():
            p.add_(1.0)  # stands in for training
    model = create_model(name, **TINY)
    warm_start_(model, tabular.network.embedding)
    for key, value in tabular.network.embedding.state_dict().items():
        assert torch.equal(model.encoders[0].state_dict()[key], value)
    image, tab = _batch()
    assert model.eval()(image, tab).shape == (3, 3)


def test_hyperfusion_structure_and_authors_shortcut_order() -> None:
    model = create_model("ad-hyperfusion")
    assert model.layer_names == ["block4.shortcut.conv"]
    assert isinstance(model.network.block4.shortcut.conv, ConditionedLayer)
    embedding = model.embeddings[0]
    assert [type(m) for m in embedding] == [nn.Linear, nn.BatchNorm1d, nn.PReLU]
    assert (embedding[0].in_features, embedding[0].out_features) == (16, 8)
    # the authors' block4 (2,953,369) includes the 153-parameter embedding, which lives in model.encoders here
    assert sum(p.numel() for p in model.network.block4.parameters()) == 2_953_369 - 153 - 256  # BN(128)
    authors = create_model("ad-hyperfusion", last_shortcut_order="conv-norm")
    assert sum(p.numel() for p in authors.parameters()) == 3_853_724  # the authors' model, exactly
    assert sum(p.numel() for p in authors.network.block4.parameters()) == 2_953_369 - 153


def test_other_layers_and_shared_encoders() -> None:
    layers = ["block3.residual.conv1", "fc1"]
    model = create_model("ad-hyperfusion", **TINY, hyper_layers=layers, embedding_dim=3)
    assert model.layer_names == layers and len(model.encoders) == 2
    assert isinstance(model.network.block4.shortcut.conv, nn.Conv3d)  # the default layer stays plain
    shared = create_model("ad-hyperfusion", **TINY, hyper_layers=layers, shared_encoder=True)
    assert len(shared.encoders) == 1 and shared.shared_embedding
    film = create_model("ad-film", **TINY, film_layers=["block3.residual", "block4.residual"])
    assert len(film.encoders) == 2 and film.slot("block3.residual").modulator.num_channels == 8
    image, tabular = _batch()
    for fused in (model, shared, film):
        assert fused.eval()(image, tabular).shape == (3, 3)


def test_bias_std_sets_the_generated_bias_scale() -> None:
    torch.manual_seed(0)
    model = create_model("ad-hyperfusion", **TINY, bias_std=0.1, tabular_encoder="none", residual_scale=None)
    _, bias = model.hyper_layers["block4.shortcut.conv"].generate(torch.randn(512, 5))
    assert float(bias.detach().std()) == pytest.approx(0.1, rel=0.1)
    assert model.hyper_layers["block4.shortcut.conv"].init_bias_variance == pytest.approx(0.01)


def test_late_fusion_uses_given_members_and_weight() -> None:
    imaging = create_model("ad-imaging", **TINY).eval()
    tabular = create_model("ad-tabular", n_tabular=5).eval()
    fused = create_model("ad-late-fusion", imaging_model=imaging, tabular_model=tabular).eval()
    assert fused.imaging is imaging and fused.tabular is tabular
    image, tab = _batch()
    with torch.no_grad():
        expected = ((imaging(image, tab).softmax(1) + tabular(image, tab).softmax(1)) / 2).log()
        torch.testing.assert_close(fused(image, tab), expected)
    learned = create_model("ad-late-fusion", **TINY, rule="learned", weight=0.8)
    assert learned.imaging_weight.item() == pytest.approx(0.8)
    assert not any(p is learned.imaging_weight for p in learned.parameters())
    assert "weight" in model_arguments("ad-late-fusion")


@fault(
    "models",
    "AD fusion with an unknown tabular encoder, a negative bias_std or an unknown layer",
    "ValueError naming the value",
)
@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("ad-film", {"tabular_encoder": "transformer"}, "tabular_encoder must be one of"),
        ("ad-hyperfusion", {"bias_std": -1.0}, "bias_std"),
        ("ad-hyperfusion", {"hyper_layers": ["block9.residual.conv1"]}, r"'block9\.residual\.conv1'"),
        ("ad-concat", {"concat_layers": ["block4"]}, "concat needs an nn.Linear"),
        ("ad-daft", {"daft_layers": ["block4.nothing"]}, r"'block4\.nothing'"),
    ],
)
def test_bad_fusion_arguments(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model(name, **TINY, **kwargs)
