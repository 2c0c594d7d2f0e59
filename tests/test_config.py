"""Run configurations: presets load, and every bad value is refused with the key (and the allowed values) named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hyperfusion.config import ConfigError, config_from_dict, load_config, preset_names
from tests.faults import fault

BASE = {"cohort": "c.yaml", "methods": ["ad-imaging", "ad-hyperfusion"]}


@pytest.mark.parametrize("preset", [p for p in preset_names() if not p.startswith("study")])
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
        ({"bogus": 1}, r"unknown key 'bogus'"),
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
        ({"training": {"learning_rate": 1}}, r"training: unknown key 'learning_rate'"),
        ({"protocol": {"split_seeds": [0, 1, 0]}}, r"protocol.split_seeds: seed\(s\) \[0\] repeated"),
        ({"training": {"warm_start": "imaging"}}, r"training.warm_start: 'imaging' is not allowed"),
        ({"protocol": {"executor": "slurm"}}, r"protocol.executor: 'slurm' is not allowed"),
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
        (
            {"training": {"logger": "mlflw"}},
            r"training.logger: 'mlflw' is not allowed.*did you mean 'mlflow'",
        ),
        (
            {"training": {"logger": "mlflow", "tracking_uri": "sqlit:///m.db"}},
            r"training.tracking_uri: 'sqlit:///m.db' is not a tracking URI \(did you mean 'sqlite'\?\)",
        ),
        (
            {"training": {"logger": "mlflow", "tracking_uri": "sqlite://m.db"}},
            r"training.tracking_uri: 'sqlite://m.db': a SQLite store is sqlite:/// and a path",
        ),
        ({"training": {"logger": "mlflow", "tracking_uri": "http://"}}, r"'http://' names no host"),
        ({"training": {"logger": "mlflow", "tracking_uri": 5}}, r"training.tracking_uri: expected an MLflow"),
        (
            {"training": {"tracking_uri": "http://localhost:5000"}},
            r"training.tracking_uri: .* is an MLflow setting but training.logger is 'csv'",
        ),
        (
            {"training": {"logger": "tensorboard", "experiment": "e"}},
            r"training.experiment: 'e' is an MLflow",
        ),
    ],
)
def test_bad_values_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**BASE, **change})


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match=r"presets: .*ad-demo"):
        load_config("ad-demmo")


@fault(
    "configuration",
    "a misspelt key anywhere in a run config (top level, training, model, model_overrides, ...)",
    "exit status 2 naming the key and the nearest valid one",
)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methds": ["ad-imaging"]}, r"unknown key 'methds'; did you mean 'methods'\?"),
        ({"training": {"epohcs": 3}}, r"training: unknown key 'epohcs'; did you mean 'epochs'\?"),
        ({"model": {"base_widht": 4}}, r"model .*unknown key 'base_widht'; did you mean 'base_width'\?"),
        (
            {"model_overrides": {"ad-hyperfusion": {"embeding_dim": 4}}},
            r"model_overrides.ad-hyperfusion: unknown key 'embeding_dim'; did you mean 'embedding_dim'\?",
        ),
        ({"image": {"voxel": 4}}, r"image: unknown key 'voxel'; did you mean 'voxel_mm'\?"),
    ],
)
def test_unknown_keys_name_the_nearest_valid_key(change, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**BASE, **change})


@fault("configuration", "numbers written like 1e-3 in YAML (a string to YAML 1.1)", "read as the number")
def test_exponent_numbers_written_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("cohort: c.yaml\nmethods: [ad-imaging]\ntraining: {lr: 1e-3, weight_decay: 5e-5}\n")
    assert yaml.safe_load(path.read_text())["training"]["lr"] == "1e-3"  # what YAML itself gives
    config = load_config(path)
    assert config.training.lr == 1e-3 and config.training.weight_decay == 5e-5
    with pytest.raises(ConfigError, match=r"training.lr: expected a number, got 'fast'"):
        config_from_dict({**BASE, "training": {"lr": "fast"}})


PLUGIN = '''
from hyperfusion.models import register_model
from hyperfusion.models.ad import ad_trunk


@register_model(task="classification", fusion="none", uses_image=True, uses_tabular=False,
                input_shape=(1, 16, 16, 16), n_tabular=16, trunk=ad_trunk)
def my_imaging(network, *, n_tabular: int = 16):
    """A user's own model."""
    return network
