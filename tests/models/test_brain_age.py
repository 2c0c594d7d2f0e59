"""The brain-age family: sex embeddings, the concatenation variants, and reduction to the imaging baseline."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.models import create_model
from hyperfusion.nn.hyperize import HyperModel

TINY = {"base_width": 2, "depth": 2, "hidden": (6, 5, 4), "input_shape": (20, 20, 20)}
SEX = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # F, M, F


def _image() -> torch.Tensor:
    return torch.randn(3, 1, 20, 20, 20, generator=torch.Generator().manual_seed(5))


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


def test_hyperfusion_reduces_to_the_imaging_baseline() -> None:
    torch.manual_seed(0)
    imaging = create_model("brainage-imaging", **TINY).eval()
    fused = create_model("brainage-hyperfusion", **TINY).eval()
    missing, unexpected = fused.network.load_state_dict(imaging.state_dict(), strict=False)
    assert {k.split(".")[0] for k in missing} == {"linear1", "linear2", "linear3", "final_layer"}
    assert {k.split(".")[0] for k in unexpected} == {"linear1", "linear2", "linear3", "final_layer"}
    with torch.no_grad():
        for name, hyper in fused.hyper_layers.items():
            plain = imaging.get_submodule(name)
            hyper.weight_head[0].copy_(plain.weight)
            hyper.weight_head[1:].zero_()
            hyper.bias_generator.weight.zero_()
            hyper.bias_generator.bias.copy_(plain.bias)
        torch.testing.assert_close(fused(_image(), SEX), imaging(_image(), SEX), rtol=1e-5, atol=1e-6)


def test_hyper_layer_subset_and_principled_init() -> None:
    model = create_model("brainage-hyperfusion", **TINY, hyper_layers=["linear2"])
    assert model.layer_names == ["linear2"]
    assert isinstance(model, HyperModel) and isinstance(model.network.linear1, torch.nn.Linear)
    # unit second moment (e ≡ 1): H_W ~ U(±√(3 / (d_j·d_k))), d_j = 6, d_k = 1
    head = model.hyper_layers["linear2"].weight_head[1:]
    assert head.abs().max() <= (3 / 6) ** 0.5 and head.abs().max() > 0.5 * (3 / 6) ** 0.5


def test_concat_variants() -> None:
    full = create_model("brainage-concat", **TINY)
    assert full.concat_layers == ("linear1", "linear2", "linear3", "final_layer")
    authors = create_model("brainage-concat", concat_layers=["linear2"])
    assert sum(p.numel() for p in authors.parameters()) == 848_737  # reference.md §1.3


def test_bad_embedding_arguments() -> None:
    with pytest.raises(ValueError, match="embedding_init"):
        create_model("brainage-hyperfusion", **TINY, embedding_init="zeros")
    with pytest.raises(ValueError, match="embedding_dim"):
        create_model("brainage-hyperfusion", **TINY, embedding_dim=0)
