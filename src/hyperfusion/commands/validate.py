"""Check a cohort and a run's settings before training: what the run will read, whether it will go through, how long.

CONFIG_OR_COHORT is a run config YAML or preset name (its cohort is read, and simulated first into --work when
the config has `simulate:`), or a cohort manifest YAML (checked with the settings of --settings). Prints the rows
kept and dropped, the classes or target, every tabular column, the image grids and the image checks, the
partitions of the first split seed and an estimate of the run's time on this machine from a few timed training
steps of each method, each section as soon as it is ready (progress lines go to stderr). A Warnings section names
what trains but not as meant: images at another resolution than the input spec, mixed grids, categories that
differ only by case or spaces, bf16 on a CPU; a busy machine is noted under the estimate. Nothing is trained.
Exit status 2 when the run would stop before training, naming every
problem found. With --work set to the run's --out, the run reuses the simulated cohort and the image cache.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hyperfusion.text import format_table

if TYPE_CHECKING:  # heavy imports stay inside run(), so `hyperfusion --help` is quick
    from hyperfusion.config import RunConfig
    from hyperfusion.run.preflight import Preflight

#: At most this many failing images are listed one by one (all are counted).
SHOWN_FAILURES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="CONFIG_OR_COHORT", help="a run config YAML or preset, or a manifest YAML"
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="folder for a simulated cohort and the image cache (the run's --out lets the run reuse them; "
        "default: a temporary folder, removed afterwards)",
    )
    parser.add_argument(
        "--settings",
        help="for a manifest: the run config or preset whose settings to check it with "
        "(default: ad-paper for classification, brain-age-paper for regression)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=3,
        help="training steps timed per method for the estimate (0: no estimate)",
    )
    group = parser.add_argument_group("overrides (as for run)")
    group.add_argument("--epochs", type=int, help="training epochs per model")
    group.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    group.add_argument("--precision", choices=["fp32", "bf16"])
    bars = group.add_mutually_exclusive_group()
    bars.add_argument("--progress", action="store_true", help="progress bars (default: the config's)")
    bars.add_argument("--no-progress", action="store_true", help="no progress bars")


def load_target(target: str, settings: str | None = None) -> RunConfig:
    """The run config to check: ``target`` itself, or for a manifest the settings' config pointed at it.

    Raises:
        ConfigError, ValueError, FileNotFoundError: an unknown preset, an unreadable file or spec.
    """
    from hyperfusion.config import ConfigError, load_config
    from hyperfusion.data import read_spec
    from hyperfusion.tasks import get_task

    path = Path(target)
    if path.is_file() and is_manifest(path):
        spec = read_spec(path)
        base = settings or get_task(spec.task).default_preset
        return settings_for_manifest(base, path.resolve())
    if settings is not None:
        raise ConfigError(f"--settings applies to a manifest; {target} is a run config")
    return load_config(target)


def settings_for_manifest(settings: str, manifest: Path) -> RunConfig:
    """A run config (file or preset) pointed at ``manifest``; a settings file need not name a cohort itself."""
    from hyperfusion.config import config_from_dict, load_config

    path = Path(settings)
    raw = _yaml_mapping(path) if path.is_file() else None
    if raw is None:  # a preset, or a file that load_config reports on
        config = load_config(settings)
        return dataclasses.replace(config, cohort=str(manifest), simulate=None, source=f"{settings} settings")
    raw = {**{k: v for k, v in raw.items() if k != "simulate"}, "cohort": str(manifest)}
    return config_from_dict(raw, source=f"{settings} settings", base=path.resolve().parent)


def _yaml_mapping(path: Path) -> dict | None:
    from hyperfusion.yamlio import DuplicateKeyError, load_yaml

    try:
        raw = load_yaml(path.read_text(), str(path))
    except (yaml.YAMLError, UnicodeDecodeError, DuplicateKeyError):  # the loader that reads it says why
        return None
    return raw if isinstance(raw, dict) else None


def is_manifest(path: Path) -> bool:
    """A YAML mapping without a run config's ``methods``, ``cohort`` or ``simulate`` keys is a manifest spec."""
    raw = _yaml_mapping(path)
    return raw is not None and not {"methods", "cohort", "simulate"} & set(raw)


