"""hyperfusion.run.reporting: a run directory read back as data (its plugins, its cohort) on tiny finished runs."""

from __future__ import annotations

import pandas as pd
import pytest

from hyperfusion.run.runner import report_run
from hyperfusion.run.store import RunDirectoryError
from tests.explain.runs import classification_config, make_run, write_cohort
from tests.faults import fault


@fault(
    "report",
    "the cohort table relabelled (or rows dropped) after a run, then hyperfusion report",
    "exit status 2 naming the rows that changed, as a rerun does; nothing is re-reported (no-skill rows had been "
    "recomputed from the relabelled table)",
)
def test_report_checks_the_cohort_as_run_does(tmp_path):
    cohort = write_cohort(tmp_path / "cohort")
    run = make_run(classification_config(cohort), tmp_path / "run")
    table = pd.read_csv(cohort / "table.csv")
    table.loc[3, "DX"] = "CN" if table.loc[3, "DX"] == "AD" else "AD"
    table.to_csv(cohort / "table.csv", index=False)
    with pytest.raises(RunDirectoryError, match=r"the cohort differs .*1 row\(s\) changed \(S03\)"):
        report_run(run, echo=lambda _: None)
    assert not (run / "results.csv").exists()


@fault(
    "report",
    "a partitions file edited after a run (a subject moved out of the test partition), then report or explain",
    "exit status 2 naming the file: not the partitions the models were trained on (the no-skill baseline and "
    "explain's training rows would come from other rows than the models')",
)
def test_report_reads_the_partitions_the_models_were_trained_on(tmp_path):
    from hyperfusion.explain.context import load_context

    run = make_run(classification_config(write_cohort(tmp_path / "cohort")), tmp_path / "run")
    path = run / "partitions_seed0.csv"
    table = pd.read_csv(path, dtype={"subject_id": str})
    table.loc[table["partition"] == 2, "partition"] = 0
    table.to_csv(path, index=False)
    with pytest.raises(
        RunDirectoryError, match=r"partitions_seed0\.csv is not the partitions file the finished"
    ):
        report_run(run, echo=lambda _: None)
    with pytest.raises(RunDirectoryError, match=r"partitions_seed0\.csv is not the partitions file"):
        load_context(run)
