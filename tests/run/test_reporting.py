"""hyperfusion.run.reporting: a run directory read back as data (its plugins, its cohort) on tiny finished runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hyperfusion.config import ConfigError
from hyperfusion.run.reporting import load_run_config
from hyperfusion.run.runner import report_run
from hyperfusion.run.store import RunDirectoryError
from tests.explain.runs import classification_config, make_run, write_cohort
from tests.faults import fault

PLUGIN = "import os\nwith open(os.environ['PLUGIN_LOG'], 'a') as log:\n    log.write({what!r} + '\\n')\n"


@fault(
    "run directory",
    "a finished run whose config names a relative plugin (plugins: [my_models.py]), reported from another folder "
    "that holds a my_models.py of its own",
    "the run's own plugin file is executed, found by the absolute path the run recorded; the other is never run "
    "(report had executed it; from elsewhere a correct run failed with no file 'my_models.py')",
)
def test_a_runs_plugin_is_the_file_the_run_executed(tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "my_models.py").write_text(PLUGIN.format(what="ours"))
    log = tmp_path / "plugin.log"
    monkeypatch.setenv("PLUGIN_LOG", str(log))
    config = classification_config(write_cohort(tmp_path / "cohort")) | {"plugins": ["my_models.py"]}
    run = make_run(config, exp / "run")
    assert log.read_text() == "ours\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "my_models.py").write_text(PLUGIN.format(what="FOREIGN"))
    code = "import sys; from hyperfusion.run.reporting import load_run_config; load_run_config(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(run)], cwd=elsewhere, capture_output=True, text=True,
                          env={**os.environ, "PLUGIN_LOG": str(log)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "ours\nours\n"  # the fresh process ran the run's file, never the foreign one


def test_a_changed_or_foreign_plugin_is_never_executed(tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "my_models.py").write_text(PLUGIN.format(what="ours"))
    monkeypatch.setenv("PLUGIN_LOG", str(tmp_path / "plugin.log"))
    config = classification_config(write_cohort(tmp_path / "cohort")) | {"plugins": ["my_models.py"]}
    run = make_run(config, exp / "run")
    (exp / "my_models.py").write_text(PLUGIN.format(what="edited"))
    with pytest.raises(ConfigError, match=r"my_models\.py is not the code the run executed"):
        load_run_config(run)
    (exp / "my_models.py").write_text(PLUGIN.format(what="ours"))
    load_run_config(run)
    inside = run / "evil.py"  # a forged run directory naming a plugin inside itself, with a matching record
    inside.write_text(PLUGIN.format(what="EVIL"))
    from hyperfusion.plugins import import_plugins

    with pytest.raises(ValueError, match="inside the run directory"):
        import_plugins(["evil.py"], recorded={"evil.py": {"path": str(inside), "sha256": _sha256(inside)}},
                       data_folder=run)  # fmt: skip
    assert "EVIL" not in (tmp_path / "plugin.log").read_text()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


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
