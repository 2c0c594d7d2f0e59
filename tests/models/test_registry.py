"""The registry: lookup, filters, argument routing between trunk and fusion, and registration errors."""

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
from hyperfusion.models.ad import ad_trunk
from hyperfusion.models.registry import family_member
from tests.faults import fault


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
    assert args["bias_std"] == 1.0 and args["tabular_encoder"] == "mlp" and "tabular_model" not in args
    assert model_arguments("brainage-hyperfusion-2d")["embedding_dim"] == 2
    assert model_arguments("ad-film")["init_std"] == 1.0


def test_arguments_list_the_trunk_then_the_fusion() -> None:
    trunk = list(model_arguments("ad-imaging"))
    assert trunk[:2] == ["n_classes", "in_channels"] and trunk[-1] == "n_tabular"
    film = model_arguments("ad-film")
    assert list(film)[: len(trunk) - 1] == trunk[:-1]
    assert {"bottleneck", "init_std", "film_layers", "tabular_encoder", "shared_encoder"} <= set(film)
    assert "input_shape" in model_arguments("brainage-concat")
    # late fusion's tabular member needs n_classes, which the trunk takes too: one entry, one default
    assert model_arguments("ad-late-fusion")["n_classes"] == 3


def test_create_model_routes_each_keyword() -> None:
    model = create_model("ad-film", base_width=2, n_classes=4, bottleneck=3, n_tabular=5)
    assert model.network.block1.residual.conv1.out_channels == 4  # trunk: base_width
    assert model.network.fc2.out_features == 4  # trunk: n_classes
    assert model.slot("block4.residual").modulator.generator[0].out_features == 3  # fusion: bottleneck
    late = create_model("ad-late-fusion", base_width=2, n_classes=4)
    assert late.tabular.network.classifier.out_features == 4  # a shared keyword reaches both


def test_unknown_name_lists_the_models() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'ad-resnet'.*ad-imaging"):
        create_model("ad-resnet")
    with pytest.raises(ValueError, match="unknown model"):
        model_info("nope")


@fault("models", "an argument the model does not take", "ValueError listing the accepted ones")
def test_unknown_argument_is_named() -> None:
    with pytest.raises(ValueError, match=r"no argument.*'width'.*base_width"):
        create_model("ad-imaging", width=4)
    with pytest.raises(ValueError, match=r"no argument.*'tabular_model'"):
        create_model("ad-hyperfusion", tabular_model=None)


@fault("models", "register_model with contradictory metadata", "ValueError naming the field")
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


def test_register_a_user_fusion_on_a_family_trunk(scratch_registry: None) -> None:
    """A user's model built on the AD trunk: its keywords and the trunk's are routed and listed."""
    from hyperfusion.nn import film

    @register_model(
        task="classification",
        fusion="intermediate",
        uses_image=True,
        uses_tabular=True,
        input_shape=(1, 64, 96, 64),
        n_tabular=16,
        trunk=ad_trunk,
    )
    def my_film_everywhere(network: nn.Module, *, n_tabular: int = 16, bottleneck: int = 4) -> nn.Module:
        """FiLM on every block's main path."""
        names = [f"block{i}.residual" for i in range(1, network.depth + 1)]
        return film(network, names, n_tabular, bottleneck=bottleneck)

    args = model_arguments("my-film-everywhere")
    assert args["base_width"] == 16 and args["bottleneck"] == 4
    model = create_model("my-film-everywhere", base_width=2, depth=2, n_tabular=3)
    assert model.slot_names == ["block1.residual", "block2.residual"]


