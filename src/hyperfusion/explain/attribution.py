"""Tabular attribution: which attributes the ensemble's predictions depend on.

- Permutation importance: an attribute's RAW column is permuted among the subjects before preprocessing, so its
  one-hot columns and missing flag move together (a permuted missing value stays missing), and the drop of the run's
  headline metric is recorded (balanced accuracy; for regression the increase of the MAE). Every attribute is
  permuted with the same permutations in a repeat (common random numbers), ``default_rng([seed, repeat])``.
- Integrated gradients on each fold model's preprocessed tabular vector against the mean vector of that fold's
  training rows, the image held fixed, summed per attribute over its columns, averaged over the fold models (and
  versions). The output explained is the probability of the class the ensemble predicts for the subject
  (regression: the prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hyperfusion.explain.context import ExplainContext, column_attributes
from hyperfusion.explain.ensemble import Ensemble, Member, batches, load_views
from hyperfusion.explain.gradients import DEFAULT_STEPS, completeness_gap, integrated_gradients
from hyperfusion.tasks import Metric, get_task

Scorer = Callable[[list[pd.DataFrame]], list[np.ndarray]]
DEFAULT_REPEATS = 5


#: the run's headline metric: its name, how to compute it, and whether higher is better
Headline = Metric


def headline(task: str) -> Headline:
    """The task's selection metric: balanced accuracy for classification, MAE for regression."""
    return get_task(task).selection


def permutation_importance(
    frame: pd.DataFrame,
    attributes: Sequence[str],
    targets: np.ndarray,
    score: Scorer,
    metric: Headline,
    *,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
) -> pd.DataFrame:
    """Each attribute's importance per repeat: ``importance`` = the metric's change for the worse.

    Args:
        frame: the subjects' rows (raw values, as a ``Cohort`` frame holds them).
        attributes: the columns to permute, one at a time.
        targets: the subjects' targets (class indices or values), aligned with ``frame``.
        score: scores a list of frames (e.g. ``score_frames`` bound to the run).
        metric: the headline metric.
        repeats: permutations per attribute (>= 1; >= 5 for a spread worth reading).
        seed: seeds the permutations.

    Returns:
        Columns ``attribute, repeat, metric, baseline, permuted, importance``.

    Raises:
        ValueError: fewer than 2 subjects, repeats < 1, targets of another length.
    """
    n = len(frame)
    if n < 2:
        raise ValueError(f"permutation importance needs at least 2 subjects with a target, got {n}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for {n} subjects")
    permutations = [np.random.default_rng([seed, r]).permutation(n) for r in range(repeats)]
    frames = [frame]
    for attribute in attributes:
        for order in permutations:
            shuffled = frame.copy()
            shuffled[attribute] = frame[attribute].to_numpy()[order]
            frames.append(shuffled)
    scored = score(frames)
    baseline = metric.compute(scored[0], targets)
    rows = []
    for a, attribute in enumerate(attributes):
        for r in range(repeats):
            permuted = metric.compute(scored[1 + a * repeats + r], targets)
            change = baseline - permuted if metric.higher_is_better else permuted - baseline
            rows.append(
                {
                    "attribute": attribute,
                    "repeat": r,
                    "metric": metric.name,
                    "baseline": baseline,
                    "permuted": permuted,
                    "importance": change,
                }
            )
    return pd.DataFrame(rows)


def summarise_importance(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1) of each attribute's importance over repeats, most important first."""
    grouped = table.groupby("attribute", sort=False)["importance"]
    out = pd.DataFrame(
        {"importance_mean": grouped.mean(), "importance_std": grouped.std(ddof=1), "repeats": grouped.size()}
    )
    return out.sort_values("importance_mean", ascending=False).reset_index()


