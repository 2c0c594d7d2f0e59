"""``hyperfusion explain`` on the command line: options reach the pipeline, bad input ends with one line."""

from __future__ import annotations

import json

import pandas as pd

from hyperfusion.cli import main
from tests.faults import fault


def test_cli_explains_named_subjects(classification_run, tmp_path, capsys):
    out = tmp_path / "out"
    options = ["--subjects", "S01,S04", "--parts", "counterfactual,generated", "--points", "2"]
    code = main(
        ["explain", str(classification_run), "--out", str(out), *options, "--permutations", "9", "--no-plots"]
    )
    assert code == 0
    assert f"to {out}" in capsys.readouterr().out
    table = pd.read_csv(out / "counterfactual.csv", dtype={"subject_id": str})
    assert set(table["subject_id"]) == {"S01", "S04"}
    assert table.loc[table["attribute"] == "AGE", "value"].nunique() == 3  # two grid points and missing
    settings = json.loads((out / "explain.json").read_text())["settings"]
    assert settings["parts"] == ["counterfactual", "generated"] and settings["plots"] is False
    assert (out / "generated_separation.csv").is_file() and not (out / "counterfactual.png").exists()


@fault("explain", "hyperfusion explain with an unknown --parts entry", "exit status 2 and a one-line error")
def test_cli_bad_part_is_one_line(classification_run, tmp_path, capsys):
    code = main(
        ["explain", str(classification_run), "--out", str(tmp_path / "o"), "--parts", "counterfactual,pixels"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "hyperfusion explain: error: parts must be some of" in err and len(err.strip().splitlines()) == 1


@fault(
    "explain",
    "hyperfusion explain on a folder that is not a run",
    "exit status 2 naming the missing config.yaml",
)
def test_cli_not_a_run(tmp_path, capsys):
    assert main(["explain", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "has no config.yaml" in capsys.readouterr().err


def test_the_commands_parts_are_the_pipelines():
    from hyperfusion.commands.explain import PARTS as listed
    from hyperfusion.explain import PARTS

    assert listed == PARTS