def run(args: argparse.Namespace) -> int:
    from hyperfusion.commands.run import apply_overrides
    from hyperfusion.run.preflight import preflight

    if args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    config = apply_overrides(load_target(args.target, args.settings), args)
    progress = config.training.progress if not (args.progress or args.no_progress) else args.progress
    with contextlib.ExitStack() as stack:
        work = args.work or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="hyperfusion-validate-"))
        )
        shown: list[str] = []

        def show(stage: str, found: Preflight) -> None:  # each section as soon as it is final
            for section in stage_sections(found, stage, target=args.target, work=args.work):
                print(("\n" if shown else "") + section, flush=True)
                shown.append(section)

        def echo(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        found = preflight(config, work, steps=args.steps, progress=progress, echo=echo, on_ready=show)
        for section in problem_sections(found):
            print("\n" + section, flush=True)
    if found.problems:
        more = f" (and {len(found.problems) - 1} more, listed above)" if len(found.problems) > 1 else ""
        raise ValueError(
            f"{len(found.problems)} problem(s) would stop the run before training: {found.problems[0]}{more}"
        )
    return 0


# ----------------------------------------------------------------------------------------------------------
# the report, as plain text


def render(found: Preflight, *, target: str, work: Path | None = None) -> str:
    """The preflight as readable text: one section per question, aligned tables."""
    from hyperfusion.run.preflight import STAGES

    sections = [s for stage in STAGES for s in stage_sections(found, stage, target=target, work=work)]
    sections += problem_sections(found)
    return "\n\n".join(s for s in sections if s)


def stage_sections(found: Preflight, stage: str, *, target: str, work: Path | None = None) -> list[str]:
    """The sections a preflight stage makes final (see `hyperfusion.run.preflight.STAGES`), in order."""
    from hyperfusion.tasks import get_task

    if stage == "cohort":
        task = get_task(found.cohort.task)
        classes = (
            _classes(found)
            if task.has_classes
            else (_survival(found) if task.time_to_event else _target(found))
        )
        return [_cohort(found, target, work), _rows(found), classes, _columns(found)]
    if stage == "images":
        return [_images(found, work)]
    if stage == "cautions":
        return [_cautions(found)] if found.cautions else []
    if stage == "partitions":
        return [_partitions(found)]
    if stage == "estimate":
        return [_estimate(found, work)]
    raise ValueError(f"unknown preflight stage {stage!r}")


def problem_sections(found: Preflight) -> list[str]:
    """The closing Problems section, when something would stop the run."""
    if not found.problems:
        return []
    lines = [f"{i}. {p}" for i, p in enumerate(found.problems, 1)]
    return [_section(f"Problems: {len(found.problems)} would stop the run before training", lines)]


def _cautions(found: Preflight) -> str:
    title = f"Warnings: {len(found.cautions)} (the run goes through, but check them)"
    return _section(title, [f"- {c}" for c in found.cautions])


def _section(title: str, lines: Sequence[str]) -> str:
    return "\n".join([title, "-" * len(title), *lines])


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()) -> list[str]:
    """Aligned plain-text columns (two spaces apart), one line each; columns listed in ``right`` are right-aligned."""
    return format_table(header, rows, right=right, markdown=False).removesuffix("\n").split("\n")


