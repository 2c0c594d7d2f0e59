"""The search space: the same shared settings for every method, the defaults inside it, settings round-trip."""

from __future__ import annotations

from hyperfusion.config import config_from_dict
from hyperfusion.tune import space

METHODS = ["ad-imaging", "ad-tabular", "ad-film", "ad-daft", "ad-hyperfusion"]


def make_config():
    return config_from_dict(
        {
            "cohort": "cohort.yaml",
            "methods": METHODS,
            "model": {"base_width": 4},
            "training": {"epochs": 40, "batch_size": 32, "lr": 0.001, "weight_decay": 1e-5},
        }
    )


def test_every_method_gets_the_same_shared_space():
    config = make_config()
    shared = space.describe(space.shared_space(config))
    for method in METHODS:
        full = space.describe({**space.shared_space(config), **space.method_space(config, method)})
        assert {k: v for k, v in full.items() if k.startswith("training.")} == shared
    assert set(shared) == {"training.lr", "training.epochs", "training.batch_size", "training.weight_decay"}


def test_each_method_has_its_own_knobs():
    config = make_config()
    assert set(space.method_space(config, "ad-tabular")) == {"model.hidden"}
    assert {"model.init_std", "model.film_layers"} <= set(space.method_space(config, "ad-film"))
    assert {"model.init_std", "model.daft_layers"} <= set(space.method_space(config, "ad-daft"))
    assert "model.hyper_layers" in space.method_space(config, "ad-hyperfusion")
    assert "model.head_dropout.0" in space.method_space(config, "ad-imaging")


def test_the_embedding_width_is_the_tabular_members_under_a_warm_start():
    """Warm-started, HyperFusion's embedding is the tabular model's hidden layer: its width is tuned there (for
    every fused method alike), not in HyperFusion's own study; without a warm start it is HyperFusion's knob."""
    config = make_config()
    assert "model.embedding_dim" not in space.method_space(config, "ad-hyperfusion")
    assert space.method_space(config, "ad-tabular")["model.hidden"].choices == ("8", "4", "16")
    cold = config_from_dict(
        {**config.to_dict(), "training": {**config.to_dict()["training"], "warm_start": "none"}}
    )
    assert space.method_space(cold, "ad-hyperfusion")["model.embedding_dim"].choices == (4, 8, 16)


def test_defaults_lie_in_the_space_and_map_back_to_the_config():
    config = make_config()
    for method in METHODS:
        distributions = {**space.shared_space(config), **space.method_space(config, method)}
        values = space.defaults(config, method, distributions)
        for name, value in values.items():
            assert distributions[name]._contains(distributions[name].to_internal_repr(value)), (method, name)
        training, model = space.as_settings(values)
        assert training == {"lr": 0.001, "epochs": 40, "batch_size": 32, "weight_decay": 1e-5}
        if method == "ad-hyperfusion":
            assert model == {
                "head_dropout": [0.6, 0.5],
                "hyper_layers": ["block4.shortcut.conv"],
            }
        if method == "ad-tabular":
            assert model == {"hidden": [8]}
        if method == "ad-film":
            assert model["film_layers"] == ["block4.residual"] and model["init_std"] == 1.0