'''


def test_plugins_register_models_that_run_from_yaml(tmp_path):
    (tmp_path / "my_models.py").write_text(PLUGIN)
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump({"cohort": "c.yaml", "methods": ["my-imaging"], "plugins": ["my_models.py"]})
    )
    config = load_config(path)
    assert config.methods == ("my-imaging",) and config.plugins == ("my_models.py",)
    with pytest.raises(ConfigError, match="plugins: cannot import 'no_such_module'"):
        config_from_dict({**BASE, "plugins": ["no_such_module"]})


@pytest.mark.slow
def test_the_wheel_ships_the_presets(tmp_path):
    """After a normal wheel install `hyperfusion demo` must find its presets: they live inside the package."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[1]
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
    ]
    subprocess.run([*command, str(root)], check=True)
    names = zipfile.ZipFile(next(tmp_path.glob("hyperfusion-*.whl"))).namelist()
    for preset in preset_names():
        assert f"hyperfusion/presets/{preset}.yaml" in names


@fault(
    "configuration",
    "run --epochs 0 (or another command-line override the YAML could not hold)",
    "exit status 2 naming training.epochs before anything is preprocessed; nothing is saved in the run (it failed "
    "after preprocessing and was stored)",
)
def test_a_bad_override_is_refused_before_anything_is_written(tmp_path, capsys):
    from hyperfusion.cli import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(BASE))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--epochs", "0", "--device", "cpu"]) == 2
    assert "training.epochs: must be >= 1, got 0" in capsys.readouterr().err
    assert not out.exists()
    assert main(["run", str(path), "--out", str(out), "--device", "gpu"]) == 2
    assert "training.device: 'gpu' is not a device" in capsys.readouterr().err


@fault(
    "configuration",
    "a learning rate (or any number) of inf or NaN",
    "exit status 2 naming the key: expected a finite number (it trained and failed far from the cause)",
)
def test_non_finite_numbers_are_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("cohort: c.yaml\nmethods: [ad-imaging]\ntraining: {lr: .inf}\n")
    with pytest.raises(ConfigError, match=r"training\.lr: expected a finite number, got inf"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"training\.weight_decay: expected a finite number, got nan"):
        config_from_dict({**BASE, "training": {"weight_decay": "nan"}})


@fault(
    "configuration",
    "training.device misspelt (cpuu)",
    "exit status 2: not a device, with the nearest valid name (it was reported as 'no CUDA GPU')",
)
def test_a_misspelt_device_is_named_as_such():
    with pytest.raises(ConfigError, match=r"training\.device: 'cpuu' is not a device; did you mean 'cpu'\?"):
        config_from_dict({**BASE, "training": {"device": "cpuu"}})
    assert config_from_dict({**BASE, "training": {"device": "cuda:1"}}).training.device == "cuda:1"


@fault(
    "configuration",
    "a config whose plugins lie outside its folder (../, an absolute path)",
    "they are executed as the config says, and docs/config.md says so: a config file and a plugin are code",
)
def test_the_docs_say_a_config_is_code(tmp_path):
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    (elsewhere / "outside_models.py").write_text("import os\nos.environ['HF_OUTSIDE_PLUGIN_RAN'] = '1'\n")
    path = tmp_path / "exp" / "run.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**BASE, "plugins": ["../shared/outside_models.py"]}))
    config = load_config(path)
    assert config.plugin_files["../shared/outside_models.py"]["path"] == str(elsewhere / "outside_models.py")
    import os

    assert os.environ.pop("HF_OUTSIDE_PLUGIN_RAN") == "1"
    docs = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text().lower()
    assert "a config file and a plugin are code" in docs and "a run directory is data" in docs


@fault(
    "configuration",
    "a per-method training setting (method_training) that is misspelt, not per-method, of another method or invalid",
    "exit status 2 naming method_training.<method>.<key> (and the nearest valid name)",
)
@pytest.mark.parametrize(
    ("method_training", "message"),
    [
        (
            {"ad-flim": {"lr": 0.01}},
            r"method_training: 'ad-flim' is not one of the methods \(did you mean 'ad-film'\?\)",
        ),
        ({"ad-film": {"lrr": 0.01}}, r"method_training.ad-film: unknown key 'lrr'; did you mean 'lr'\?"),
        (
            {"ad-film": {"loss": "ce"}},
            r"method_training.ad-film.loss: training.loss is the same for every method",
        ),
        ({"ad-film": {"epochs": 0}}, r"method_training.ad-film.epochs: must be >= 1, got 0"),
        ({"ad-film": {"batch_size": 1}}, r"method_training.ad-film.batch_size: must be >= 2"),
        ({"ad-film": {"lr": "fast"}}, r"method_training.ad-film.lr: expected a number, got 'fast'"),
        ({"ad-film": [1]}, r"method_training: expected a mapping from method name to training settings"),
        (
            {"ad-crop-reader": {"lr": 0.1}},
            r"method_training.ad-crop-reader: ad-crop-reader is fitted in closed form",
        ),
    ],
)
def test_bad_method_training_names_the_method_and_key(method_training, message):
    raw = {**BASE, "methods": ["ad-imaging", "ad-film"], "method_training": method_training}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_method_training_applies_to_its_method_only():
    raw = {**BASE, "methods": ["ad-tabular", "ad-film"], "training": {"lr": 0.001, "epochs": 9}}
    config = config_from_dict({**raw, "method_training": {"ad-film": {"lr": "3e-4", "batch_size": 4}}})
    film, tabular = config.training_for("ad-film"), config.training_for("ad-tabular")
    assert (film.lr, film.batch_size, film.epochs) == (0.0003, 4, 9)
    assert tabular == config.training and tabular.lr == 0.001
    assert config_from_dict(config.to_dict()) == config  # round trip through config.yaml
    assert not config_from_dict(raw).method_training  # absent: every method at `training`


def tuning_of(**film) -> dict:
    entry = {"tuned": True, "budget": 4, "pruned": 1, "default_score": 0.4, "best_score": 0.5, "best_trial": 2,
             "training": {"lr": 0.0003}, "model": {"init_std": 0.1}, **film}  # fmt: skip
    return {
        "metric": "BA",
        "methods": {"ad-film": entry, "ad-crop-reader": {"tuned": False, "why": "closed form"}},
    }


TUNED = {
    **BASE,
    "methods": ["ad-imaging", "ad-film"],
    "method_training": {"ad-film": {"lr": 0.0003}},
    "model_overrides": {"ad-film": {"init_std": 0.1}},
}


def test_a_tuning_section_that_matches_the_settings_loads_and_round_trips():
    config = config_from_dict({**TUNED, "tuning": tuning_of()})
    assert config.tuning["methods"]["ad-film"]["best_score"] == 0.5
    assert config_from_dict(config.to_dict()) == config


@fault(
    "configuration",
    "a tuned.yaml edited after tuning (a best setting changed, or unequal budgets in its tuning section)",
    "exit status 2 naming tuning.methods.<method>.<part>.<key>, both values and the setting",
)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"method_training": {"ad-film": {"lr": 0.001}}},
            r"tuning.methods.ad-film.training.lr: the tuning's best is 0.0003 but the config has 0.001 "
            r"\(method_training.ad-film.lr\)",
        ),
        (
            {"model_overrides": {"ad-film": {"init_std": 1.0}}},
            r"tuning.methods.ad-film.model.init_std: the tuning's best is 0.1 but the config has 1.0",
        ),
    ],
)
def test_a_tuning_section_that_does_not_match_fails_closed(change, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**TUNED, **change, "tuning": tuning_of()})


def test_a_tuning_section_is_checked_whole():
    imaging = {"budget": 3, "pruned": 0, "default_score": 0.3, "best_score": 0.3, "best_trial": 0,
               "training": {}, "model": {}}  # fmt: skip
    unequal = tuning_of()
    unequal["methods"]["ad-imaging"] = imaging
    with pytest.raises(ConfigError, match=r"tuning.methods: unequal budgets \[3, 4\]"):
        config_from_dict({**TUNED, "tuning": unequal})
    missing = tuning_of()
    del missing["methods"]["ad-film"]["best_trial"]
    with pytest.raises(ConfigError, match=r"tuning.methods.ad-film: missing key 'best_trial'"):
        config_from_dict({**TUNED, "tuning": missing})
    with pytest.raises(ConfigError, match=r"tuning.methods.ad-daft: 'ad-daft' is not one of the methods"):
        config_from_dict({**TUNED, "tuning": {"metric": "BA", "methods": {"ad-daft": {"tuned": False}}}})
    with pytest.raises(ConfigError, match=r"tuning: expected \{metric: NAME"):
        config_from_dict({**TUNED, "tuning": {"methods": {}}})
