"""The report's tuning section: how each method of a run made from a tuned.yaml was tuned.

The section states each method's budget, its validation score at the config's own settings (trial 0) and at the
best trial, and the best settings the run trained it with — read from the config's ``tuning`` provenance, which
``config_from_dict`` has already checked against the settings the run uses (a mismatch never loads).
"""

from __future__ import annotations

from typing import Any

from hyperfusion.config import RunConfig
from hyperfusion.evaluation.report import ReportContext, Section
from hyperfusion.text import format_table


def _score(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def _shown(value: Any) -> str:
    """A setting as a reader takes it in: floats to 3 significant figures (the run config keeps them exact)."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _settings(entry: dict[str, Any]) -> str:
    pairs = {**(entry.get("training") or {}), **(entry.get("model") or {})}
    return ", ".join(f"{k} {_shown(v)}" for k, v in pairs.items()) or "the defaults"


def tuning_rows(config: RunConfig) -> list[list[str]]:
    """One row per method of the tuning: budget, pruned trials, default and best scores, best settings."""
    rows = []
    for method, entry in config.tuning["methods"].items():
        if entry.get("tuned") is False:
            rows.append([method, "—", "—", "—", "—", f"not tuned: {entry.get('why', '')}"])
            continue
        rows.append(
            [
                method,
                str(entry["budget"]),
                str(entry["pruned"]),
                _score(entry["default_score"]),
                f"{_score(entry['best_score'])} (trial {entry['best_trial']})",
                _settings(entry),
            ]
        )
    return rows


def tuning_section(config: RunConfig) -> Section:
    """The section (empty for a run not made from a tuned.yaml)."""

    def render(report: ReportContext) -> str:
        if not config.tuning:
            return ""
        metric = config.tuning["metric"]
        header = [
            "method",
            "trials",
            "pruned",
            f"val {metric} default",
            f"val {metric} best",
            "best settings",
        ]
        table = format_table(header, tuning_rows(config), right=[1, 2, 3, 4])
        return (
            "\n## Tuning (`hyperfusion tune`)\n\n"
            "Every method was tuned with the same budget on the training folds' validation rows (split seed "
            f"{config.protocol.split_seeds[0]}, version 0); the test rows were never read. Default: the config's own "
            "settings (trial 0); best: the settings this run trains the method with. A fused method's trials start "
            "from its members at their tuned settings, and takes the tabular member's tuned hidden width as its "
            "embedding width (its encoder is that member's hidden layers).\n\n"
            f"{table}"
        )

    return Section("tuning", render)
