"""``explain_run``: every part of an explanation of a finished run, written into one folder.

Parts (each may be chosen alone):

- ``counterfactual`` — counterfactual.csv/png (+ flip_<attribute>.csv/png for two-level attributes, regression);
- ``tabular`` — permutation_importance.csv, integrated_gradients.csv, tabular_attribution.csv/png;
- ``images`` — images/*.nii.gz (maps and inputs with their affines), images/*.png, image_attribution.csv;
- ``generated`` — generated/*.npz, generated_spread.csv, generated_separation.csv, generated.png (hyper models).

Always: subjects.csv (each subject's prediction under its own record, as ``predict`` gives it), summary.md,
explain.json (the settings and what was written). Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hyperfusion.atomic import write_atomic, write_text_atomic
from hyperfusion.explain import plots
from hyperfusion.explain.attribution import (
    DEFAULT_REPEATS,
    headline,
    permutation_importance,
    summarise_gradients,
    summarise_importance,
    tabular_integrated_gradients,
)
from hyperfusion.explain.context import Attribute, ExplainContext, labelled, load_context
from hyperfusion.explain.counterfactual import (
    DEFAULT_POINTS,
    attribute_values,
    counterfactuals,
    factual,
    level_table,
)
from hyperfusion.explain.ensemble import Ensemble, load_views, mean_view
from hyperfusion.explain.generated import (
    DEFAULT_PERMUTATIONS,
    generate,
    groupings,
    has_hyper_layers,
    separation,
    spread,
)
from hyperfusion.explain.gradients import DEFAULT_STEPS
from hyperfusion.explain.images import (
    DEFAULT_PATCH_MM,
    IMAGE_BASELINES,
    IMAGE_METHODS,
    choose_subjects,
    gradient_views,
    occlusion_views,
    patch_voxels,
    safe_name,
)
from hyperfusion.explain.nifti import crop_affine, image_center_mm, sides, write_map
from hyperfusion.explain.summary import (
    counterfactual_effects,
    flip_lines,
    markdown,
    separation_summary,
)
from hyperfusion.run.inference import score_frames
from hyperfusion.run.setup import image_spec
from hyperfusion.tasks import get_task

PARTS = ("counterfactual", "tabular", "images", "generated")
#: Per model and hyper layer, per-subject generated parameters are saved up to this many values (above it: mean,
#: std and embeddings only).
MAX_SAVED_VALUES = 20_000_000
Echo = Callable[[str], None]


@dataclass(frozen=True)
class ExplainSettings:
    """What to compute and how (every field has a command-line option of the same name).

    Raises:
        ValueError: an unknown part or image method, or a count out of range (named).
    """

    parts: tuple[str, ...] = PARTS
    points: int = DEFAULT_POINTS
    repeats: int = DEFAULT_REPEATS
    seed: int = 0
    ig_steps: int = DEFAULT_STEPS
    image_subjects: int = 4
    image_method: str = "occlusion"
    image_baseline: str = "mean"
    patch_mm: float = DEFAULT_PATCH_MM
    permutations: int = DEFAULT_PERMUTATIONS
    device: str = "cpu"
    plots: bool = True

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts must be some of {list(PARTS)}, got {list(self.parts)}")
        if self.image_method not in IMAGE_METHODS:
            raise ValueError(f"image method must be one of {list(IMAGE_METHODS)}, got {self.image_method!r}")
        if self.image_baseline not in IMAGE_BASELINES:
            raise ValueError(
                f"image baseline must be one of {list(IMAGE_BASELINES)}, got {self.image_baseline!r}"
            )
        for name, low in (
            ("points", 2),
            ("repeats", 1),
            ("ig_steps", 1),
            ("image_subjects", 0),
            ("permutations", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        patch_voxels(self.patch_mm, 1.0)  # a positive size


@dataclass
class ExplainResult:
    """What ``explain_run`` wrote (paths relative to the output folder) and the tables behind the summary."""

    out: Path
    files: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class _Writer:
    def __init__(self, out: Path, result: ExplainResult) -> None:
        self.out, self.result = out, result

    def csv(self, name: str, frame: pd.DataFrame) -> None:
        write_text_atomic(self.out / name, frame.to_csv(index=False, float_format="%.8g"))
        self.result.files.append(name)
        self.result.tables[name] = frame

    def path(self, name: str) -> Path:
        self.result.files.append(name)
        return self.out / name


def explain_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    subjects: Sequence[str] | None = None,
    manifest: str | Path | None = None,
    method: str | None = None,
    split_seed: int | None = None,
    settings: ExplainSettings | None = None,
    echo: Echo = print,
) -> ExplainResult:
    """Explain a finished run's ensemble on chosen subjects; see the module docstring for what is written.

    Args:
        run_dir: a directory written by ``hyperfusion run``.
        out: the folder to write into (created).
        subjects, manifest: which subjects (default: the run's test subjects of the split seed).
        method, split_seed: the ensemble (defaults: the run's reference method, its first split seed).
        settings: what to compute.
        echo: progress lines.

    Raises:
        FileNotFoundError, ValueError: as :func:`~hyperfusion.explain.context.load_context`; bad settings; an
            ``out`` that is a file.
    """
    settings = settings or ExplainSettings()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    context = load_context(
        run_dir, method=method, split_seed=split_seed, subjects=subjects, manifest=manifest
    )
    out.mkdir(parents=True, exist_ok=True)
    result = ExplainResult(out)
    writer = _Writer(out, result)
    classes = context.classes if get_task(context.task).has_classes else ()
    echo(
        f"explaining {context.method} (split seed {context.split_seed}) on {len(context.cohort.frame)} subjects; "
        f"parts: {', '.join(settings.parts)}"
    )

    def score(frames: list[pd.DataFrame], cohort=context.cohort) -> list[np.ndarray]:
        return score_frames(
            context.run_dir,
            cohort,
            frames,
            method=context.method,
            split_seed=context.split_seed,
            device=settings.device,
        )

    values = score([context.cohort.frame])[0]
    subjects_table = factual(context.cohort.frame, values, classes)
    writer.csv("subjects.csv", subjects_table)
    explained = values.argmax(axis=1) if classes else None
    predicted = [classes[i] for i in explained] if explained is not None else None

    if "counterfactual" in settings.parts:
        _counterfactual(context, settings, score, writer, classes)
    ensemble = None
    if {"tabular", "images", "generated"} & set(settings.parts):
        ensemble = Ensemble.load(context, device=settings.device)
        echo(f"loaded {len(ensemble.members)} fold models (versions {ensemble.versions})")
    if "tabular" in settings.parts:
        _tabular(context, settings, score, ensemble, explained, writer, echo)
    if "images" in settings.parts:
        _images(context, settings, ensemble, explained, predicted, writer, echo)
    if "generated" in settings.parts:
        _generated(context, settings, ensemble, predicted, writer, echo)
    _finish(context, settings, writer, classes)
    echo(f"wrote {len(result.files)} files to {out}")
    return result


# ---------------------------------------------------------------------------------------------- parts
def _counterfactual(context: ExplainContext, settings, score, writer: _Writer, classes) -> None:
    training = context.training_rows(0)
    imputes = context.preprocessor(0).impute != "none"
    if not imputes:
        writer.result.notes.append("the run's preprocessing cannot impute, so 'missing' is not in the grids")
    grids = {
        a.name: attribute_values(a, training, points=settings.points, missing=imputes)
        for a in context.attributes
    }
    table = counterfactuals(context.cohort.frame, context.attributes, grids, score, classes=classes)
    writer.csv("counterfactual.csv", table)
    if settings.plots:
        plots.plot_counterfactual(table, context.attributes, classes, writer.path("counterfactual.png"))
    if not get_task(context.task).has_classes:  # a value's shift when a two-level attribute flips
        for attribute in context.attributes:
            if attribute.kind != "continuous" and len(attribute.levels) == 2:
                flip = level_table(table, context.cohort.frame, attribute)
                name = safe_name(attribute.name)
                writer.csv(f"flip_{name}.csv", flip)
                if settings.plots:
                    plots.plot_flip(flip, attribute, writer.path(f"flip_{name}.png"))


def _tabular(
    context: ExplainContext, settings, score, ensemble: Ensemble, explained, writer: _Writer, echo
) -> None:
    metric = headline(context.task)
    keep = labelled(context.cohort)
    summary_importance = None
    if keep.sum() >= 2:
        cohort = dataclasses.replace(context.cohort, frame=context.cohort.frame[keep].reset_index(drop=True))
        echo(f"permutation importance: {len(context.attributes)} attributes × {settings.repeats} repeats")
        table = permutation_importance(
            cohort.frame,
            [a.name for a in context.attributes],
            cohort.targets,
            lambda frames: score(frames, cohort),
            metric,
            repeats=settings.repeats,
            seed=settings.seed,
        )
        writer.csv("permutation_importance.csv", table)
        summary_importance = summarise_importance(table)
    else:
        writer.result.notes.append(
            "permutation importance needs at least 2 subjects with a known target; skipped"
        )
    echo(f"integrated gradients on the tabular input ({settings.ig_steps} steps)")
    gradients, check = tabular_integrated_gradients(
        context, ensemble, explained, steps=settings.ig_steps, batch_size=context.config.training.batch_size
    )
    writer.csv("integrated_gradients.csv", gradients)
    writer.result.notes.append(
        f"integrated gradients ({settings.ig_steps} steps): largest completeness gap |Σ IG − (f(x) − f(baseline))| "
        f"{check['max_gap']:.2g}, against a mean |f(x) − f(baseline)| of {check['mean_change']:.2g}"
    )
    summary_gradients = summarise_gradients(gradients)
    merged = summary_gradients
    if summary_importance is not None:
        merged = summary_importance.merge(summary_gradients, on="attribute", how="left")
    writer.csv("tabular_attribution.csv", merged)
    if settings.plots:
        plots.plot_tabular_attribution(
            summary_importance, summary_gradients, metric.name, writer.path("tabular_attribution.png")
        )


def _images(
    context: ExplainContext, settings, ensemble: Ensemble, explained, predicted, writer, echo
) -> None:
    spec = image_spec(context.config)
    frame = context.cohort.frame
    rows = choose_subjects(
        predicted if predicted is not None else [None] * len(frame), settings.image_subjects
    )
    if not rows:
        return
    patch = patch_voxels(settings.patch_mm, spec.voxel_mm)
    views = load_views(context, np.asarray(rows))
    names = sides(spec)
    tables = ensemble.tabular(frame.iloc[rows])
    reference = mean_view(context) if settings.image_baseline == "mean" else None
    records, maps, centres = [], [], []
    for k, row in enumerate(rows):
        subject = context.row_names[row]
        echo(f"image attribution ({settings.image_method}) of {subject} [{k + 1}/{len(rows)}]")
        tabular = [t[k : k + 1] for t in tables]
        target = None if explained is None else int(explained[row])
        if settings.image_method == "occlusion":
            result, output = occlusion_views(
                ensemble, views[k : k + 1], tabular, target, patch=patch, stride=patch, baseline=reference
            )
        else:
            result, output = gradient_views(
                ensemble, views[k : k + 1], tabular, target, steps=settings.ig_steps, baseline=reference
            )
        centre = image_center_mm(spec, frame["image"].iloc[row])
        centres.append(centre)
        maps.append(result)
        label = "prediction" if target is None else context.classes[target]
        for s, side in enumerate(names):
            affine = crop_affine(spec, side, centre)
            stem = f"images/{safe_name(subject)}_{side}"
            write_map(writer.path(f"{stem}.nii.gz"), result[s], affine)
            write_map(writer.path(f"{stem}_input.nii.gz"), views[k, s, 0].numpy(), affine)
            records.append(
                {
                    "subject_id": subject,
                    "view": side,
                    "explained": label,
                    "output": output,
                    "sum": float(result[s].sum()),
                    "sum_abs": float(np.abs(result[s]).sum()),
                    "max_abs": float(np.abs(result[s]).max()),
                }
            )
    writer.csv("image_attribution.csv", pd.DataFrame(records))
    if reference is not None:  # a box centred on each image: placed at the attributed subjects' mean centre
        known = [c for c in centres if c is not None]
        centre = np.mean(known, axis=0) if known else None
        for s, side in enumerate(names):
            affine = crop_affine(spec, side, centre)
            write_map(writer.path(f"images/baseline_{side}.nii.gz"), reference[s, 0].numpy(), affine)
    groups = [predicted[r] for r in rows] if predicted is not None else ["all"] * len(rows)
    for group in dict.fromkeys(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        mean_map = np.mean([maps[i] for i in members], axis=0)
        mean_abs = np.mean([np.abs(maps[i]) for i in members], axis=0)
        mean_image = views[members, :, 0].mean(dim=0).numpy()
        known = [centres[i] for i in members if centres[i] is not None]
        centre = np.mean(known, axis=0) if known else None
        for s, side in enumerate(names):
            affine = crop_affine(spec, side, centre)
            stem = f"images/mean_{safe_name(group)}_{side}"
            write_map(writer.path(f"{stem}.nii.gz"), mean_map[s], affine)
            write_map(writer.path(f"{stem}_input.nii.gz"), mean_image[s], affine)
            write_map(writer.path(f"{stem}_abs.nii.gz"), mean_abs[s], affine)
            what = f"p({group})" if predicted is not None else "the prediction"
            whom = f"{len(members)} subject(s)" + (f" predicted {group}" if predicted is not None else "")
            title = (
                f"{settings.image_method} attribution of {what} against the {settings.image_baseline} image, "
                f"{side} view; mean of {whom}"
            )
            if settings.plots:
                plots.plot_map_slices(
                    mean_image[s], mean_map[s], title, writer.path(f"{stem}.png"), magnitude=mean_abs[s]
                )


def _generated(
    context: ExplainContext, settings, ensemble: Ensemble, predicted, writer: _Writer, echo
) -> None:
    if not any(has_hyper_layers(m.model) for m in ensemble.members):
        writer.result.notes.append(f"{context.method} has no hyper layers: nothing generated to show")
        return
    frame = context.cohort.frame
    ids = frame["subject_id"].astype(str).to_numpy()
    groups = groupings(frame, [(a.name, a.kind) for a in context.attributes], predicted=predicted)
    spreads, separations = [], []
    for member in ensemble.members:
        unit = member.unit
        layers = generate(member.model, torch.from_numpy(member.preprocessor.transform(frame)))
        arrays: dict[str, np.ndarray] = {"subject_ids": ids.astype(str)}
        for layer in layers:
            vectors = layer.vectors()
            arrays[f"{layer.layer}/embedding"] = layer.embedding
            arrays[f"{layer.layer}/weight_mean"] = layer.weight.mean(axis=0)
            arrays[f"{layer.layer}/weight_std"] = layer.weight.std(axis=0)
            if vectors.size <= MAX_SAVED_VALUES:
                arrays[f"{layer.layer}/weight"] = layer.weight
                if layer.bias is not None:
                    arrays[f"{layer.layer}/bias"] = layer.bias
            else:
                writer.result.notes.append(
                    f"{unit.name} {layer.layer}: {vectors.size} generated values are more than "
                    f"{MAX_SAVED_VALUES}; saved mean, std and embeddings (regenerate with layer.generate)"
                )
            base = {"model": unit.key, "version": unit.version, "fold": unit.fold, "layer": layer.layer}
            spreads.append(base | spread(vectors))
            for grouping, labels in groups.items():
                table = separation(vectors, labels, permutations=settings.permutations, seed=settings.seed)
                for row in table.to_dict("records"):
                    separations.append(base | {"grouping": grouping} | row)
        name = f"generated/{safe_name(context.method)}_{unit.key}.npz"
        write_atomic(writer.path(name), lambda fh, a=arrays: np.savez_compressed(fh, **a), binary=True)
    echo(f"generated weights of {len(ensemble.members)} models saved")
    writer.csv("generated_spread.csv", pd.DataFrame(spreads))
    table = pd.DataFrame(separations)
    writer.csv("generated_separation.csv", table)
    if not table.empty and settings.plots:
        plots.plot_separation(separation_summary(table), writer.path("generated.png"))


# ---------------------------------------------------------------------------------------------- summary
def _finish(context: ExplainContext, settings: ExplainSettings, writer: _Writer, classes) -> None:
    result, tables = writer.result, writer.result.tables
    lines = [
        f"# Explanation of {context.method} (split seed {context.split_seed})",
        "",
        f"Run: `{context.run_dir}`. {len(context.cohort.frame)} subjects. Task: {context.task}.",
        "",
    ]
    if "counterfactual.csv" in tables:
        effects = counterfactual_effects(tables["counterfactual.csv"], classes)
        lines += ["## Counterfactual conditioning", "",
                  "How far the subjects' mean prediction moves when one attribute is changed (scan fixed):", "",
                  markdown(effects), ""]  # fmt: skip
        for attribute in context.attributes:
            name = f"flip_{safe_name(attribute.name)}.csv"
            if name in tables:
                lines += [*flip_lines(attribute.name, tables[name], attribute.levels), ""]
    if "tabular_attribution.csv" in tables:
        metric = headline(context.task)
        worse = "drop" if metric.higher_is_better else "rise"
        lines += ["## Tabular attribution", "",
                  f"`importance`: the {worse} of {metric.name} when the attribute is permuted among the subjects; "
                  "`attribution`: integrated gradients of the prediction.", "",
                  markdown(tables["tabular_attribution.csv"]), ""]  # fmt: skip
    if "image_attribution.csv" in tables:
        images = tables["image_attribution.csv"]
        count = images["subject_id"].nunique()
        lines += [
            "## Image attribution",
            "",
            f"{settings.image_method} maps of {count} subject(s) in `images/`.",
            "",
        ]
    if "generated_spread.csv" in tables:
        spreads = tables["generated_spread.csv"]
        per_layer = spreads.groupby("layer", sort=False)[
            ["parameters", "std_mean", "relative_spread"]
        ].median()
        lines += ["## What the hypernetwork generates", "",
                  "Across-subject spread of the generated parameters (median over models):", "",
                  markdown(per_layer.reset_index()), ""]  # fmt: skip
        separation_table = tables.get("generated_separation.csv")
        if separation_table is not None and not separation_table.empty:
            summary = separation_summary(separation_table)
            lines += ["Subgroups' mean generated parameters, distance / within-group spread (random groups: "
                      "`null_ratio`; `p_below_005`: models whose permutation p < 0.05):", "",
                      markdown(summary), ""]  # fmt: skip
    if result.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in result.notes), ""]
    write_text_atomic(writer.path("summary.md"), "\n".join(lines))
    path = writer.path("explain.json")
    manifest = {
        "run": str(context.run_dir),
        "method": context.method,
        "split_seed": context.split_seed,
        "subjects": len(context.cohort.frame),
        "settings": asdict(settings),
        "files": sorted(result.files),
    }
    write_text_atomic(path, json.dumps(manifest, indent=1) + "\n")


__all__ = ["PARTS", "Attribute", "ExplainResult", "ExplainSettings", "explain_run"]
