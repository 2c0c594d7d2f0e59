"""Run configurations: presets load, and every bad value is refused with the key (and the allowed values) named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hyperfusion.config import ConfigError, config_from_dict, load_config

BASE = {"cohort": "c.yaml", "methods": ["ad-imaging", "ad-hyperfusion"]}


@pytest.mark.parametrize("preset", ["ad-demo", "ad-paper", "brain-age-demo", "brain-age-paper"])
def test_presets_load(preset):
    config = load_config(preset)
    assert config.reference_method.endswith("hyperfusion")
    assert config.reference_method in config.methods


def test_defaults_and_round_trip():
    config = config_from_dict(BASE)
    assert config.reference_method == "ad-hyperfusion"
    assert config.protocol.folds == 4 and config.training.loss == "weighted_ce"
    assert config_from_dict(config.to_dict()) == config


def test_relative_cohort_is_resolved_against_the_config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert Path(load_config(path).cohort) == (tmp_path / "c.yaml").resolve()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bogus": 1}, r"unknown key\(s\) \['bogus'\]"),
        ({"methods": []}, "methods: expected a non-empty list"),
        ({"methods": ["ad-imaging", "ad-nope"]}, "methods: unknown model 'ad-nope'"),
        ({"reference_method": "ad-film"}, "reference_method: 'ad-film' is not one of the methods"),
        (
            {"training": {"loss": "focal"}},
            r"training.loss: 'focal' is not allowed; choose one of \['weighted_ce'",
        ),
        ({"training": {"epochs": "ten"}}, "training.epochs: expected an integer"),
        ({"training": {"batch_size": 1}}, "training.batch_size"),
        ({"training": {"lr": 0}}, "training.lr"),
        ({"training": {"learning_rate": 1}}, r"training: unknown key\(s\) \['learning_rate'\]"),
        (
            {"image": {"mode": "slab"}},
            r"image.mode: 'slab' is not allowed; choose one of \['hippocampus', 'box'\]",
        ),
        ({"image": {"shape": [16, 16]}}, "image.shape"),
        ({"protocol": {"folds": 5}}, "protocol.folds: must be between 1 and n_partitions - 1 = 4"),
        ({"protocol": {"split_seeds": []}}, "protocol.split_seeds"),
        ({"protocol": {"val_fraction": 0.7}}, "protocol.val_fraction"),
        ({"tabular": {"impute": "mice"}}, r"tabular.impute: 'mice' is not allowed"),
        ({"model_overrides": {"ad-film": {}}}, "model_overrides: 'ad-film' is not one of the methods"),
    ],
)
def test_bad_values_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**BASE, **change})


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match=r"presets: .*ad-demo"):
        load_config("ad-demmo")