@fault(
    "models", "register_model with a factory that does not fit its trunk", "ValueError naming the argument"
)
def test_register_refuses_a_factory_that_does_not_fit_its_trunk(scratch_registry: None) -> None:
    meta = dict(
        task="classification",
        fusion="none",
        uses_image=True,
        uses_tabular=False,
        input_shape=(1, 8, 8, 8),
        n_tabular=3,
    )

    def no_network(*, n_tabular: int = 3) -> nn.Module:
        return nn.Identity()

    def other_default(network: nn.Module, *, n_classes: int = 5) -> nn.Module:
        return network

    with pytest.raises(ValueError, match="network as its first argument"):
        register_model(**meta, trunk=ad_trunk)(no_network)
    with pytest.raises(ValueError, match="'n_classes' defaults to 5 but the trunk's to 3"):
        register_model(**meta, trunk=ad_trunk)(other_default)
    with pytest.raises(ValueError, match="trunk must be a callable"):
        register_model(**meta, trunk="resnet")(other_default)  # type: ignore[arg-type]


def test_family_members_are_found_by_metadata_not_names(scratch_registry: None) -> None:
    assert model_info("ad-film").family == "ad" and model_info("brainage-concat").family == "brainage"
    assert family_member("ad-hyperfusion", "imaging") == "ad-imaging"
    assert family_member("ad-hyperfusion", "tabular") == "ad-tabular"
    assert family_member("ad-hyperfusion", "reader") == "ad-crop-reader"
    assert family_member("brainage-hyperfusion", "imaging") == "brainage-imaging"
    assert family_member("brainage-hyperfusion", "reader") is None
    meta = dict(task="regression", input_shape=(1, 8, 8, 8), n_tabular=3, family="toy")

    @register_model(fusion="none", uses_image=True, uses_tabular=False, **meta)
    def scan_net(*, n_tabular: int = 3) -> nn.Module:
        return nn.Identity()

    @register_model(fusion="none", uses_image=False, uses_tabular=True, **meta)
    def record_net(*, n_tabular: int = 3) -> nn.Module:
        return nn.Identity()

    @register_model(fusion="intermediate", uses_image=True, uses_tabular=True, **meta)
    def both_net(*, n_tabular: int = 3) -> nn.Module:
        return nn.Identity()

    # names that share no prefix with their family: found all the same
    assert family_member("both-net", "imaging") == "scan-net"
    assert family_member("both-net", "tabular") == "record-net"
    assert family_member("both-net", "reader") is None
    assert model_info("both-net").family == "toy"


def test_a_model_without_a_family_is_a_family_of_one(scratch_registry: None) -> None:
    @register_model(task="regression", fusion="none", uses_image=False, uses_tabular=True,
                    input_shape=(1, 8, 8, 8), n_tabular=3)  # fmt: skip
    def lone_model(*, n_tabular: int = 3) -> nn.Module:
        return nn.Identity()

    assert model_info("lone-model").family == "lone-model"
    assert family_member("lone-model", "imaging") is None


def test_the_neutral_cls3d_alias_names_every_ad_model_and_nothing_else():
    from hyperfusion.models.registry import canonical_name, list_models, model_info

    ad = [m for m in list_models() if m.startswith("ad-")]
    assert ad and all(canonical_name("cls3d-" + m[3:]) == m for m in ad)
    assert model_info("cls3d-hyperfusion").name == "ad-hyperfusion"
    assert canonical_name("cls3d-no-such-model") == "cls3d-no-such-model"  # left for the unknown-name error
    assert canonical_name("brainage-imaging") == "brainage-imaging"


def test_a_config_naming_cls3d_models_records_the_registered_names(tmp_path):
    from hyperfusion.config import config_from_dict

    raw = {
        "cohort": "c.yaml",
        "methods": ["cls3d-imaging", "cls3d-hyperfusion"],
        "model_overrides": {"cls3d-imaging": {"base_width": 4}},
    }
    config = config_from_dict(raw, source="t.yaml", base=tmp_path)
    assert config.methods[0] == "ad-imaging" and "ad-hyperfusion" in config.methods
    assert config.reference_method == "ad-hyperfusion"
    assert dict(config.model_overrides["ad-imaging"]) == {"base_width": 4}
