"""The AD family: each fused model is the imaging baseline plus its fusion and nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyperfusion.models import create_model
from hyperfusion.nn.hyperize import ConditionedLayer, HyperModel

TINY = {"base_width": 2, "head_hidden": 6, "n_tabular": 5}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(3, 1, 16, 16, 16, generator=g), torch.randn(3, 5, generator=g)


def _neutralise_hyper(model: HyperModel, plain: nn.Module) -> None:
    """Make each hyper layer generate exactly the plain layer's weights, whatever the embedding."""
    with torch.no_grad():
        for name, hyper in model.hyper_layers.items():
            layer = plain.get_submodule(name)
            hyper.weight_head[0].copy_(layer.weight)
            hyper.weight_head[1:].zero_()
            hyper.bias_generator.weight.zero_()
            hyper.bias_generator.bias.copy_(layer.bias)


@pytest.mark.parametrize("name", ["ad-concat", "ad-film", "ad-daft", "ad-hyperfusion"])
def test_fused_model_reduces_to_the_imaging_baseline(name: str) -> None:
    """With the fusion switched off and the trunk weights copied, outputs equal ad-imaging's exactly."""
    torch.manual_seed(0)
    imaging = create_model("ad-imaging", **TINY).eval()
    extra = {"init_std": 0.0} if name in ("ad-film", "ad-daft") else {}
    fused = create_model(name, **TINY, **extra).eval()
    target = fused.network if isinstance(fused, HyperModel) else fused
    state = imaging.state_dict()
    if name == "ad-concat":  # zero tabular columns of fc1
        state["fc1.weight"] = torch.cat([state["fc1.weight"], torch.zeros(6, 5)], dim=1)
    missing, unexpected = target.load_state_dict(state, strict=False)
    assert all(k.startswith(("block4.modulator.", "block4.shortcut.conv.")) for k in missing)
    assert all(k.startswith("block4.shortcut.conv.") for k in unexpected)
    if isinstance(fused, HyperModel):
        _neutralise_hyper(fused, imaging)
    image, tabular = _batch()
    with torch.no_grad():
        torch.testing.assert_close(fused(image, tabular), imaging(image, tabular), rtol=1e-5, atol=1e-6)


def test_hyperfusion_structure_and_reference_shortcut_order() -> None:
    model = create_model("ad-hyperfusion")
    assert model.layer_names == ["block4.shortcut.conv"]
    assert isinstance(model.network.block4.shortcut.conv, ConditionedLayer)
    embedding = model.embeddings[0]
    assert [type(m) for m in embedding] == [nn.Linear, nn.BatchNorm1d, nn.PReLU]
    assert (embedding[0].in_features, embedding[0].out_features) == (16, 8)
    # the authors' block4 (2,953,369) includes the 153-parameter embedding, which lives in model.embeddings here
    assert (
        sum(p.numel() for p in model.network.block4.parameters()) == 2_953_369 - 153 - 256
    )  # BN(128), not BN(256)
    authors = create_model("ad-hyperfusion", last_shortcut_order="conv-norm")
    assert sum(p.numel() for p in authors.parameters()) == 3_853_724  # reference.md §1.1, exactly
    assert sum(p.numel() for p in authors.network.block4.parameters()) == 2_953_369 - 153


def test_hyperfusion_other_layers_get_their_own_embeddings() -> None:
    model = create_model("ad-hyperfusion", **TINY, hyper_layers=["block3.conv1", "fc1"], embedding_dim=3)
    assert model.layer_names == ["block3.conv1", "fc1"] and len(model.embeddings) == 2
    assert model.embeddings[0] is not model.embeddings[1]
    assert isinstance(model.network.block4.shortcut.conv, nn.Conv3d)  # the default layer stays plain
    image, tabular = _batch()
    assert model.eval()(image, tabular).shape == (3, 3)
    with pytest.raises(ValueError, match=r"no submodule named 'block9\.conv1'"):
        create_model("ad-hyperfusion", **TINY, hyper_layers=["block9.conv1"])


def test_hyperfusion_starts_from_a_trained_tabular_model() -> None:
    tabular_model = create_model("ad-tabular", n_tabular=5)
    with torch.no_grad():
        for p in tabular_model.parameters():
            p.add_(1.0)  # stands in for training
    model = create_model("ad-hyperfusion", **TINY, tabular_model=tabular_model)
    copied, source = model.embeddings[0], tabular_model.network.embedding
    for a, b in zip(copied.state_dict().values(), source.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():
        copied[0].weight.zero_()
    assert not torch.equal(source[0].weight, copied[0].weight)  # a copy: the tabular model is untouched
    # the bare TabularMLP is accepted too
    create_model("ad-hyperfusion", **TINY, tabular_model=tabular_model.network)


@pytest.mark.parametrize(
    ("tabular_kwargs", "message"),
    [
        ({"n_tabular": 4}, "n_tabular=5"),
        ({"n_tabular": 5, "hidden": (4,)}, "embedding_dim=8"),
        ({"n_tabular": 5, "hidden": ()}, "no hidden"),
    ],
)
def test_pretrained_embedding_must_fit(tabular_kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("ad-hyperfusion", **TINY, tabular_model=create_model("ad-tabular", **tabular_kwargs))
    with pytest.raises(ValueError, match="ad-tabular model or a TabularMLP"):
        create_model("ad-hyperfusion", **TINY, tabular_model=nn.Linear(5, 8))


def test_late_fusion_uses_given_members() -> None:
    imaging = create_model("ad-imaging", **TINY).eval()
    tabular = create_model("ad-tabular", n_tabular=5).eval()
    fused = create_model("ad-late-fusion", imaging_model=imaging, tabular_model=tabular).eval()
    assert fused.imaging is imaging and fused.tabular is tabular
    image, tab = _batch()
    with torch.no_grad():
        expected = ((imaging(image, tab).softmax(1) + tabular(image, tab).softmax(1)) / 2).log()
        torch.testing.assert_close(fused(image, tab), expected)
    learned = create_model("ad-late-fusion", **TINY, rule="learned")
    assert learned.mixing_logit is not None
