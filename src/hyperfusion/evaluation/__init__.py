"""hyperfusion.evaluation: metrics, ensembles, significance tests and reports on arrays of predictions."""

from hyperfusion.evaluation.ensemble import (
    inverse_entropy_ensemble,
    inverse_entropy_weights,
    mean_probabilities,
    top_k_indices,
    top_k_mean,
)
from hyperfusion.evaluation.metrics import classification_metrics, regression_metrics
from hyperfusion.evaluation.report import markdown_table, summary_table, write_report
from hyperfusion.evaluation.stats import RESULT_COLUMNS, check_results, compare_to_reference

__all__ = [
    "RESULT_COLUMNS",
    "check_results",
    "classification_metrics",
    "compare_to_reference",
    "inverse_entropy_ensemble",
    "inverse_entropy_weights",
    "markdown_table",
    "mean_probabilities",
    "regression_metrics",
    "summary_table",
    "top_k_indices",
    "top_k_mean",
    "write_report",
]
