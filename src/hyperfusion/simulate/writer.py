"""Stream a simulated cohort to disk, subject by subject, in the layout a user would bring.

``ad``: ``ADNIMERGE.csv`` (+ ``image`` column ``images/<PTID>.nii.gz``), ``cohort.yaml`` (preset adnimerge),
``latents.csv``.  ``brain_age``: BIDS ``participants.tsv``, ``sub-*/anat/sub-*_T1w.nii.gz``, ``cohort.yaml``
(preset bids), ``latents.tsv``.  Both: ``simulation.json`` (the arguments; a re-run with the same arguments
resumes, skipping subjects already written; different arguments are refused).

The table and ``cohort.yaml`` are written last, so a folder with a manifest is a complete cohort.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from hyperfusion.atomic import write_bytes_atomic, write_text_atomic
from hyperfusion.simulate.anatomy import STRUCTURE_NAMES
from hyperfusion.simulate.effects import Cohort, subject_rng
from hyperfusion.simulate.files import nifti_gz_bytes
from hyperfusion.simulate.render import Nuisance, Renderer

PROGRESS_FILE = ".progress.tsv"
SETTINGS_FILE = "simulation.json"


def image_relpath(cohort: Cohort, i: int) -> str:
    """Where subject ``i``'s volume goes, relative to the cohort folder."""
    if cohort.task == "ad":
        return f"images/{cohort.table['PTID'].iloc[i]}.nii.gz"
    sub = cohort.table["participant_id"].iloc[i]
    return f"{sub}/anat/{sub}_T1w.nii.gz"


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS_FILE
    if path.exists():
        old = json.loads(path.read_text())
        if old != settings:
            diff = {
                k: (old.get(k), settings.get(k))
                for k in set(old) | set(settings)
                if old.get(k) != settings.get(k)
            }
            raise ValueError(
                f"{out} already holds a cohort simulated with other arguments (old, new): {diff}; "
                "choose a fresh --out folder"
            )
    else:
        write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _read_progress(path: Path, n_structures: int) -> dict[int, np.ndarray]:
    done: dict[int, np.ndarray] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) != n_structures + 1:
            continue  # a line cut short by an interrupted run: that subject is redone
        try:
            done[int(parts[0])] = np.array([float(p) for p in parts[1:]])
        except ValueError:
            continue
    return done


def write_cohort(
    cohort: Cohort,
    out: Path,
    renderer: Renderer,
    settings: dict,
    *,
    nuisance: Nuisance,
    progress: bool = True,
) -> Path:
    """Render every subject of ``cohort`` with ``renderer`` and write the cohort folder ``out``.

    Returns the path of the written ``cohort.yaml``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    n = len(cohort.table)
    progress_path = out / PROGRESS_FILE
    finished = out / "cohort.yaml"
    # cohort.yaml is written last and the progress file removed after it: such a folder is complete
    complete = finished.exists() and not progress_path.exists()
    if complete and all((out / image_relpath(cohort, i)).exists() for i in range(n)):
        return finished
    done = _read_progress(progress_path, len(STRUCTURE_NAMES))
    volumes = np.full((n, len(STRUCTURE_NAMES)), np.nan)
    todo = []
    for i in range(n):
        if i in done and (out / image_relpath(cohort, i)).exists():
            volumes[i] = done[i]
        else:
            todo.append(i)
    affine = renderer.grid.affine
    with (
        open(progress_path, "a") as log,
        tqdm(
            total=n,
            initial=n - len(todo),
            disable=not progress,
            desc=f"simulate {cohort.task}",
            unit="subject",
        ) as bar,
    ):
        for i in todo:
            image, vol = renderer.render(
                cohort.effects(i), subject_rng(cohort.seed, cohort.task, i), nuisance
            )
            write_bytes_atomic(out / image_relpath(cohort, i), nifti_gz_bytes(image, affine))
            log.write(f"{i}\t" + "\t".join(repr(float(v)) for v in vol) + "\n")
            log.flush()
            volumes[i] = vol
            bar.update(1)

    latents = pd.concat([cohort.latents, cohort.targets_frame()], axis=1)
    clipped = np.array([renderer.clip(row) for row in cohort.log_f])
    for s, name in enumerate(STRUCTURE_NAMES):  # the targets the warp aimed at (within its calibrated range)
        latents[f"target_logf_{name}"] = clipped[:, s]
    base = renderer.anatomy.baseline_ml
    for s, name in enumerate(STRUCTURE_NAMES):
        latents[f"volume_ml_{name}"] = volumes[:, s]
        latents[f"realised_logf_{name}"] = np.log(volumes[:, s] / base[s])
    table = cohort.table.copy()
    if cohort.task == "ad":
        table["image"] = [image_relpath(cohort, i) for i in range(n)]
        write_text_atomic(out / "latents.csv", latents.to_csv(index=False, float_format="%.6g"))
        write_text_atomic(out / "ADNIMERGE.csv", table.to_csv(index=False))
        spec = {"preset": "adnimerge", "table": "ADNIMERGE.csv", "image": {"column": "image"}}
    else:
        write_text_atomic(out / "latents.tsv", latents.to_csv(index=False, sep="\t", float_format="%.6g"))
        description = {
            "Name": "hyperfusion simulated brain-age cohort",
            "BIDSVersion": "1.8.0",
            "DatasetType": "raw",
        }
        write_text_atomic(out / "dataset_description.json", json.dumps(description, indent=2) + "\n")
        write_text_atomic(out / "participants.tsv", table.to_csv(index=False, sep="\t"))
        spec = {"preset": "bids", "table": "participants.tsv"}
    write_text_atomic(out / "cohort.yaml", yaml.safe_dump(spec, sort_keys=False))
    progress_path.unlink(missing_ok=True)
    return out / "cohort.yaml"
