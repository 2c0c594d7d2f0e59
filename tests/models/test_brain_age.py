"""The brain-age family: one trunk plus one fusion per model; sex embeddings; the concatenation variants."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.models import create_model
from hyperfusion.nn import ConditionedModel
from tests.faults import fault
from tests.models.trunk_parts import hyperized_names, split_parameters

TINY = {"base_width": 2, "depth": 2, "hidden": (6, 5, 4), "input_shape": (20, 20, 20)}
SEX = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # F, M, F
WIDTHS = [(4 * 2 * 2 * 2, 6), (6, 5), (5, 4), (4, 1)]  # (in, out) of linear1 … final_layer at TINY


def _image() -> torch.Tensor:
    return torch.randn(3, 1, 20, 20, 20, generator=torch.Generator().manual_seed(5))


def _fusion_count(name: str) -> int:
    if name == "brainage-concat":
        return sum(2 * out for _, out in WIDTHS)
    e = 1 if name == "brainage-hyperfusion" else 2
    return sum((e + 1) * i * o + (e + 1) * o + 3 * e for i, o in WIDTHS)


@pytest.mark.parametrize("name", ["brainage-concat", "brainage-hyperfusion", "brainage-hyperfusion-2d"])
def test_fused_model_is_exactly_the_trunk_plus_its_fusion(name: str) -> None:
    torch.manual_seed(0)
    trunk = create_model("brainage-imaging", **TINY)
    torch.manual_seed(0)
    fused = create_model(name, **TINY)
    assert isinstance(fused, ConditionedModel)
    trunk_part, fusion_part = split_parameters(fused)
    expected = {k: v for k, v in trunk.named_parameters() if k not in hyperized_names(fused)}
    assert set(trunk_part) == set(expected)
    assert all(torch.equal(trunk_part[k], v) for k, v in expected.items())
    assert sum(p.numel() for p in fusion_part.values()) == _fusion_count(name)


def test_concat_of_a_zero_vector_is_the_trunk() -> None:
    torch.manual_seed(0)
    trunk = create_model("brainage-imaging", **TINY).eval()
    torch.manual_seed(0)
    fused = create_model("brainage-concat", **TINY).eval()
    assert fused.tabular_encoders == []  # the raw one-hot
    with torch.no_grad():
        torch.testing.assert_close(fused(_image(), torch.zeros(3, 2)), trunk(_image(), SEX))
        assert not torch.allclose(fused(_image(), SEX), trunk(_image(), SEX))


def test_hyperfusion_with_a_zero_embedding_generates_zero_layers() -> None:
    """c_W = c_B = 0: a zero sex vector gives e = 0 and every generated layer outputs 0."""
    fused = create_model("brainage-hyperfusion", **TINY).eval()
    with torch.no_grad():
        assert torch.equal(fused(_image(), torch.zeros(3, 2)), torch.zeros(3))


@pytest.mark.parametrize(("name", "dim"), [("brainage-hyperfusion", 1), ("brainage-hyperfusion-2d", 2)])
def test_all_linear_layers_hyper_with_own_embeddings(name: str, dim: int) -> None:
    model = create_model(name, **TINY)
    assert model.layer_names == ["linear1", "linear2", "linear3", "final_layer"]
    assert len({id(e) for e in model.embeddings}) == 4
    for embedding in model.embeddings:
        assert (embedding.in_features, embedding.out_features) == (2, dim)
        torch.testing.assert_close(embedding(SEX), torch.ones(3, dim))  # e ≡ 1 for a one-hot sex vector


def test_ones_init_starts_sex_independent_and_training_can_separate() -> None:
    model = create_model("brainage-hyperfusion", **TINY).eval()
    image = _image()[:1].expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        out = model(image, SEX[:2])
        assert out[0] == out[1]  # same image, F vs M: identical at initialisation
        model.embeddings[0].weight[0, 0] += 0.5  # what training does to the F weight of linear1's embedding
        out = model(image, SEX[:2])
    assert out[0] != out[1]
    default = create_model("brainage-hyperfusion", **TINY, embedding_init="default").eval()
    with torch.no_grad():
        out = default(image, SEX[:2])
    assert out[0] != out[1]


def test_hyper_layer_subset_and_principled_init() -> None:
    model = create_model("brainage-hyperfusion", **TINY, hyper_layers=["linear2"])
    assert model.layer_names == ["linear2"]
    assert isinstance(model.network.linear1, torch.nn.Linear)
    # unit second moment (e ≡ 1): H_W ~ U(±√(3 / (d_j·d_k))), d_j = 6, d_k = 1
    head = model.hyper_layers["linear2"].weight_head[1:].detach()
    assert head.abs().max() <= (3 / 6) ** 0.5 and head.abs().max() > 0.5 * (3 / 6) ** 0.5


def test_bias_std_reaches_every_layer() -> None:
    model = create_model("brainage-hyperfusion", **TINY, bias_std=0.5)
    assert all(layer.init_bias_variance == 0.25 for layer in model.hyper_layers.values())


def test_concat_variants() -> None:
    full = create_model("brainage-concat", **TINY)
    assert full.slot_names == ["linear1", "linear2", "linear3", "final_layer"]
    authors = create_model("brainage-concat", concat_layers=["linear2"])
    assert sum(p.numel() for p in authors.parameters()) == 848_737  # the authors' concatenation model


@fault(
    "models",
    "brain-age model with an unknown embedding init or a non-positive embedding size",
    "ValueError naming the argument",
)
def test_bad_embedding_arguments() -> None:
    with pytest.raises(ValueError, match="embedding_init"):
        create_model("brainage-hyperfusion", **TINY, embedding_init="zeros")
    with pytest.raises(ValueError, match="embedding_dim"):
        create_model("brainage-hyperfusion", **TINY, embedding_dim=0)
