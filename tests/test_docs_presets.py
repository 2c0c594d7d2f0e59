"""The numbers the docs state about shipped presets are the presets' numbers.

Each claim below quotes the docs' sentence (it must still be there, word for word) and checks it against the
preset as loaded. A preset edited without its sentence, or a sentence edited without its preset, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hyperfusion.commands.demo as demo_command
from hyperfusion.config import load_config
from hyperfusion.run.runner import plan_of
from hyperfusion.study import load_study

ROOT = Path(__file__).resolve().parents[1]
LOCATION_STUDIES = ("study-cpu", "study-cpu-1200", "study-cpu-dose", "study-gpu")


def _text(name: str) -> str:
    return " ".join((ROOT / name).read_text().split())  # sentences wrap across lines


def _simulate(preset: str) -> dict:
    if preset.startswith("study-"):
        return dict(load_study(preset).base.simulate or {})
    return dict(load_config(preset).simulate or {})


def test_the_brain_age_demo_is_what_simulate_md_says():
    text = _text("docs/simulate.md")
    sentence = "The CPU demo (`brain-age-demo`) therefore uses λ = 0.5 and variability 0.15"
    assert sentence in text
    simulate = _simulate("brain-age-demo")
    assert (simulate["interaction"], simulate["variability"]) == (0.5, 0.15)
    assert "a CNN without them memorises 192 training subjects" in text
    protocol = load_config("brain-age-demo").protocol
    assert round(simulate["n"] * (1 - protocol.val_fraction - protocol.test_fraction)) == 192
    training = load_config("brain-age-demo").training
    assert training.augment_shift > 0 and training.augment_flip  # "trains with shifts and mirrors"


def test_effect_scale_2_and_the_demographic_record_are_the_demos_and_the_location_studies():
    text = _text("docs/simulate.md")
    assert f"**The demo and the location-mode study presets ({', '.join(LOCATION_STUDIES)}) use 2**" in text
    assert "The demo and the same study presets read the demographic record" in text
    from hyperfusion.config import preset_names

    ad = [p for p in preset_names() if p.startswith("study-") and _simulate(p).get("task") == "ad"]
    scaled = sorted(p for p in ad if _simulate(p).get("effect_scale") == 2.0)
    demographic = sorted(p for p in ad if _simulate(p).get("record") == "demographics")
    assert scaled == demographic == sorted(LOCATION_STUDIES)
    demo = _simulate("ad-demo")
    assert demo["effect_scale"] == 2.0 and demo["record"] == "demographics"


def test_the_demo_commands_help_states_the_ad_demo_preset():
    doc = " ".join(demo_command.__doc__.split())
    match = re.search(
        r"\((\d+) subjects, interaction ([\d.]+), ([\d.]+) mm voxels\), trains every method on (\d+) folds × (\d+) "
        r"versions",
        doc,
    )
    assert match, doc
    config = load_config("ad-demo")
    simulate = dict(config.simulate or {})
    n, interaction, voxel, folds, versions = match.groups()
    assert int(n) == simulate["n"] and float(interaction) == simulate["interaction"]
    assert float(voxel) == simulate["voxel_size"] == config.image.voxel_mm
    assert (int(folds), int(versions)) == (config.protocol.folds, config.protocol.versions)


@pytest.mark.parametrize("name", ["README.md"])
def test_the_readmes_study_cpu_paragraph_states_the_preset(name):
    text = _text(name)
    match = re.search(
        r"at interaction 0 \(control\), 0\.33, 0\.67 and 1, (\d+) subjects each, a demographic record, every AD "
        r"method under the same treatment, (\d+) split seeds × (\d+) folds per cell \((\d+) models\)",
        text,
    )
    assert match, "the README's study-cpu paragraph moved or changed"
    study = load_study("study-cpu")
    n, seeds, folds, models = map(int, match.groups())
    assert [dict(c.values)["simulate.interaction"] for c in study.cells] == [0.0, 0.33, 0.67, 1.0]
    simulate = dict(study.base.simulate or {})
    assert n == simulate["n"] and simulate["record"] == "demographics"
    protocol = study.base.protocol
    assert (seeds, folds) == (len(protocol.split_seeds), protocol.folds)
    assert models == sum(len(plan_of(study.config(cell), "classification")) for cell in study.cells)
