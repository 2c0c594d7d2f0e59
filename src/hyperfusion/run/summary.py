"""What a finished run prints on the terminal: the paper's Table 3 layout and where the report lives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hyperfusion.evaluation.aggregate import ENSEMBLE
from hyperfusion.evaluation.report import markdown_table
from hyperfusion.run.finished import load_run_config


def print_summary(results: pd.DataFrame, run_dir: str | Path) -> None:
    config = load_run_config(run_dir)
    classification = (results["fold"] == ENSEMBLE).any() and "BA" in set(results["metric"])
    fold = ENSEMBLE if classification else "0"
    headline = ["BA", "PRC", "F1", "AUC"] if classification else None
    if headline is not None:
        available = results.loc[results["fold"] == fold, "metric"]
        headline += [m for m in dict.fromkeys(available) if m.startswith("TP-")]  # in class order
    print()
    print(markdown_table(results, reference=config.reference_method, metrics=headline, fold=fold))
    print(f"report: {Path(run_dir) / 'report.md'}  results: {Path(run_dir) / 'results.csv'}")
