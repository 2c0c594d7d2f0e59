"""The explanation's short text summary (``summary.md``): the numbers a reader looks at first, per part."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hyperfusion.explain.context import MISSING
from hyperfusion.text import format_table


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A plain markdown table (numbers to ``digits`` significant places)."""

    def cell(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return "—" if np.isnan(value) else f"{value:.{digits}g}"
        return str(value)

    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return format_table(list(frame.columns), rows, escape=False).removesuffix("\n")


def counterfactual_effects(table: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Per attribute: how far the subjects' mean prediction moves over its grid values (missing included).

    ``effect`` is the largest range, over the plotted series (each class's probability, or the prediction), of the
    mean over subjects; ``series`` and ``lowest``/``highest`` say where it is.
    """
    columns = [f"p_{c}" for c in classes] if classes else ["predicted"]
    rows = []
    for attribute, part in table.groupby("attribute", sort=False):
        means = part.groupby("value", sort=False)[columns].mean()
        ranges = means.max() - means.min()
        best = str(ranges.idxmax())
        rows.append(
            {
                "attribute": attribute,
                "series": best,
                "effect": float(ranges[best]),
                "lowest at": str(means[best].idxmin()),
                "highest at": str(means[best].idxmax()),
            }
        )
    return pd.DataFrame(rows).sort_values("effect", ascending=False).reset_index(drop=True)


def flip_lines(name: str, table: pd.DataFrame, levels: Sequence[str]) -> list[str]:
    first, second = levels
    lines = [f"**{name} flip** (prediction as {second} − as {first}, mean ± std over subjects):", ""]
    for level, part in table.groupby("observed", sort=False):
        lines.append(
            f"- record says {level} (n = {len(part)}): {part['difference'].mean():+.3g} ± "
            f"{part['difference'].std(ddof=0):.3g}"
        )
    lines.append(f"- all: {table['difference'].mean():+.3g} ± {table['difference'].std(ddof=0):.3g}")
    return lines


def separation_summary(separation: pd.DataFrame) -> pd.DataFrame:
    """Per layer, grouping and pair of groups: the median ratio over models and how many models separate them."""
    if separation.empty:
        return separation
    keys = ["layer", "grouping", "group_a", "group_b"]
    grouped = separation.groupby(keys, sort=False)
    out = grouped.agg(
        models=("ratio", "size"),
        n_a=("n_a", "first"),
        n_b=("n_b", "first"),
        ratio_median=("ratio", "median"),
        null_ratio=("null_ratio", "first"),
        relative_distance_median=("relative_distance", "median"),
        p_below_005=("p_value", lambda p: int((p < 0.05).sum())),
    ).reset_index()
    return out


def missing_label(value: str) -> str:
    return "missing" if value == MISSING else value
