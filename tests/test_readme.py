"""The README's preset table states what the shipped presets hold: every preset listed, every number right.

The table lives under the README's "Presets" heading, one row per preset::

    | preset | cohort | input | methods | protocol | training |
    | `ad-demo` | simulated AD cohort: 240 subjects, interaction 2 | two hippocampus crops 16×24×16 at 4 mm | 7 ... |

and each cell is read for the numbers it states (subjects, interaction, crop shape and voxel size, the number
of methods, split seeds, versions, folds and partitions or the regression split and top-k, epochs, batch size,
CPU or bf16), each compared with the preset's YAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hyperfusion.config import RunConfig, load_config, preset_names, preset_text

README = Path(__file__).resolve().parents[1] / "README.md"
COLUMNS = ["preset", "cohort", "input", "methods", "protocol", "training"]
NUMBER = r"(\d+(?:\.\d+)?)"


def preset_rows(text: str) -> dict[str, dict[str, str]]:
    """The rows of the table under the heading that names "Presets": preset name -> cells by column."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^#+ .*\bPresets\b", line)), None)
    if start is None:
        raise AssertionError("the README has no heading naming 'Presets'")
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        match = re.fullmatch(r"`([\w.-]+)`", cells[0]) if cells else None
        if match:
            if len(cells) != len(COLUMNS):
                raise AssertionError(f"README preset row {line!r} has {len(cells)} cells, expected {COLUMNS}")
            rows[match.group(1)] = dict(zip(COLUMNS, cells))
    return rows


def _number(cell: str, pattern: str) -> float | None:
    match = re.search(pattern, cell)
    return None if match is None else float(match.group(1))


def check_row(name: str, row: dict[str, str], config: RunConfig) -> list[str]:
    """Every disagreement between a README row and the preset, in words (empty when they agree)."""
    problems: list[str] = []

    def expect(column: str, what: str, pattern: str, value: float) -> None:
        stated = _number(row[column], pattern)
        if stated is None:
            problems.append(f"{name}: the {column} cell does not state {what} ({value:g}): {row[column]!r}")
        elif stated != value:
            problems.append(f"{name}: the README says {what} {stated:g}, the preset has {value:g}")

    def flag(column: str, word: str, holds: bool, what: str) -> None:
        if (word in row[column]) != holds:
            says = "says" if word in row[column] else "does not say"
            problems.append(f"{name}: the {column} cell {says} {word!r}, but the preset's {what}")

    simulate = config.simulate
    flag("cohort", "simulated", simulate is not None, f"simulate is {simulate}")
    if simulate is not None:
        expect("cohort", "subjects", rf"{NUMBER} subjects", float(simulate["n"]))
        expect("cohort", "interaction", rf"interaction {NUMBER}", float(simulate.get("interaction", 1.0)))
        task = "AD" if simulate["task"] == "ad" else "brain-age"
        flag("cohort", task, True, f"simulate.task is {simulate['task']}")
    else:
        flag("cohort", "`cohort:`", True, "cohort must be set by the user")

    image = config.image
    shape = re.search(r"(\d+)×(\d+)×(\d+) at " + NUMBER + " mm", row["input"])
    if shape is None:
        problems.append(f"{name}: the input cell does not state 'D×H×W at V mm': {row['input']!r}")
    elif [int(v) for v in shape.groups()[:3]] != list(image.shape) or float(shape.group(4)) != image.voxel_mm:
        problems.append(
            f"{name}: the README says {shape.group(0)!r}, the preset has {'×'.join(map(str, image.shape))} at "
            f"{image.voxel_mm:g} mm"
        )
    flag("input", "hippocampus", image.mode == "hippocampus", f"image.mode is {image.mode}")
    flag("input", "whole brain", image.mode == "box", f"image.mode is {image.mode}")

    expect("methods", "the number of methods", rf"^{NUMBER}\b", float(len(config.methods)))

    protocol = config.protocol
    expect("protocol", "split seeds", rf"{NUMBER} split seeds?", float(len(protocol.split_seeds)))
    expect("protocol", "versions", rf"{NUMBER} versions?", float(protocol.versions))
    if config.training.loss not in ("mse", "cox"):  # regression and survival: one train/val/test split
        expect("protocol", "folds", rf"{NUMBER} folds? of \d+ partitions", float(protocol.folds))
        expect("protocol", "partitions", rf"folds? of {NUMBER} partitions", float(protocol.n_partitions))
    else:
        train = 100 * (1 - protocol.val_fraction - protocol.test_fraction)
        split = f"{train:.0f}/{100 * protocol.val_fraction:.0f}/{100 * protocol.test_fraction:.0f}"
        flag("protocol", split, True, f"split is {split}")
        expect("protocol", "the top-k ensemble", rf"top-{NUMBER}", float(protocol.top_k))

    training = config.training
    expect("training", "epochs", rf"{NUMBER} epochs?", float(training.epochs))
    expect("training", "batch size", rf"batch {NUMBER}", float(training.batch_size))
    flag("training", "CPU", training.device == "cpu", f"device is {training.device}")
    flag("training", "bf16", training.precision == "bf16", f"precision is {training.precision}")
    return problems


