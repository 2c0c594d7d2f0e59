"""The catalogue of bad inputs and faults, generated from the tests themselves so it cannot drift from them.

Every test of a bad input or a fault carries the marker ``@fault(area, what, outcome)``: ``area`` groups the
catalogue (e.g. ``"cohort table"``), ``what`` says what the user did or what went wrong, ``outcome`` what they get.
``docs/reliability.md`` is written from these markers by reading the test files (no test is run)::

    python tests/faults.py > docs/reliability.md

and ``tests/test_faults.py`` fails when the document and the markers disagree.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DOCUMENT = ROOT / "docs" / "reliability.md"


def fault(area: str, what: str, outcome: str) -> pytest.MarkDecorator:
    """Mark a test as the check of one catalogued fault (the arguments must be string literals)."""
    return pytest.mark.fault(area=area, what=what, outcome=outcome)


@dataclass(frozen=True)
class Fault:
    area: str
    what: str
    outcome: str
    test: str  # path::name of the test that checks it


def _literal(node: ast.expr) -> str:
    value = ast.literal_eval(node)
    if not isinstance(value, str):
        raise ValueError(f"fault() arguments must be string literals, got {value!r}")
    return value


def collect(root: Path = TESTS) -> list[Fault]:
    """Every ``@fault(...)`` marker in the test files under ``root``, in file and line order."""
    found = []
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "fault":
                    args = [_literal(a) for a in decorator.args]
                    kwargs = {k.arg: _literal(k.value) for k in decorator.keywords}
                    names = ["area", "what", "outcome"]
                    values = dict(zip(names, args)) | kwargs
                    found.append(
                        Fault(
                            area=values["area"],
                            what=values["what"],
                            outcome=values["outcome"],
                            test=f"{path.relative_to(ROOT).as_posix()}::{node.name}",
                        )
                    )
    return sorted(found, key=lambda f: (f.area, f.test))


def render(faults: list[Fault]) -> str:
    """The markdown catalogue, one table per area."""
    lines = [
        "# Reliability: what each bad input or fault gets",
        "",
        "Generated from the `@fault(...)` markers of the tests (`python tests/faults.py > docs/reliability.md`);",
        "every row is checked by the test it names, and a test fails when this page and the markers disagree.",
        "Command-line errors are one line: exit status 2 for bad input (or a file that cannot be written: a full",
        "disk, a folder of another user), 1 for an internal error (set `HYPERFUSION_DEBUG=1` for the traceback).",
        "",
        "**Threat model.** A config file and a plugin are code: `hyperfusion run CONFIG` executes the plugins CONFIG",
        "names, so run a config only as you would run a script. A run directory is data: everything a run reads back",
        "(unit records, `cohort.json`, `models.json`, `plugins.json`, checkpoints through their records) is sealed",
        "with what it belongs to and a digest of itself, and a read that does not verify fails closed, naming the",
        "file. `report`, `predict` and `explain` never execute anything that was not part of the run: only the",
        "plugin files the run recorded, by absolute path and unchanged content, and never a file inside the run",
        "directory or one found in the current folder (see docs/config.md).",
    ]
    for area in dict.fromkeys(f.area for f in faults):
        lines += ["", f"## {area}", "", "| fault | what you get | test |", "|---|---|---|"]
        for f in (f for f in faults if f.area == area):
            lines.append(f"| {f.what} | {f.outcome} | `{f.test}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(collect()))
