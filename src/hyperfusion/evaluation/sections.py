"""Markdown sections of the report, each from one table: skill, paired tests, inputs used, calibration,
training treatments and learning curves. Each function returns the section's text (heading included)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hyperfusion.evaluation.bootstrap import higher_is_better, is_better, skill_verdict
from hyperfusion.evaluation.calibration import entropy_by_group
from hyperfusion.evaluation.figures import mean_learning_curves
from hyperfusion.evaluation.frames import check_predictions, check_skill, check_treatments
from hyperfusion.text import format_table

__all__ = [
    "entropy_section",
    "format_p",
    "learning_section",
    "members_section",
    "paired_section",
    "reader_section",
    "sensitivity_section",
    "skill_section",
    "treatments_section",
]

NOT_BETTER = "not better than no skill"


def format_p(p: float) -> str:
    """``p < 0.001`` or ``p = 0.012``; a dash when there is no p-value."""
    if not np.isfinite(p):
        return "–"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _num(x: object, digits: int, *, signed: bool = False) -> str:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _interval(estimate: float, low: float, high: float, digits: int) -> str:
    return (
        f"{_num(estimate, digits, signed=True)} "
        f"[{_num(low, digits, signed=True)}, {_num(high, digits, signed=True)}]"
    )


def _confidence(skill: pd.DataFrame) -> str:
    if "confidence" in skill.columns:
        values = pd.to_numeric(skill["confidence"], errors="coerce").dropna().unique()
        if values.size == 1:
            return f"{100 * values[0]:g} %"
    return "95 %"


#: what the no-skill baseline predicts, and how the bootstrap is stratified (classification and regression)
NO_SKILL_BASELINE = (
    "predicts, for\nevery subject, the training rows' class prior (classification) "
    "or their mean target (regression)"
)
BOOTSTRAP_STRATA = "stratified by class for classification"


def skill_section(
    skill: pd.DataFrame,
    *,
    digits: int = 3,
    baseline: str = NO_SKILL_BASELINE,
    strata: str = BOOTSTRAP_STRATA,
) -> str:
    """Each method's difference to the no-skill baseline with its interval, and the flags.

    A run is **not better than no skill** when its interval includes zero (**worse** when it lies below).
    ``baseline`` says what the baseline predicts and ``strata`` how the bootstrap resamples (a task's own words,
    e.g. survival's).
    """
    df = check_skill(skill)
    level = _confidence(df)
    text = (
        "\n## Better than no skill?\n\n"
        f"Each run is compared with the no-skill baseline on the same test subjects. The baseline {baseline}.\n"
        "**A positive difference always means better than no skill**: it is method − baseline for metrics\n"
        "where higher is better, and baseline − method for MAE, ECE and Brier. The interval is a paired\n"
        f"bootstrap {level} interval over the test subjects ({strata}).\n"
        f"A run is flagged **{NOT_BETTER}** when its interval includes zero, and **worse than no skill** when\n"
        "it lies entirely below zero.\n\n"
    )
    rows = []
    for (method, metric), sub in df.groupby(["method", "metric"], sort=False):
        better = int(sum(is_better(lo, hi) for lo, hi in zip(sub["low"], sub["high"])))
        runs = len(sub)
        verdict = (
            "better in every run" if better == runs else f"**{NOT_BETTER}** in {runs - better} of {runs} runs"
        )
        rows.append(
            [
                method,
                metric,
                str(runs),
                str(better),
                _num(sub["difference"].mean(), digits, signed=True),
                verdict,
            ]
        )
    text += format_table(
        ["method", "metric", "runs", "runs better", "mean difference", "verdict"],
        rows,
        right=(2, 3, 4),
    )
    detail = []
    for _, r in df.iterrows():
        verdict = skill_verdict(r["low"], r["high"])
        shown = verdict if is_better(r["low"], r["high"]) else f"**{verdict}**"
        interval = _interval(r["difference"], r["low"], r["high"], digits)
        detail.append([r["method"], str(r["split_seed"]), str(r["version"]), r["metric"], interval, shown])
    text += "\nEvery run:\n\n" + format_table(
        ["method", "split seed", "version", "metric", f"difference [{level} CI]", "verdict"],
        detail,
        right=(1, 2, 4),
    )
    return text


def paired_section(
    paired: pd.DataFrame,
    reference: str,
    *,
    test_train_ratio: float | None,
    fold: str | None,
    alpha: float = 0.05,
    digits: int = 3,
) -> str:
    """The paired tests of :func:`hyperfusion.evaluation.stats.compare_paired` as a table, each p-value
    labelled with its test."""
    if paired.empty:
        return ""
    unit = "split seed and version" if fold is not None else "split seed, version and fold"
    ratio = (
        f"n_test/n_train = {test_train_ratio:.3g}"
        if test_train_ratio is not None
        else "not run: no n_test/n_train was given"
    )
    text = (
        f"\n## Paired comparison with {reference}\n\n"
        f"All methods are trained and tested on the same partitions, so runs pair by {unit}. Difference =\n"
        f"method − {reference} (for MAE, ECE and Brier a negative difference favours the method), with a\n"
        "bootstrap 95 % interval over the runs. Effect sizes: Cohen's d_z (mean / sd of the differences) and\n"
        "the matched-pairs rank-biserial correlation r (from −1 to +1). p-values: **Wilcoxon** is the two-sided\n"
        "Wilcoxon signed-rank test; **corrected t** is the Nadeau–Bengio corrected resampled t-test with J − 1\n"
        f"degrees of freedom ({ratio}). It allows for the overlap of the runs' training sets, which makes a\n"
        "plain paired t-test too confident.\n\n"
    )
    notes = [[n for n in str(note).split("; ") if n] for note in paired["note"]]
    shared = [n for n in notes[0] if all(n in other for other in notes)]
    rows = []
    empty = []  # rows with no number at all: folded into one line, not a table row of dashes
    for (_, r), own in zip(paired.iterrows(), notes):
        r["note"] = "; ".join(n for n in own if n not in shared)
        if not any(np.isfinite(float(r[c])) for c in _PAIRED_NUMBERS):
            empty.append(
                f"{r['method']} {r['metric']} ({int(r['pairs'])} pairs{'; ' + r['note'] if r['note'] else ''})"
            )
            continue
        interval = _interval(r["mean_difference"], r["difference_low"], r["difference_high"], digits)
        wilcoxon = (
            "–" if not np.isfinite(r["wilcoxon_p"]) else f"{r['wilcoxon_W']:g} ({format_p(r['wilcoxon_p'])})"
        )
        corrected = (
            "–"
            if not np.isfinite(r["corrected_p"])
            else f"{r['corrected_t']:.2f}, df {int(r['corrected_df'])} ({format_p(r['corrected_p'])})"
        )
        rows.append(
            [
                r["metric"],
                r["method"],
                str(int(r["pairs"])),
                interval,
                _num(r["cohen_dz"], 2),
                wilcoxon,
                _num(r["rank_biserial"], 2),
                corrected,
                r["note"],
            ]
        )
    text += (
        format_table(
            [
                "metric",
                "method",
                "pairs",
                "difference [95 % CI]",
                "d_z",
                "Wilcoxon W (p)",
                "r",
                "corrected t (p)",
                "note",
            ],
            rows,
            right=(2, 3, 4, 5, 6, 7),
        )
        if rows
        else ""
    )
    if shared:
        text += "\nEvery row: " + "; ".join(shared) + ".\n"
    if empty:
        text += f"\nNo paired value (too few pairs or runs) for {len(empty)}: " + ", ".join(empty) + ".\n"
    return text


#: The paired section's numbers: a row where none is finite says nothing but its names.
_PAIRED_NUMBERS = (
    "mean_difference",
    "difference_low",
    "difference_high",
    "cohen_dz",
    "wilcoxon_p",
    "rank_biserial",
    "corrected_p",
)


def sensitivity_section(
    flags: pd.DataFrame,
    *,
    tabular_method: str | None,
    image_method: str | None,
    fraction: float,
    floor: float,
    digits: int = 3,
) -> str:
    """Sensitivities per method and the "does not use …" flags of
    :func:`hyperfusion.evaluation.sensitivity.sensitivity_flags`."""
    if flags.empty:
        return ""

    def cell(mean: float, sd: float) -> str:
        return _num(mean, digits) + ("" if not np.isfinite(sd) else f" ± {_num(sd, digits)}")

    single = {
        "tabular": f"the tabular-only model ({tabular_method})"
        if tabular_method
        else "the tabular-only model",
        "images": f"the imaging-only model ({image_method})" if image_method else "the imaging-only model",
    }
    text = (
        "\n## Does each method use both inputs?\n\n"
        "Sensitivity is the mean absolute change of the predicted probabilities (regression: of the prediction)\n"
        "when the tabular rows (or the images) are shuffled among the test subjects. A model that ignores an\n"
        "input does not change. A method is flagged when its mean sensitivity to an input is below\n"
        f"max({floor:g}, {fraction:g} × the sensitivity of {single['tabular']} to the tabular data) for the\n"
        f"tabular data, and likewise with {single['images']} for the images. The thresholds here are\n"
        f"{_num(flags['tabular_threshold'].iloc[0], 4)} (tabular) and {_num(flags['image_threshold'].iloc[0], 4)}"
        " (images).\n\n"
    )
    rows = []
    for _, r in flags.iterrows():
        flag = []
        if r["ignores_tabular"]:
            flag.append("**does not use the tabular data**")
        if r["ignores_images"]:
            flag.append("**does not use the images**")
        note = "; ".join(flag) if r["checked"] else "(not checked)"
        rows.append(
            [
                r["method"],
                str(int(r["runs"])),
                cell(r["tabular_sensitivity"], r["tabular_std"]),
                cell(r["image_sensitivity"], r["image_std"]),
                note,
            ]
        )
    text += format_table(
        ["method", "runs", "tabular sensitivity", "image sensitivity", "flag"],
        rows,
        right=(1, 2, 3),
    )
    return text


def treatments_section(treatments: pd.DataFrame) -> str:
    """The table "how each method was trained", every column as given."""
    df = check_treatments(treatments)

    def show(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "–" if math.isnan(v) else f"{v:g}"
        return "–" if v is None else str(v)

    columns = list(df.columns)
    rows = [[show(v) for v in row] for row in df.itertuples(index=False)]
    return "\n## How each method was trained\n\n" + format_table([str(c) for c in columns], rows)


def entropy_section(predictions: pd.DataFrame, *, digits: int = 3) -> str:
    """Mean predictive entropy (nats) per method: overall, by true class, by correct / incorrect;
    empty text for a regression table."""
    checked = check_predictions(predictions)
    if checked is None:
        return ""
    df, names = checked
    columns = [f"p_{n}" for n in names]
    rows = []
    for method, sub in df.groupby("method", sort=False):
        table = entropy_by_group(
            sub[columns].to_numpy(dtype=np.float64), sub["class_index"].to_numpy(), names
        )
        cells = [
            "–" if r["n"] == 0 else f"{_num(r['mean'], digits)} (n = {int(r['n'])})"
            for _, r in table.iloc[1:].iterrows()
        ]
        rows.append([method, str(len(sub)), _num(table["mean"].iloc[0], digits), *cells])
    header = ["method", "subjects", "all", *[f"true {n}" for n in names], "correct", "incorrect"]
    return (
        "\nPredictive entropy of the test-set ensembles in nats, pooled over runs (0 = certain,\n"
        f"ln {len(names)} = {math.log(len(names)):.3f} = uniform). A useful model is less certain about the "
        "subjects it gets wrong.\n\n" + format_table(header, rows, right=range(1, len(header)))
    )


def learning_section(histories: pd.DataFrame, figure: str, *, digits: int = 3) -> str:
    """The learning-curve figure and, per method, where the mean validation metric peaked."""
    curves = mean_learning_curves(histories)
    rows = []
    for method, c in curves.groupby("method", sort=False):
        c = c.dropna(subset=["val_metric"])
        name = next((m for m in c["metric_name"] if m), "")
        if c.empty:
            rows.append([method, name or "–", "–", "–", "–", "–"])
            continue
        best = c["val_metric"].idxmax() if higher_is_better(name) else c["val_metric"].idxmin()
        rows.append(
            [
                method,
                name or "–",
                _num(c["epoch"].max(), 0),
                _num(c.loc[best, "epoch"], 0),
                _num(c.loc[best, "val_metric"], digits),
                _num(c["val_metric"].iloc[-1], digits),
            ]
        )
    return (
        "\n## Learning curves\n\n"
        f"![Learning curves]({figure})\n\n"
        "Mean validation metric per epoch over every curve of a method. A best epoch at or near the last\n"
        "epoch means the model was still improving when training stopped (under-trained); a validation loss\n"
        "rising while the training loss falls means over-fitting.\n\n"
        + format_table(
            ["method", "metric", "last epoch", "best epoch", "best", "at last epoch"],
            rows,
            right=(2, 3, 4, 5),
        )
    )


def members_section(members: pd.DataFrame, *, digits: int = 3) -> str:
    """Is each fusion method better than its own single-modality models (imaging only, tabular only)?

    ``members`` comes from :func:`hyperfusion.evaluation.aggregate.difference_table` with (fusion method, member)
    pairs: per run, the fusion ensemble minus the member's on the same test subjects with a paired bootstrap
    interval (positive = the fusion is better). A fusion below one of its members loses what that member reads
    alone — a defect to explain, not a row to print — so it is flagged as a method below no skill is.
    """
    if members.empty:
        return ""
    text = (
        "\n## Better than its own single-modality models?\n\n"
        "A fusion method reads both inputs, so it should beat the imaging-only and the tabular-only model of the\n"
        "same runs. Each run compares the fusion ensemble with the member's on the same test subjects (difference\n"
        "= fusion − member, positive = the fusion is better; paired bootstrap 95 % interval over subjects). A\n"
        "method is flagged **below its member** when its mean difference over runs is negative, and the runs\n"
        "whose whole interval lies below zero are counted.\n\n"
    )
    rows, flagged = [], []
    for (method, member, metric), sub in members.groupby(["method", "baseline", "metric"], sort=False):
        runs = len(sub)
        mean = float(sub["difference"].mean())
        below = int((sub["difference"] < 0).sum())
        significant = int((sub["high"] < 0).sum())
        if mean < 0:
            verdict = f"**below {member}** (in {below} of {runs} runs; interval below zero in {significant})"
            flagged.append(f"{method} < {member} ({metric} {_num(mean, digits, signed=True)})")
        else:
            verdict = f"not below (below in {below} of {runs} runs)"
        rows.append([method, member, metric, str(runs), _num(mean, digits, signed=True), verdict])
    if flagged:
        text += "Flagged: " + "; ".join(flagged) + ".\n\n"
    text += format_table(
        ["method", "member", "metric", "runs", "mean difference", "verdict"],
        rows,
        right=(3, 4),
    )
    return text


def reader_section(
    results: pd.DataFrame, *, image_methods: Sequence[str], reader: str, no_skill: str, digits: int = 3
) -> str:
    """How much of the crop reader's skill above chance each image model reaches (balanced accuracy).

    Per run (split seed, version): share = (model BA − no-skill BA) / (reader BA − no-skill BA); the table shows
    the mean over runs. Runs whose reader is not above no skill have no share (the crops hold nothing the
    reader finds), and are counted.
    """
    from hyperfusion.evaluation.stats import run_values

    wide = run_values(results)
    if "BA" not in wide.columns:
        return ""
    ba = wide["BA"]
    methods = set(ba.index.get_level_values("method"))
    if reader not in methods or no_skill not in methods:
        return ""
    reader_ba = ba.xs(reader, level="method")
    chance = ba.xs(no_skill, level="method")
    rows = []
    for method in image_methods:
        if method not in methods:
            continue
        own = ba.xs(method, level="method")
        keys = own.index.intersection(reader_ba.index).intersection(chance.index)
        if keys.empty:
            continue
        gain = (reader_ba[keys] - chance[keys]).to_numpy(dtype=float)
        lift = (own[keys] - chance[keys]).to_numpy(dtype=float)
        defined = lift[gain > 0] / gain[gain > 0]
        undefined = len(keys) - defined.size
        rows.append(
            [
                method,
                str(len(keys)),
                _num(own[keys].mean(), digits),
                _num(reader_ba[keys].mean(), digits),
                _num(chance[keys].mean(), digits),
                (f"{100 * defined.mean():.0f} %" if defined.size else "–")
                + (f" ({undefined} runs: reader not above no skill)" if undefined else ""),
            ]
        )
    if not rows:
        return ""
    text = (
        "\n## Does the image model read what the crops hold?\n\n"
        f"{reader} is the simplest reader of the same preprocessed crops: average-pooled voxels → PCA →\n"
        "logistic regression, fitted on each fold's training rows, its number of components and penalty chosen on\n"
        "the validation rows. An image model's share of the reader's skill is (model BA − no-skill BA) / (reader\n"
        "BA − no-skill BA) per run, averaged: near 0 the model reads nothing of what the crops hold; 100 % or\n"
        "more, it reads at least what a linear reader finds. A reader near no skill says the crops hold little.\n\n"
    )
    text += format_table(
        ["method", "runs", "BA", f"{reader} BA", "no-skill BA", "share of the reader's skill above chance"],
        rows,
        right=(1, 2, 3, 4),
    )
    first = rows[0]
    text += f"\n{first[0]} reaches {first[5].split(' (')[0]} of the crop reader's skill above chance.\n"
    return text
