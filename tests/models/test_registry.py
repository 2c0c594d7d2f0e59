"""The registry: lookup, filters, argument checking and registration errors."""

from __future__ import annotations

import pytest
from torch import nn

from hyperfusion.models import (
    create_model,
    list_models,
    model_arguments,
    model_info,
    register_model,
    registry,
)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations in a test do not leak into the package registry."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_filters() -> None:
    assert list_models(task="regression") == [
        "brainage-concat",
        "brainage-hyperfusion",
        "brainage-hyperfusion-2d",
        "brainage-imaging",
    ]
    assert list_models(fusion="hyper") == [
        "ad-hyperfusion",
        "brainage-hyperfusion",
        "brainage-hyperfusion-2d",
    ]
    assert list_models(task="classification", fusion="late") == ["ad-late-fusion"]
    assert list_models(fusion="early") == []
    assert list_models() == sorted(list_models())


def test_info_flags() -> None:
    assert (model_info("ad-imaging").uses_image, model_info("ad-imaging").uses_tabular) == (True, False)
    assert (model_info("ad-tabular").uses_image, model_info("ad-tabular").uses_tabular) == (False, True)
    assert model_info("ad-daft").fusion == "intermediate"
    assert model_info("brainage-hyperfusion").task == "regression"


def test_arguments_are_the_paper_defaults() -> None:
    args = model_arguments("ad-hyperfusion")
    assert args["base_width"] == 16 and args["embedding_dim"] == 8 and args["bn_momentum"] == 0.05
    assert model_arguments("brainage-hyperfusion-2d")["embedding_dim"] == 2


def test_unknown_name_lists_the_models() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'ad-resnet'.*ad-imaging"):
        create_model("ad-resnet")
    with pytest.raises(ValueError, match="unknown model"):
        model_info("nope")


def test_unknown_argument_is_named() -> None:
    with pytest.raises(ValueError, match=r"no argument.*'width'.*base_width"):
        create_model("ad-imaging", width=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "segmentation"}, "task"),
        ({"fusion": "mid"}, "fusion"),
        ({"uses_image": False, "uses_tabular": False}, "must use"),
        ({"fusion": "none"}, "contradicts"),
        ({"fusion": "late", "uses_tabular": False}, "contradicts"),
    ],
)
def test_register_rejects_bad_metadata(kwargs: dict, message: str) -> None:
    meta = dict(
        task="classification",
        fusion="intermediate",
        uses_image=True,
        uses_tabular=True,
        input_shape=(1, 8, 8, 8),
        n_tabular=3,
    )
    with pytest.raises(ValueError, match=message):
        register_model(**(meta | kwargs))


def test_register_and_create_a_user_model(scratch_registry: None) -> None:
    @register_model(
        task="regression",
        fusion="none",
        uses_image=False,
        uses_tabular=True,
        input_shape=(1, 8, 8, 8),
        n_tabular=3,
    )
    def my_linear_model(*, n_tabular: int = 3) -> nn.Module:
        """A linear model.

        More text.
        """
        return nn.Linear(n_tabular, 1)

    assert "my-linear-model" in list_models()
    assert model_info("my-linear-model").description == "A linear model."
    assert create_model("my-linear-model", n_tabular=4).in_features == 4
    with pytest.raises(ValueError, match="already registered"):
        register_model(
            task="regression",
            fusion="none",
            uses_image=False,
            uses_tabular=True,
            input_shape=(1, 8, 8, 8),
            n_tabular=3,
        )(my_linear_model)


def test_filter_errors() -> None:
    with pytest.raises(ValueError, match="task"):
        list_models(task="detection")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fusion"):
        list_models(fusion="sideways")  # type: ignore[arg-type]
