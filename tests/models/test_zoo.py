"""Every registered model, parametrised over the registry: the shared contract and the paper's parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyperfusion.models import create_model, list_models, model_arguments, model_info

BATCH = 4

ENCODER = 16 * 8 + 8 + 16 + 1  # Linear(16→8) → BatchNorm1d(8) → PReLU, read by every AD fusion

# Exact counts of our models at paper settings, and the authors' counts where they exist.
OURS = {
    "ad-imaging": 3_589_123,
    "ad-crop-reader": 0,  # closed form: PCA basis and coefficients are buffers, fitted, not trained
    "ad-tabular": 180,
    "ad-concat": 3_589_123 + ENCODER + 8 * 64,
    "ad-film": 3_589_123 + ENCODER + 7 * (8 + 256),
    "ad-daft": 3_589_123 + ENCODER + 7 * (128 + 8 + 256),
    "ad-late-fusion": 3_589_123 + 180,
    "ad-hyperfusion": 3_589_123 - 33_024 + 297_369,
    "brainage-imaging": 848_673,
    "brainage-concat": 848_673 + 2 * (16 + 32 + 64 + 1),
    "brainage-hyperfusion": 1_482_206,
    # CNN 215,152 + per hyper linear (E+1)·in·out + (E+1)·out + embedding (2·E + E), E = 2
    "brainage-hyperfusion-2d": 215_152
    + sum(3 * i * o + 3 * o + 6 for i, o in [(39_424, 16), (16, 32), (32, 64), (64, 1)]),
}
AUTHORS = {
    "ad-imaging": 3_589_123,
    "ad-tabular": 180,
    "ad-concat": 3_590_147,
    "ad-film": 3_591_027,
    "ad-daft": 3_591_923,
    "ad-hyperfusion": 3_853_724,
    "brainage-imaging": 848_673,
    "brainage-hyperfusion": 1_482_206,
}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tiny(name: str, *, no_dropout: bool = False) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small instance of a registered model with a random batch it accepts."""
    info = model_info(name)
    accepted = model_arguments(name)
    g = torch.Generator().manual_seed(7)
    if info.task == "classification":
        spatial, n_tab = (16, 24, 16), 5
        wanted = {"base_width": 2, "head_hidden": 8, "n_tabular": n_tab, "input_shape": spatial}
        if no_dropout:
            wanted |= {"block_dropout": (0.0,) * 4, "head_dropout": (0.0, 0.0)}
    else:
        spatial, n_tab = (20, 24, 20), 2
        wanted = {
            "base_width": 2,
            "depth": 2,
            "hidden": (6, 5, 4),
            "input_shape": spatial,
            "n_tabular": n_tab,
        }
        if no_dropout:
            wanted |= {"dropout": 0.0}
    torch.manual_seed(0)
    model = create_model(name, **{k: v for k, v in wanted.items() if k in accepted})
    if info.fit == "closed_form":  # its contract holds once fitted: fit it on a random labelled batch
        views = torch.randn(12, 2, 1, *spatial, generator=g)
        labels = torch.arange(12) % 3
        model.fit([(views, torch.zeros(12, n_tab), labels)], [(views, torch.zeros(12, n_tab), labels)])
    image = torch.randn(BATCH, 1, *spatial, generator=g)
    tabular = torch.randn(BATCH, n_tab, generator=g)
    return model, image, tabular


def test_registry_holds_the_paper_models() -> None:
    assert set(list_models()) == set(OURS)


@pytest.mark.parametrize("name", list_models())
def test_output_shape(name: str) -> None:
    model, image, tabular = tiny(name)
    out = model.eval()(image, tabular)
    expected = (BATCH, 3) if model_info(name).task == "classification" else (BATCH,)
    assert out.shape == expected
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_every_trainable_parameter_gets_a_gradient(name: str) -> None:
    if model_info(name).fit == "closed_form":
        assert count(create_model(name)) == 0  # nothing is trained by gradient
        return
    model, image, tabular = tiny(name, no_dropout=True)
    model.train()(image, tabular).square().mean().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {param_name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name}: {param_name} has an all-zero gradient"


@pytest.mark.parametrize("name", list_models())
def test_output_depends_on_exactly_the_inputs_the_metadata_declares(name: str) -> None:
    info = model_info(name)
    model, image, tabular = tiny(name)
    model.eval()
    with torch.no_grad():
        base = model(image, tabular)
        tab_changed = model(image, tabular + torch.randn_like(tabular))
        img_changed = model(image + torch.randn_like(image), tabular)
    assert ((base - tab_changed).abs().max() > 1e-6) == info.uses_tabular
    assert ((base - img_changed).abs().max() > 1e-6) == info.uses_image
    if not info.uses_tabular:
        assert torch.equal(base, tab_changed)
    if not info.uses_image:
        assert torch.equal(base, img_changed)


@pytest.mark.parametrize("name", list_models())
def test_permuting_the_batch_permutes_the_output(name: str) -> None:
    model, image, tabular = tiny(name)
    model.eval()
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        torch.testing.assert_close(
            model(image[perm], tabular[perm]), model(image, tabular)[perm], rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("name", list_models())
def test_eval_outputs_are_deterministic(name: str) -> None:
    model, image, tabular = tiny(name)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(image, tabular), model(image, tabular))


@pytest.mark.parametrize("name", list_models())
def test_parameter_count_at_paper_settings(name: str) -> None:
    n = count(create_model(name))
    assert n == OURS[name]
    if name in AUTHORS:
        assert abs(n - AUTHORS[name]) <= 0.01 * AUTHORS[name]


@pytest.mark.parametrize("name", list_models())
def test_metadata_is_consistent(name: str) -> None:
    info = model_info(name)
    assert info.name == name and info.description
    assert info.input_shape == ((1, 64, 96, 64) if info.task == "classification" else (1, 90, 120, 99))
    assert info.n_tabular == (16 if info.task == "classification" else 2)
    assert (info.fusion == "hyper") == name.startswith(("ad-hyperfusion", "brainage-hyperfusion"))
    assert model_arguments(name)["n_tabular"] == info.n_tabular
