"""Write a run config matched to your cohort: its manifest, and the input grid at the images' own voxel size.

Reads the manifest (every check of a run applies), the voxel size of every image header (no voxel is read) and a
preset's settings (default: the task's paper preset), and prints the preset pointed at the cohort with
``image.voxel_mm`` set to the images' most common voxel size and ``image.shape`` covering the preset's millimetres
at that size (the crop-size table in docs/data.md). Images of another grid are named in a comment: preprocess
them alike first. Copy the output to a file, edit it, then ``hyperfusion validate`` it.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

#: The millimetres a preset's input covers (the paper's): the hippocampal crop and the whole-brain box.
COVERED_MM: dict[str, tuple[float, float, float]] = {
    "hippocampus": (64.0, 96.0, 64.0),
    "box": (157.5, 210.0, 173.25),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cohort", required=True, type=Path, help="the cohort's manifest YAML")
    parser.add_argument(
        "--preset",
        help="the preset whose settings to start from (default: ad-paper for classification, "
        "brain-age-paper for regression; `hyperfusion presets` lists them)",
    )
    parser.add_argument("--out", type=Path, help="write the config here (default: print it)")


def crop_shape(mode: str, voxel_mm: float) -> list[int]:
    """Voxels per axis covering the mode's millimetres at ``voxel_mm``: ⌈mm / voxel⌉ (docs/data.md's table)."""
    if mode not in COVERED_MM:
        raise ValueError(f"image.mode: {mode!r} has no crop-size rule; one of {sorted(COVERED_MM)}")
    if not voxel_mm > 0:
        raise ValueError(f"voxel size must be positive, got {voxel_mm!r}")
    return [math.ceil(round(mm / voxel_mm, 6)) for mm in COVERED_MM[mode]]


def voxel_sizes(paths: Sequence[str]) -> Counter:
    """How many images have each voxel size (mm, per axis, to 0.01 mm) by their NIfTI headers."""
    import nibabel as nib

    from hyperfusion.run.preflight import HEADER_ERRORS

    counts: Counter = Counter()
    for path in paths:
        try:
            zooms = nib.load(path).header.get_zooms()[:3]
        except HEADER_ERRORS as err:
            raise ValueError(f"{path}: cannot read the NIfTI header ({type(err).__name__}: {err})") from None
        counts[tuple(round(float(z), 2) for z in zooms)] += 1
    return counts


def config_for_cohort(
    preset: dict[str, Any], manifest: Path, sizes: Counter
) -> tuple[dict[str, Any], list[str]]:
    """The preset pointed at ``manifest`` with its input grid at the cohort's voxel size; and the notes to print.

    The most common voxel size wins; an anisotropic one is read at its largest spacing (no axis is upsampled).
    """
    (voxel, count), total = sizes.most_common(1)[0], sum(sizes.values())
    spacing = max(voxel)
    image = dict(preset.get("image") or {})
    mode = image.get("mode", "hippocampus")
    image.update(voxel_mm=spacing, shape=crop_shape(mode, spacing))
    raw = {k: v for k, v in preset.items() if k not in ("simulate", "cohort")}
    raw = {"cohort": str(manifest), **raw, "image": image}
    mm = "×".join(f"{v:g}" for v in voxel)
    notes = [
        f"{count} of {total} images have {mm} mm voxels: image.voxel_mm {spacing:g}, shape {image['shape']}"
    ]
    if len(set(voxel)) > 1:
        notes.append(f"the voxels are anisotropic ({mm} mm): read at {spacing:g} mm, the largest spacing")
    others = [f"{n} at {'×'.join(f'{v:g}' for v in s)} mm" for s, n in sizes.most_common()[1:]]
    if others:
        notes.append(
            f"other grids: {', '.join(others)}; preprocess every image alike (see docs/your-cohort.md)"
        )
    return raw, notes


def run(args: argparse.Namespace) -> int:
    from hyperfusion.atomic import write_text_atomic
    from hyperfusion.config import ConfigError, preset_names, preset_text
    from hyperfusion.data import load_manifest
    from hyperfusion.tasks import get_task

    cohort = load_manifest(args.cohort)
    name = args.preset or get_task(cohort.task).default_preset
    if name not in preset_names():
        raise ConfigError(f"--preset: no preset {name!r}; presets: {preset_names()}")
    preset = yaml.safe_load(preset_text(name))
    raw, notes = config_for_cohort(
        preset, args.cohort.resolve(), voxel_sizes(cohort.frame["image"].astype(str))
    )
    header = [
        f"# Made by `hyperfusion init` from preset {name} for {args.cohort}:",
        *(f"# {n}" for n in notes),
    ]
    header.append("# Check it with `hyperfusion validate` before a run; docs/config.md explains every key.")
    text = "\n".join(header) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None)
    if args.out is None:
        print(text, end="")
    else:
        write_text_atomic(args.out, text)
    return 0
