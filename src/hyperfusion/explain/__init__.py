"""hyperfusion.explain: look inside a finished run — counterfactual records, attributions, generated weights.

Typical use::

    from hyperfusion.explain import explain_run, ExplainSettings

    result = explain_run("runs/ad", "explain-ad", settings=ExplainSettings(image_subjects=6))
    result.files          # what was written (counterfactual.csv, tabular_attribution.csv, images/..., ...)

The parts are usable alone: :func:`load_context` reads a run, :class:`Ensemble` holds its fold models,
:func:`counterfactuals`, :func:`permutation_importance`, :func:`integrated_gradients`, :func:`occlusion_map`,
:func:`generate` and :func:`separation` compute, :func:`crop_affine` places a map in the brain.
"""

from hyperfusion.explain.attribution import (
    Headline,
    headline,
    permutation_importance,
    summarise_gradients,
    summarise_importance,
    tabular_integrated_gradients,
)
from hyperfusion.explain.context import Attribute, ExplainContext, column_attributes, load_context
from hyperfusion.explain.counterfactual import (
    attribute_values,
    continuous_grid,
    counterfactuals,
    level_table,
)
from hyperfusion.explain.ensemble import Ensemble, load_views
from hyperfusion.explain.generated import LayerWeights, generate, groupings, separation, spread
from hyperfusion.explain.gradients import completeness_gap, integrated_gradients
from hyperfusion.explain.images import gradient_views, occlusion_views
from hyperfusion.explain.nifti import crop_affine, labels_in_crop, write_map
from hyperfusion.explain.occlusion import occlusion_map, patch_starts
from hyperfusion.explain.pipeline import PARTS, ExplainResult, ExplainSettings, explain_run

__all__ = [
    "PARTS",
    "Attribute",
    "Ensemble",
    "ExplainContext",
    "ExplainResult",
    "ExplainSettings",
    "Headline",
    "LayerWeights",
    "attribute_values",
    "column_attributes",
    "completeness_gap",
    "continuous_grid",
    "counterfactuals",
    "crop_affine",
    "explain_run",
    "generate",
    "gradient_views",
    "groupings",
    "headline",
    "integrated_gradients",
    "labels_in_crop",
    "level_table",
    "load_context",
    "load_views",
    "occlusion_map",
    "occlusion_views",
    "patch_starts",
    "permutation_importance",
    "separation",
    "spread",
    "summarise_gradients",
    "summarise_importance",
    "tabular_integrated_gradients",
    "write_map",
]