def duration(seconds: float) -> str:
    """Seconds as a person plans with them: 42 s, 7 min, 3.5 h, 2.1 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _cohort(found: Preflight, target: str, work: Path | None) -> str:
    cohort = found.cohort
    config = found.config
    source = "" if config.source == target else f" ({config.source})"
    lines = [f"config    {target}{source}"]
    if found.simulated_seconds is not None:
        kept = "" if work else " into a temporary folder, removed afterwards (--work keeps it for the run)"
        lines.append(f"simulated {config.simulate} in {duration(found.simulated_seconds)}{kept}")
    lines += [
        f"manifest  {config.cohort} (preset {cohort.spec.preset})",
        f"table     {cohort.table_path}",
        f"task      {cohort.task}" + (f": classes {', '.join(cohort.classes)}" if cohort.classes else ""),
        f"methods   {', '.join(config.methods)}",
    ]
    return _section("Cohort", lines)


def _rows(found: Preflight) -> str:
    rows = found.rows
    body = [["rows read from the table", rows.read]]
    body += [[f"dropped: {reason}", n] for reason, n in rows.dropped.items()]
    body.append(["kept", rows.kept])
    body.append(["subjects", rows.subjects])
    return _section("Rows", table(["", "rows"], body, right=[1]))


def _classes(found: Preflight) -> str:
    labels = found.labels
    total = int(labels["subjects"].sum())
    body = [
        [r["class"], r["subjects"], f"{100 * r['subjects'] / total:.1f}%", r["raw labels"]]
        for _, r in labels.iterrows()
    ]
    title = f"Classes (column {found.cohort.spec.target_column})"
    return _section(
        title, table(["class", "subjects", "share", "from the table's labels"], body, right=[1, 2])
    )


def _target(found: Preflight) -> str:
    values = found.cohort.frame["target"]
    q = values.quantile([0.25, 0.5, 0.75])
    body = [[len(values), f"{values.mean():.2f}", f"{values.std():.2f}", f"{values.min():g}"]]
    body[0] += [f"{q[0.25]:.2f}", f"{q[0.5]:.2f}", f"{q[0.75]:.2f}", f"{values.max():g}"]
    header = ["rows", "mean", "std", "min", "25%", "median", "75%", "max"]
    title = f"Target (column {found.cohort.spec.target_column}, regression)"
    return _section(title, table(header, body, right=list(range(8))))


def _survival(found: Preflight) -> str:
    """Events, censoring and follow-up: what a time-to-event study has to learn from."""
    import numpy as np

    from hyperfusion.evaluation.survival import censoring_survival

    frame, spec = found.cohort.frame, found.cohort.spec
    time, event = frame["target"].to_numpy(dtype=float), frame["event"].to_numpy(dtype=float) == 1
    body = []
    for name, rows in (("events", event), ("censored", ~event), ("all", np.ones_like(event))):
        share = f"{rows.sum()} ({100 * rows.mean():.0f}%)"
        q = np.quantile(time[rows], [0, 0.25, 0.5, 0.75, 1]) if rows.any() else [np.nan] * 5
        body.append([name, share, *(f"{v:.1f}" for v in q)])
    g_times, g = censoring_survival(time, event)
    reached = g_times[g <= 0.5]
    median = f"{reached[0]:g} months" if reached.size else "not reached"
    lines = table(["subjects", "count", "min", "25%", "median", "75%", "max"], body, right=list(range(1, 7)))
    lines += [
        "months to the event (events) or to the last visit (censored)",
        f"median follow-up (reverse Kaplan–Meier): {median}",
    ]
    return _section(f"Target (survival: time {spec.time_column}, event {spec.event_column})", lines)


def _columns(found: Preflight) -> str:
    body = []
    for c in found.columns:
        missing = f"{c.missing} ({100 * c.missing / max(c.rows, 1):.0f}%)"
        censored = (
            f"{c.censored} ({c.censored_example})" if c.censored else ("0" if c.role == "continuous" else "")
        )
        body.append([c.name, c.role, missing, censored, c.values])
    lines = table(["column", "role", "missing", "censored, read at the bound", "values"], body)
    return _section("Tabular columns", lines)


def _images(found: Preflight, work: Path | None) -> str:
    image = found.config.image
    shape = "×".join(str(s) for s in image.shape)
    if image.mode == "hippocampus":
        what = (
            f"two hippocampus crops of {shape} voxels at {image.voxel_mm:g} mm, centred at "
            f"{_mm(image.left_center_mm)} and {_mm(image.right_center_mm)} mm"
        )
    else:
        where = "the brain's centre of mass" if image.center_mm is None else f"{_mm(image.center_mm)} mm"
        what = f"a box of {shape} voxels at {image.voxel_mm:g} mm centred on {where}"
    body = [
        ["×".join(str(s) for s in g.shape), "×".join(f"{v:g}" for v in g.voxel_mm), g.axes, g.count]
        for g in found.grids
    ]
    lines = [f"input: {what}", *table(["grid (voxels)", "voxel (mm)", "axes", "images"], body, right=[3])]
    failures = found.image_failures
    checked = found.images_checked
    checks = "readable 3D, finite, non-empty" + (
        ", brain of MNI size and position" if image.check_extent else ""
    )
    checks += ", crops inside the image" if image.mode == "hippocampus" else ", brain inside the box"
    if failures:
        lines.append(f"{checked - len(failures)} of {checked} images pass ({checks}); {len(failures)} fail:")
        lines += [f"  line {f.line}, subject {f.subject}: {f.message}" for f in failures[:SHOWN_FAILURES]]
        if len(failures) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(failures) - SHOWN_FAILURES} more")
    else:
        lines.append(f"all {checked} images pass ({checks})")
    if found.image_warnings:
        warned = found.image_warnings
        lines.append(
            f"{len(warned)} image(s) do not look like T1s of this cohort (warnings: the run does not stop on them, "
            "but check them):"
        )
        lines += [
            f"  line {w.line}, subject {w.subject}: {w.path}: {w.message}" for w in warned[:SHOWN_FAILURES]
        ]
        if len(warned) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(warned) - SHOWN_FAILURES} more")
    took = duration(found.preprocessing_seconds)
    where = (
        f"cached in {work}/cache, which a run with --out {work} reuses"
        if work
        else "in a temporary folder; --work keeps it for the run"
    )
    lines.append(f"preprocessing took {took} ({where})")
    return _section("Images", lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _mm(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _partitions(found: Preflight) -> str:
    from hyperfusion.tasks import get_task

    if found.balance is None:
        return _section("Partitions", ["not made: the cohort cannot be partitioned (see Problems)"])
    protocol = found.config.protocol
    task = get_task(found.cohort.task)
    note = f"split seed {protocol.split_seeds[0]}: {task.describe_split(protocol)}"
    balance = found.balance
    header = [task.partition_label, *balance.columns]
    body = [[index, *row] for index, row in zip(balance.index, balance.itertuples(index=False))]
    return _section("Partitions", [note, *table(header, body, right=list(range(1, len(header))))])


def _estimate(found: Preflight, work: Path | None) -> str:
    estimate = found.estimate
    planned = found.planned
    if estimate is None:
        reason = "fix the problems first" if found.problems else "--steps 0"
        return _section("Estimated time", [f"{len(planned)} models planned; not estimated ({reason})"])
    title = f"Estimated time on this machine: about {duration(estimate.seconds)}"
    settings = (
        f"{estimate.device}, {estimate.precision}, batch {estimate.batch_size}, {_plural(estimate.epochs, 'epoch')}; "
        f"{len(planned)} models planned"
        + (f", {estimate.finished} already finished in {work}" if estimate.finished else "")
    )
    body = []
    for m in estimate.methods:
        name = m.method + (" (helper)" if m.helper else "")
        if m.steps is None:  # nothing trained by gradient: composed members, or a closed-form fit
            body.append([name, m.models, "fitted" if m.kind == "fit" else "composed", "", "", "0 s"])
            continue
        each = m.seconds / m.models if m.models else 0.0
        body.append(
            [
                name,
                m.models,
                f"{m.steps.train:.3f} s",
                f"{m.steps.evaluate:.3f} s",
                duration(each),
                duration(m.seconds),
            ]
        )
    header = ["method", "models", "train step", "eval batch", "per model", "total"]
    lines = [settings, *table(header, body, right=[1, 2, 3, 4, 5])]
    if found.load:
        lines.append(f"Note: {found.load}.")
    overhead = estimate.overhead
    lines.append(
        f"An estimate from {_plural(estimate.timed_steps, 'timed training step')} and as many evaluation batches "
        "per method (after one untimed of each; the methods take turns), times batches per epoch and epochs, "
        "plus the scoring passes and what a model costs besides its steps, measured with one short real "
        f"training: {overhead.start:.2f} s start-up, {overhead.per_epoch:.2f} s per epoch, "
        f"{1000 * overhead.per_row:.2f} ms per dataset row, and building the model; plus "
        f"{duration(estimate.prepare)} fitting the folds' tabular preprocessing before the first model."
    )
    if found.config.protocol.executor == "ray":
        lines.append("Models are counted one after another; Ray runs them in parallel across its workers.")
    if found.config.training.devices > 1:
        lines.append(
            f"Timed on one device; the run trains each model on {found.config.training.devices} devices."
        )
    helpers = [m.method for m in estimate.methods if m.helper]
    if helpers:
        lines.append(f"Helpers ({', '.join(helpers)}) are trained because other methods need them.")
    return _section(title, lines)
