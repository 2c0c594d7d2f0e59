"""A new cohort format is one small module: a table reader and an image locator, registered, then named.

The module below is what CONTRIBUTING.md ("How to add a cohort format") shows: a JSON-lines table (one JSON
object per line, no header) and images laid out as ``scans/<subject>.nii.gz``. It is imported the way a run
config's ``plugins:`` imports model modules, and a cohort in that format then loads through `load_manifest` end
to end.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from hyperfusion.config import config_from_dict
from hyperfusion.data import locators, tables
from hyperfusion.data.manifest import load_manifest, spec_from_dict
from tests.data.conftest import ras_affine, render, write_nifti
from tests.faults import fault

FORMAT_MODULE = textwrap.dedent(
    '''
    """JSON-lines cohorts: one JSON object per line; images at scans/<subject>.nii.gz beside the table."""

    import json

    import numpy as np
    import pandas as pd

    from hyperfusion.data import Located, register_image_locator, register_table_reader


    def read_jsonl(path, na_values, encoding):
        """Text cells (NaN where missing), indexed by line - 2 so that messages name the file's lines."""
        rows, lines = [], []
        for number, text in enumerate(path.read_text(encoding=encoding or "utf-8").splitlines(), 1):
            if text.strip():
                cells = json.loads(text)
                rows.append({k: np.nan if v is None or str(v) in na_values else str(v) for k, v in cells.items()})
                lines.append(number)
        return pd.DataFrame(rows, index=pd.Index(np.asarray(lines) - 2), dtype=object)


    def flat_scans(row):
        path = row.folder / "scans" / f"{row.subject}.nii.gz"
        return Located(path.resolve()) if path.is_file() else Located(None, f"{path} ({row.lines})")


    register_table_reader("jsonl", read_jsonl, suffixes=[".jsonl"])
    register_image_locator("flat_scans", flat_scans)
    '''
)


@pytest.fixture
def registries(monkeypatch):
    """The registries as shipped, restored after the test (a plugin's registrations last for the process)."""
    monkeypatch.setattr(tables, "_READERS", dict(tables._READERS))
    monkeypatch.setattr(tables, "_SUFFIXES", dict(tables._SUFFIXES))
    monkeypatch.setattr(locators, "_LOCATORS", dict(locators._LOCATORS))


def _jsonl_cohort(folder: Path, rows: list[dict], spec: dict | None = None) -> Path:
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    for row in rows:
        write_nifti(
            folder / "scans" / f"{row['id']}.nii.gz", render((21, 27, 20), affine, marker=False), affine
        )
    text = "\n".join(json.dumps(row) for row in rows) + "\n"
    (folder / "cohort.jsonl").write_text(text)
    base = {
        "table": "cohort.jsonl",
        "subject": "id",
        "target": {"column": "age", "task": "regression"},
        "image": {"locator": "flat_scans"},
        "tabular": {"continuous": ["score"], "categorical": ["sex"]},
    }
    path = folder / "cohort.yaml"
    path.write_text(yaml.safe_dump(base | (spec or {})))
    return path


ROWS = [
    {"id": "a", "age": 61, "score": 1.5, "sex": "F"},
    {"id": "b", "age": 70, "score": None, "sex": "M"},
    {"id": "c", "age": 75.5, "score": 3, "sex": "F"},
]


def test_a_new_cohort_format_is_one_module(tmp_path, registries) -> None:
    module = tmp_path / "jsonl_cohort.py"
    module.write_text(FORMAT_MODULE)
    manifest = _jsonl_cohort(tmp_path, ROWS)
    config = (
        config_from_dict(  # a run config's plugins are imported first, as for a module registering models
            {"cohort": manifest.name, "methods": ["brainage-imaging"], "plugins": [module.name]},
            base=tmp_path,
        )
    )
    assert config.plugins == ("jsonl_cohort.py",)
    assert "jsonl" in tables.table_readers() and "flat_scans" in locators.image_locators()

    cohort = load_manifest(tmp_path / config.cohort)
    frame = cohort.frame
    assert frame["subject_id"].tolist() == ["a", "b", "c"]
    assert frame["target"].tolist() == [61.0, 70.0, 75.5]
    assert frame["line"].tolist() == [1, 2, 3]  # JSON lines have no header: row n is line n
    assert frame["score"].isna().tolist() == [False, True, False]
    assert frame["sex"].tolist() == ["F", "M", "F"]
    assert [Path(p) for p in frame["image"]] == [
        (tmp_path / "scans" / f"{s}.nii.gz").resolve() for s in "abc"
    ]
    assert cohort.spec.locator == "flat_scans"

    # The format's errors still name the file's lines, and every check of the manifest still applies.
    with pytest.raises(ValueError, match=r"cohort\.jsonl.*line 2"):
        load_manifest(_jsonl_cohort(tmp_path, [ROWS[0], ROWS[1] | {"score": "high"}, ROWS[2]]))
    (tmp_path / "scans" / "c.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image file\(s\) not found: .*c\.nii\.gz \(line 3\)"):
        load_manifest(tmp_path / "cohort.yaml")


def test_a_manifest_can_name_the_reader(tmp_path, registries) -> None:
    """``table_reader`` overrides the suffix: here a tab-separated file named .txt (read as CSV by default)."""
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    for i in range(3):
        write_nifti(tmp_path / f"{i}.nii.gz", render((21, 27, 20), affine, marker=False), affine)
    (tmp_path / "t.txt").write_text(
        "id\ty\timg\n" + "".join(f"s{i}\t{50 + i}\t{i}.nii.gz\n" for i in range(3))
    )
    spec = {"table": "t.txt", "subject": "id", "target": {"column": "y", "task": "regression"}}
    (tmp_path / "cohort.yaml").write_text(
        yaml.safe_dump(spec | {"image": {"column": "img"}, "table_reader": "tsv"})
    )
    assert load_manifest(tmp_path / "cohort.yaml").frame["target"].tolist() == [50.0, 51.0, 52.0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"table_reader": "xml"},
            r"^S: 'table_reader' 'xml' is not a registered table reader; choose one of \['csv', 'tsv'\]$",
        ),
        (
            {"image": {"locator": "adni"}},
            r"^S: 'image.locator' 'adni' is not a registered image locator; choose one of \['column', 'glob'\]$",
        ),
        (
            {"image": {"locator": "glob", "column": "image"}},
            r"'image.locator' 'glob' reads 'image.glob', which the spec lacks",
        ),
    ],
)
@fault(
    "manifest spec",
    "a table reader or image locator name that is not registered (a plugin not loaded, a typo)",
    "ValueError naming the key, the name and the registered ones",
)
def test_unknown_reader_or_locator_names_the_valid_ones(extra: dict, message: str) -> None:
    spec = {"preset": "adnimerge", **extra}
    with pytest.raises(ValueError, match=message):
        spec_from_dict(spec, source="S")
