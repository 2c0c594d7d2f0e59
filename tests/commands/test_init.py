"""`hyperfusion init`: a run config at the cohort's own voxel size, the crop covering the paper's millimetres."""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from hyperfusion.cli import main
from hyperfusion.commands.init import config_for_cohort, crop_shape
from hyperfusion.config import config_from_dict, preset_text
from hyperfusion.simulate import simulate_ad

DATA_MD = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def table_rows() -> list[tuple[float, list[int], list[int]]]:
    """docs/data.md's crop-size table: (voxel mm, hippocampal crop, whole-brain box), first shape of each cell."""
    section = DATA_MD.read_text().split("### Crop size for a voxel size", 1)[1]
    rows = []
    for line in section.splitlines():
        match = re.match(r"\| ([\d.]+) mm \| ([\d ×]+?) (?:\(.*?\) )?\| ([\d ×]+?) (?:\(.*?\) )?\|", line)
        if match:
            shapes = [[int(n) for n in cell.split("×")] for cell in match.groups()[1:]]
            rows.append((float(match[1]), *shapes))
    return rows


def test_crop_shapes_are_the_documented_table():
    rows = table_rows()
    assert [r[0] for r in rows] == [1.0, 1.75, 2.0, 3.0, 4.0]
    for voxel, hippocampus, box in rows:
        assert crop_shape("hippocampus", voxel) == hippocampus, voxel
        assert crop_shape("box", voxel) == box, voxel
    with pytest.raises(ValueError, match=r"image\.mode: 'ring' has no crop-size rule"):
        crop_shape("ring", 1.0)


def test_the_most_common_voxel_size_wins_and_other_grids_are_named():
    preset = yaml.safe_load(preset_text("ad-paper"))
    sizes = Counter({(4.0, 4.0, 4.0): 30, (2.0, 2.0, 2.0): 5})
    raw, notes = config_for_cohort(preset, Path("/c/cohort.yaml"), sizes)
    assert raw["cohort"] == "/c/cohort.yaml" and raw["image"] == {
        "mode": "hippocampus",
        "voxel_mm": 4.0,
        "shape": [16, 24, 16],
    }
    assert raw["training"] == preset["training"] and raw["methods"] == preset["methods"]
    assert notes[0].startswith("30 of 35 images have 4×4×4 mm voxels") and "5 at 2×2×2 mm" in notes[1]
    config_from_dict(raw, source="init", base=Path("/c"))  # a config the loader accepts as it is


def test_an_anisotropic_grid_is_read_at_its_largest_spacing():
    preset = yaml.safe_load(preset_text("brain-age-paper"))
    raw, notes = config_for_cohort(preset, Path("/c.yaml"), Counter({(1.0, 1.0, 1.2): 3}))
    assert raw["image"]["voxel_mm"] == 1.2 and raw["image"]["shape"] == crop_shape("box", 1.2)
    assert "anisotropic" in notes[1]


def test_init_on_a_4mm_cohort_writes_a_config_at_4mm(tmp_path):
    spec = simulate_ad(tmp_path / "c", n=12, voxel_size=4.0, seed=1, template="phantom", progress=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["init", "--cohort", str(spec)]) == 0
    text = out.getvalue()
    assert text.startswith("# Made by `hyperfusion init` from preset ad-paper")
    assert "# 12 of 12 images have 4×4×4 mm voxels: image.voxel_mm 4, shape [16, 24, 16]" in text
    raw = yaml.safe_load(text)
    assert raw["image"]["voxel_mm"] == 4.0 and raw["image"]["shape"] == [16, 24, 16]
    assert raw["cohort"] == str(spec.resolve())
