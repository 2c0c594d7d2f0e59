"""Does a fusion method use both inputs? Flags from the permutation sensitivities in the results table.

The results may carry two metrics per run (computed by whoever scores the models):

- ``tabular_sensitivity``: the mean absolute change of the predicted probabilities (regression: of the
  predicted value) when the tabular rows are permuted among the test subjects, and
- ``image_sensitivity``: the same when the images are permuted.

A model that ignores an input does not change when that input is shuffled. Its sensitivity to it is then
(near) zero.

**Near zero**, for a method's mean sensitivity over runs, means below

    threshold = max(floor, fraction × the single-input model's mean sensitivity to that input)

The single-input model is the tabular-only method for the tabular data and the imaging-only method for the
images. The defaults are ``fraction = 0.1`` and ``floor = 1e-3``. So a fusion model is flagged when shuffling
the tabular rows moves its outputs by less than a tenth of what it moves the tabular-only model's. The floor
is in the outputs' units: probability for classification, the target's unit (e.g. years) for regression. It
alone is used when the single-input model is not in the results. The no-skill baseline and the two
single-input models themselves are not checked.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hyperfusion.evaluation.stats import ENSEMBLE_FOLD, run_values

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_FRACTION",
    "IMAGE_SENSITIVITY",
    "SENSITIVITY_METRICS",
    "TABULAR_SENSITIVITY",
    "sensitivity_flags",
]

TABULAR_SENSITIVITY = "tabular_sensitivity"
IMAGE_SENSITIVITY = "image_sensitivity"
SENSITIVITY_METRICS = (TABULAR_SENSITIVITY, IMAGE_SENSITIVITY)
DEFAULT_FRACTION = 0.1
DEFAULT_FLOOR = 1e-3

FLAG_COLUMNS = (
    "method",
    "runs",
    "tabular_sensitivity",
    "tabular_std",
    "image_sensitivity",
    "image_std",
    "checked",
    "tabular_threshold",
    "image_threshold",
    "ignores_tabular",
    "ignores_images",
)


def _stats(values: pd.Series) -> tuple[int, float, float]:
    v = values.dropna().to_numpy(dtype=float)
    return (
        v.size,
        (float(v.mean()) if v.size else math.nan),
        (float(v.std(ddof=1)) if v.size > 1 else math.nan),
    )


def sensitivity_flags(
    results: pd.DataFrame,
    *,
    fold: str | None = ENSEMBLE_FOLD,
    tabular_method: str | None = "Tabular",
    image_method: str | None = "Imaging",
    exclude: tuple[str, ...] = ("no-skill",),
    fraction: float = DEFAULT_FRACTION,
    floor: float = DEFAULT_FLOOR,
) -> pd.DataFrame:
    """Mean sensitivities per method and whether each checked method ignores an input (see the module).

    Returns the columns of :data:`FLAG_COLUMNS`: one row per method that has a sensitivity metric, in table
    order. ``checked`` is False for the excluded and single-input methods (their flags are False).
    An empty frame means the results carry no sensitivities.

    Raises:
        ValueError: ``fraction`` or ``floor`` negative or not finite.
    """
    for name, value in (("fraction", fraction), ("floor", floor)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    wide = run_values(results, fold=fold)
    present = [m for m in SENSITIVITY_METRICS if m in wide.columns]
    if not present:
        return pd.DataFrame(columns=list(FLAG_COLUMNS))
    for metric in SENSITIVITY_METRICS:
        if metric not in wide.columns:
            wide[metric] = np.nan
    order = [
        m for m in pd.unique(results["method"].astype(str)) if m in set(wide.index.get_level_values("method"))
    ]
    means: dict[str, dict[str, tuple[int, float, float]]] = {}
    for method in order:
        sub = wide.xs(method, level="method")
        means[method] = {m: _stats(sub[m]) for m in SENSITIVITY_METRICS}

    def threshold(single: str | None, metric: str) -> float:
        base = means.get(single, {}).get(metric, (0, math.nan, math.nan))[1] if single else math.nan
        return max(floor, fraction * base) if np.isfinite(base) else floor

    tab_threshold = threshold(tabular_method, TABULAR_SENSITIVITY)
    img_threshold = threshold(image_method, IMAGE_SENSITIVITY)
    skip = set(exclude) | {tabular_method, image_method}
    rows = []
    for method in order:
        n_tab, tab, tab_sd = means[method][TABULAR_SENSITIVITY]
        n_img, img, img_sd = means[method][IMAGE_SENSITIVITY]
        if n_tab == 0 and n_img == 0:
            continue
        checked = method not in skip
        rows.append(
            {
                "method": method,
                "runs": max(n_tab, n_img),
                "tabular_sensitivity": tab,
                "tabular_std": tab_sd,
                "image_sensitivity": img,
                "image_std": img_sd,
                "checked": checked,
                "tabular_threshold": tab_threshold,
                "image_threshold": img_threshold,
                "ignores_tabular": bool(checked and np.isfinite(tab) and tab < tab_threshold),
                "ignores_images": bool(checked and np.isfinite(img) and img < img_threshold),
            }
        )
    return pd.DataFrame(rows, columns=list(FLAG_COLUMNS))
