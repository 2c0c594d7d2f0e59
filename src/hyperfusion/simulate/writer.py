"""Stream a simulated cohort to disk, subject by subject, in the layout a user would bring.

``ad``: ``ADNIMERGE.csv`` (+ ``image`` column ``images/<PTID>.nii.gz``), ``cohort.yaml`` (preset adnimerge),
``latents.csv``.  ``brain_age``: BIDS ``participants.tsv``, ``sub-*/anat/sub-*_T1w.nii.gz``, ``cohort.yaml``
(preset bids), ``latents.tsv``.  Both: ``simulation.json`` (the arguments; a re-run with the same arguments
resumes, skipping subjects already written; different arguments are refused).

The table and ``cohort.yaml`` are written last, so a folder with a manifest is a complete cohort.

Subjects render in a process pool (``workers``): subject i's image depends only on its own stream
``default_rng([seed, task, 1, i])``, and every worker renders with one torch thread, so the files are the same
bytes whatever the number of workers.  A worker writes its subject's file atomically; the parent logs the subject
as done only after that, so an interrupted run loses nothing finished.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm import tqdm

from hyperfusion.atomic import write_bytes_atomic, write_text_atomic
from hyperfusion.simulate.anatomy import STRUCTURE_NAMES
from hyperfusion.simulate.effects import Cohort, subject_rng
from hyperfusion.simulate.files import nifti_gz_bytes
from hyperfusion.simulate.render import Nuisance, Renderer, SubjectEffects
from hyperfusion.simulate.visits import visit_table
from hyperfusion.simulate.volume import one_thread

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


def available_cores() -> int:
    """The CPU cores this process may run on (the default number of workers)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def checked_workers(workers: int | None) -> int:
    """``workers`` as a positive int (``None``: every available core).

    Raises:
        ValueError: on a value below 1 or not an integer.
    """
    if workers is None:
        return available_cores()
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return int(workers)


_WORKER: tuple[Renderer, Nuisance] | None = None  # set in each pool worker by _start_worker


def _start_worker(renderer: Renderer, nuisance: Nuisance) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = (renderer, nuisance)


def _render_subject(job: tuple[int, SubjectEffects, int, str, Path]) -> tuple[int, np.ndarray]:
    """Render one subject and write its file atomically; returns (index, realised volumes)."""
    assert _WORKER is not None, "the pool worker was not started"
    renderer, nuisance = _WORKER
    i, effects, seed, task, path = job
    image, vol = renderer.render(effects, subject_rng(seed, task, i), nuisance)
    write_bytes_atomic(path, nifti_gz_bytes(image, renderer.grid.affine))
    return i, vol


def foreign_threads() -> list[str]:
    """Names of this process's threads that a native runtime started (gRPC's after ``ray.init``): the OS names
    them, while Python's threads and torch's pools keep the process's own name. Empty where the OS does not say."""
    try:
        tasks = os.listdir("/proc/self/task")
        own = Path("/proc/self/comm").read_text().strip()
        names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in tasks]
    except OSError:
        return []
    return sorted({name for name in names if name != own})


def start_method() -> str:
    """How the pool starts its workers: ``fork`` (the prepared renderer is shared, not sent) unless a native
    runtime's threads run in this process. A fork copies the locks those threads hold but not the threads, so
    the child can wait forever on a lock nobody will release — seen as a test that hung after the Ray tests had
    started gRPC's threads. Then ``forkserver`` (a clean single-threaded server forks the workers; the renderer
    is sent to each once, a few seconds more), or ``spawn`` where neither exists. The files are the same bytes
    either way."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and not foreign_threads():
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _render_all(
    cohort: Cohort, out: Path, renderer: Renderer, nuisance: Nuisance, todo: list[int], workers: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Render the subjects ``todo``, yielding (index, volumes) as each file is written."""
    global _WORKER
    jobs = [(i, cohort.effects(i), cohort.seed, cohort.task, out / image_relpath(cohort, i)) for i in todo]
    if workers <= 1 or len(jobs) <= 1:
        saved, _WORKER = _WORKER, (renderer, nuisance)
        try:
            with one_thread():
                yield from map(_render_subject, jobs)
        finally:
            _WORKER = saved
        return
    context = multiprocessing.get_context(start_method())
    with context.Pool(
        min(workers, len(jobs)), initializer=_start_worker, initargs=(renderer, nuisance)
    ) as pool:
        yield from pool.imap_unordered(_render_subject, jobs)


def write_cohort(
    cohort: Cohort,
    out: Path,
    renderer: Renderer,
    settings: dict,
    *,
    nuisance: Nuisance,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Render every subject of ``cohort`` with ``renderer`` and write the cohort folder ``out``.

    ``workers`` processes render subjects in parallel (``None``: every available core; the files do not depend
    on it).  Returns the path of the written ``cohort.yaml``.
    """
    workers = checked_workers(workers)
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
        for i, vol in _render_all(cohort, out, renderer, nuisance, todo, workers):
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
        if cohort.visits is not None:
            table = visit_table(table, cohort.visits)
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