def check_table(text: str, presets: list[str], load: Callable[[str], RunConfig] = load_config) -> list[str]:
    rows = preset_rows(text)
    problems = [f"preset {p!r} is missing from the README's table" for p in presets if p not in rows]
    problems += [f"the README lists {p!r}, which is not a shipped preset" for p in rows if p not in presets]
    for name in presets:
        if name in rows:
            problems += check_row(name, rows[name], load(name))
    return problems


def run_presets() -> list[str]:
    """The shipped run presets; study presets (a `study:` grid over a run, `hyperfusion study`) are not run configs."""
    return [name for name in preset_names() if "study" not in (yaml.safe_load(preset_text(name)) or {})]


def test_the_readme_preset_table_matches_the_presets():
    assert {"ad-demo", "brain-age-demo", "ad-paper", "brain-age-paper"} <= set(run_presets())
    assert check_table(README.read_text(), run_presets()) == []


GOOD_ROWS = [
    [
        "`ad-demo`",
        "simulated AD cohort: 600 subjects, location mode, interaction 1",
        "two hippocampus crops 16×24×16 at 4 mm",
        "8 (every AD method and the crop reader)",
        "1 split seed × 2 versions × 2 folds of 5 partitions",
        "40 epochs, batch 32, CPU",
    ],
    [
        "`brain-age-paper`",
        "yours: set `cohort:` (BIDS or UK Biobank)",
        "whole brain 90×120×99 at 1.75 mm",
        "4 (imaging, concatenation, HyperFusion, HyperFusion 2D)",
        "1 split seed × 5 versions, 80/10/10, top-5 ensemble",
        "60 epochs, batch 64, bf16",
    ],
]
GOOD = "\n".join(
    ["### Presets", "", "| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    + ["| " + " | ".join(row) + " |" for row in GOOD_ROWS]
    + ["", "## Next"]
)


@pytest.mark.parametrize(
    ("wrong", "right", "message"),
    [
        ("600 subjects", "300 subjects", "ad-demo: the README says subjects 300, the preset has 600"),
        ("16×24×16 at 4 mm", "16×24×16 at 2 mm", "ad-demo: the README says '16×24×16 at 2 mm'"),
        ("2 versions ×", "5 versions ×", "ad-demo: the README says versions 5, the preset has 2"),
        ("8 (every", "6 (every", "the README says the number of methods 6, the preset has 8"),
        ("top-5", "top-3", "brain-age-paper: the README says the top-k ensemble 3, the preset has 5"),
        ("batch 64, bf16", "batch 64", "brain-age-paper: the training cell does not say 'bf16'"),
        ("80/10/10", "90/5/5", "brain-age-paper: the protocol cell does not say '80/10/10'"),
    ],
)
def test_the_check_catches_a_stale_number(wrong, right, message):
    presets = ["ad-demo", "brain-age-paper"]
    assert check_table(GOOD, presets) == []
    problems = check_table(GOOD.replace(wrong, right), presets)
    assert any(message in p for p in problems), problems


def test_the_check_catches_a_missing_or_unknown_preset():
    problems = check_table(GOOD.replace("`ad-demo`", "`ad-demo-old`"), ["ad-demo", "brain-age-paper"])
    assert "preset 'ad-demo' is missing from the README's table" in problems
    assert "the README lists 'ad-demo-old', which is not a shipped preset" in problems
