"""Run a study: every cell as an ordinary resumable run (any executor), then one summary.

Cells that simulate the same cohort share it: each distinct ``simulate:`` section is simulated once into
``OUT/cohorts/<digest>/``. A rerun resumes every cell where it stopped; finished cells only re-report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import RunConfig, with_settings
from hyperfusion.data.manifest import read_spec
from hyperfusion.run.executors import LocalExecutor, RayExecutor
from hyperfusion.run.reporting import test_train_ratio
from hyperfusion.run.runner import run_protocol
from hyperfusion.run.simulated import ensure_simulated_cohort
from hyperfusion.study.grid import Study
from hyperfusion.study.oracle import cell_oracles, headroom_shares
from hyperfusion.study.summary import cell_summary, interaction_contrasts, share_summary, write_summary
from hyperfusion.tasks import Task, get_task

Echo = Callable[[str], None]


def cell_task(config) -> Task:
    """The task a cell's summary scores: its cohort's (a survival cohort trains the AD family with one risk
    output, so the reference model's family would name classification; the summary's metric is then C)."""
    return get_task(read_spec(config.cohort).task)


def _cohort_folder(out: Path, simulate: dict) -> Path:
    digest = hashlib.sha256(json.dumps(simulate, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return out / "cohorts" / f"{simulate.get('task', 'cohort')}-{digest}"


def _tracked(config: RunConfig, out: Path) -> RunConfig:
    """Under ``logger: mlflow`` the study is one experiment in one store (its own SQLite file unless configured)."""
    if config.training.logger != "mlflow":
        return config
    values = {}
    if config.training.tracking_uri is None:
        values["tracking_uri"] = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    if config.training.experiment is None:
        values["experiment"] = out.resolve().name
    return with_settings(config, "training", values)


def run_study(
    study: Study,
    out: str | Path,
    *,
    echo: Echo = print,
    executor: LocalExecutor | RayExecutor | None = None,
) -> pd.DataFrame:
    """Run (or resume) every cell of ``study`` into ``out`` and write the summary; returns the summary table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, pd.DataFrame] = {}
    values: dict[str, dict] = {}
    timings: dict[str, float] = {}
    cell_results: list[tuple[str, dict, pd.DataFrame]] = []
    shares: dict[str, pd.DataFrame] = {}
    oracles: list[pd.DataFrame] = []
    started = time.perf_counter()
    for number, cell in enumerate(study.cells, start=1):
        echo(f"== cell {number}/{len(study.cells)}: {cell.name}")
        config = study.config(cell)
        if config.simulate is not None:
            simulated = ensure_simulated_cohort(config, _cohort_folder(out, dict(config.simulate)))
            config = dataclasses.replace(simulated, simulate=None)
        config = _tracked(config, out)
        cell_start = time.perf_counter()
        results = run_protocol(config, out / "cells" / cell.name, echo=echo, executor=executor)
        timings[cell.name] = time.perf_counter() - cell_start
        task = cell_task(config)
        metrics = study.metrics or task.summary_metrics
        fold = task.reported_fold
        ratio = test_train_ratio(config, task.name)
        summaries[cell.name] = cell_summary(
            results, reference=config.reference_method, metrics=metrics, fold=fold, test_train_ratio=ratio
        )
        values[cell.name] = dict(cell.values)
        cell_results.append((cell.name, dict(cell.values), results))
        # a simulated cohort knows how much reading the image through the record gains (empty for others)
        found = cell_oracles(config, out / "cells" / cell.name)
        if not found.empty:
            oracles.append(found.assign(cell=cell.name))
            shares[cell.name] = headroom_shares(results, found, fold=fold)
    total = time.perf_counter() - started
    header = (
        f"{len(study.cells)} cells; wall-clock {total / 60:.1f} min for this invocation "
        f"(cells: {', '.join(f'{k} {v / 60:.1f} min' for k, v in timings.items())}); a resumed study counts "
        "only what this invocation ran."
    )
    table = write_summary(
        summaries,
        values,
        out,
        axes=study.axes,
        reference=study.base.reference_method,
        title=f"Study: {study.source}",
        header=header,
        contrasts=interaction_contrasts(
            cell_results,
            axes=study.axes,
            reference=study.base.reference_method,
            metrics=metrics,
            fold=fold,
            test_train_ratio=ratio,
        ),
        shares=share_summary(shares) if shares else None,
    )
    if oracles:
        write_text_atomic(out / "oracles.csv", pd.concat(oracles, ignore_index=True).to_csv(index=False))
    write_text_atomic(out / "study.json", json.dumps({"source": study.source, "seconds": total}, indent=1))
    return table
