"""Plugins named as modules are found next to the config file first (``plugins: [my_models]``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hyperfusion.plugins import PluginError, import_plugins


def write_plugin(folder: Path, name: str, marker: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(f"import os\nos.environ[{marker!r}] = str(int(os.environ.get({marker!r}, '0')) + 1)\n")
    return path


def test_a_module_name_finds_its_file_beside_the_config(tmp_path, monkeypatch):
    path = write_plugin(tmp_path / "exp", "beside_models_a", "HF_TEST_BESIDE_A")
    monkeypatch.chdir(tmp_path)  # not the config's folder, and the folder is not on sys.path
    monkeypatch.delenv("HF_TEST_BESIDE_A", raising=False)
    files = import_plugins(["beside_models_a"], base=tmp_path / "exp")
    assert files["beside_models_a"]["path"] == str(path.resolve())
    assert os.environ["HF_TEST_BESIDE_A"] == "1"
    again = import_plugins(["beside_models_a"], base=tmp_path / "exp", recorded=files)  # as report reads it
    assert again == files and os.environ["HF_TEST_BESIDE_A"] == "1"  # executed once per process


def test_a_dotted_name_finds_the_file_in_a_subfolder(tmp_path, monkeypatch):
    path = write_plugin(tmp_path / "pkg_b", "models_b", "HF_TEST_BESIDE_B")
    monkeypatch.delenv("HF_TEST_BESIDE_B", raising=False)
    files = import_plugins(["pkg_b.models_b"], base=tmp_path)
    assert files["pkg_b.models_b"]["path"] == str(path.resolve()) and os.environ["HF_TEST_BESIDE_B"] == "1"


def test_a_name_on_sys_path_still_imports_from_there(tmp_path):
    files = import_plugins(["json"], base=tmp_path)
    assert files["json"]["path"] == str(Path(json.__file__).resolve())


def test_a_missing_module_names_the_folder_it_looked_in(tmp_path):
    with pytest.raises(PluginError, match=r"No module named 'no_such_models_c'; no no_such_models_c\.py in"):
        import_plugins(["no_such_models_c"], base=tmp_path)