def explained_output(task: str, values: Tensor, classes: Tensor | None) -> Tensor:
    """The scalar explained per sample from per-view outputs ``[B, S(, C)]``: the chosen class's probability
    (classification) or the prediction, averaged over the views as the run averages them."""
    mean = values.mean(dim=1)
    if get_task(task).has_classes:
        assert classes is not None
        return mean.gather(1, classes.view(-1, 1).to(mean.device))[:, 0]
    return mean


def tabular_integrated_gradients(
    context: ExplainContext,
    ensemble: Ensemble,
    explained: np.ndarray | None,
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 8,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Integrated gradients of every subject's explained output, per attribute, averaged over the members.

    Args:
        context: the run and the subjects.
        ensemble: the loaded ensemble.
        explained: per subject, the class index whose probability is explained (classification); None for
            regression.
        steps: points of the Riemann sum.
        batch_size: subjects per forward pass.

    Returns:
        The long table ``subject_id, attribute, attribution``, and a check of the quadrature: ``max_gap``, the
        largest ``|Σ IG − (f(x) − f(b))|`` over subjects and members, and ``mean_change``, the mean
        ``|f(x) − f(b)|`` it compares with.
    """
    frame = context.cohort.frame
    names = [a.name for a in context.attributes]
    total = np.zeros((len(frame), len(names)))
    worst, changes = 0.0, []
    baselines = {m.unit.fold: _baseline(context, m) for m in ensemble.members}
    tables = [torch.from_numpy(m.preprocessor.transform(frame)) for m in ensemble.members]
    owners = [np.asarray(column_attributes(m.preprocessor)) for m in ensemble.members]
    for rows in batches(len(frame), batch_size):
        views = load_views(context, np.arange(rows.start, rows.stop)).to(ensemble.device)
        classes = None if explained is None else torch.as_tensor(explained[rows], dtype=torch.int64)
        for member, table, owner in zip(ensemble.members, tables, owners):
            f = _explained_function(ensemble, member, views, classes)
            x = table[rows].to(ensemble.device)
            baseline = baselines[member.unit.fold].to(ensemble.device)
            ig = integrated_gradients(f, x, baseline, steps=steps)
            gap = completeness_gap(f, x, baseline, ig).abs()
            with torch.no_grad():
                changes.append((f(x) - f(torch.broadcast_to(baseline, x.shape))).abs().cpu())
            worst = max(worst, float(gap.max()))
            columns = ig.detach().cpu().numpy().astype(np.float64)
            for j, name in enumerate(names):
                total[rows, j] += columns[:, owner == name].sum(axis=1)
    total /= len(ensemble.members)
    ids = frame["subject_id"].astype(str).to_numpy()
    table = pd.DataFrame(
        {
            "subject_id": np.repeat(ids, len(names)),
            "attribute": np.tile(names, len(ids)),
            "attribution": total.ravel(),
        }
    )
    return table, {"max_gap": worst, "mean_change": float(torch.cat(changes).mean())}


def summarise_gradients(table: pd.DataFrame) -> pd.DataFrame:
    """Per attribute: mean absolute and mean signed attribution over subjects, largest mean absolute first."""
    grouped = table.groupby("attribute", sort=False)["attribution"]
    out = pd.DataFrame(
        {"mean_abs_attribution": grouped.apply(lambda v: v.abs().mean()), "mean_attribution": grouped.mean()}
    )
    return out.sort_values("mean_abs_attribution", ascending=False).reset_index()


def _baseline(context: ExplainContext, member: Member) -> Tensor:
    """The mean preprocessed vector of the member's fold's training rows."""
    rows = context.training_rows(member.unit.fold)
    return torch.from_numpy(member.preprocessor.transform(rows).mean(axis=0))


def _explained_function(
    ensemble: Ensemble, member: Member, views: Tensor, classes: Tensor | None
) -> Callable[[Tensor], Tensor]:
    def f(tabular: Tensor) -> Tensor:
        values = ensemble.member_values(member, views, tabular, grad=torch.is_grad_enabled())
        return explained_output(ensemble.task, values, classes)

    return f
