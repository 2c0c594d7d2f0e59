"""hyperfusion.evaluation: metrics, ensembles, baselines, significance tests, calibration and reports on arrays
of predictions and results tables (never on models)."""

from hyperfusion.evaluation.bootstrap import (
    BootstrapDifference,
    bootstrap_difference,
    bootstrap_differences,
    skill_verdict,
)
from hyperfusion.evaluation.calibration import (
    brier_score,
    calibration_metrics,
    entropy_by_group,
    expected_calibration_error,
    reliability_curve,
)
from hyperfusion.evaluation.ensemble import (
    inverse_entropy_ensemble,
    inverse_entropy_weights,
    mean_probabilities,
    top_k_indices,
    top_k_mean,
)
from hyperfusion.evaluation.metrics import classification_metrics, regression_metrics
from hyperfusion.evaluation.noskill import (
    NO_SKILL,
    class_prior,
    noskill_classification_metrics,
    noskill_predictions,
    noskill_probabilities,
    noskill_regression_metrics,
)
from hyperfusion.evaluation.report import (
    REPORT_SECTIONS,
    ReportContext,
    Section,
    insert_section,
    markdown_table,
    summary_table,
    write_report,
)
from hyperfusion.evaluation.sensitivity import sensitivity_flags
from hyperfusion.evaluation.stats import (
    RESULT_COLUMNS,
    check_results,
    compare_paired,
    compare_to_reference,
    corrected_resampled_t,
    paired_runs,
)

__all__ = [
    "NO_SKILL",
    "REPORT_SECTIONS",
    "RESULT_COLUMNS",
    "BootstrapDifference",
    "ReportContext",
    "Section",
    "bootstrap_difference",
    "bootstrap_differences",
    "brier_score",
    "calibration_metrics",
    "check_results",
    "class_prior",
    "classification_metrics",
    "compare_paired",
    "compare_to_reference",
    "corrected_resampled_t",
    "entropy_by_group",
    "expected_calibration_error",
    "insert_section",
    "inverse_entropy_ensemble",
    "inverse_entropy_weights",
    "markdown_table",
    "mean_probabilities",
    "noskill_classification_metrics",
    "noskill_predictions",
    "noskill_probabilities",
    "noskill_regression_metrics",
    "paired_runs",
    "regression_metrics",
    "reliability_curve",
    "sensitivity_flags",
    "skill_verdict",
    "summary_table",
    "top_k_indices",
    "top_k_mean",
    "write_report",
]
