"""docs/reliability.md is the catalogue of the tests' own ``@fault`` markers (see tests/faults.py)."""

from __future__ import annotations

from tests.faults import DOCUMENT, collect, render


def test_catalogue_matches_the_markers() -> None:
    faults = collect()
    assert faults, "no @fault markers found"
    assert DOCUMENT.read_text() == render(faults), "regenerate: python tests/faults.py > docs/reliability.md"


def test_every_fault_names_a_test_once() -> None:
    tests = [f.test for f in collect()]
    assert len(tests) == len(set(tests)), "a test carries two @fault markers; split it"
