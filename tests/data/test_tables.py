"""Tests for hyperfusion.data.tables: a table's text read into cells at their true lines, or refused by line."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest

from hyperfusion.data.manifest import load_manifest
from hyperfusion.data.tables import read_table
from tests.data.conftest import ras_affine, render, write_nifti
from tests.faults import fault

NA = ("", "NA")


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _cohort(folder: Path, table_text: str) -> Path:
    """A regression manifest over ``t.csv`` (columns id, y, img, AGE…) with three images 0–2.nii.gz."""
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    for i in range(3):
        write_nifti(folder / f"{i}.nii.gz", render((21, 27, 20), affine, marker=False), affine)
    _write(folder / "t.csv", table_text)
    spec = folder / "cohort.yaml"
    spec.write_text(
        "table: t.csv\nsubject: id\ntarget: {column: y, task: regression}\nimage: {column: img}\n"
        "tabular: {continuous: [AGE]}\nranges: {AGE: [40, 100]}\n"
    )
    return spec


def test_cells_keep_their_lines_and_missing_values(tmp_path) -> None:
    path = _write(tmp_path / "t.csv", "\nid , AGE\na,70\n\nb,NA\nc\n")
    table = read_table(path, NA)
    assert list(table.columns) == ["id", "AGE"]
    assert table.index.tolist() == [1, 3, 4]  # file lines 3, 5, 6 (line − 2)
    assert table["AGE"].tolist()[0] == "70" and np.isnan(table["AGE"][3]) and np.isnan(table["AGE"][4])


def test_trailing_empty_fields_are_ignored(tmp_path) -> None:
    path = _write(tmp_path / "t.csv", "id,AGE\na,70,,\nb,71,\n")
    assert read_table(path, NA)["AGE"].tolist() == ["70", "71"]


@fault(
    "cohort table",
    "a table with two columns of the same name (e.g. AGE twice)",
    "ValueError naming the file, the header line, the column and both positions (pandas used the first silently)",
)
def test_a_column_named_twice_is_refused(tmp_path) -> None:
    spec = _cohort(tmp_path, "id,y,img,AGE,AGE\ns0,50,0.nii.gz,70,-999\ns1,51,1.nii.gz,71,72\n")
    with pytest.raises(
        ValueError, match=r"t\.csv, line 1: the header names column 'AGE' twice \(columns 4 and 5\)"
    ):
        load_manifest(spec)


@fault(
    "cohort table",
    "a row with one field more than the header",
    "ValueError naming the file, the line, the field counts and the extra value (was an internal TypeError)",
)
def test_a_row_with_a_field_too_many_names_its_line(tmp_path) -> None:
    spec = _cohort(tmp_path, "id,y,img,AGE\ns0,50,0.nii.gz,70,oops\ns1,51,1.nii.gz,71\n")
    with pytest.raises(
        ValueError,
        match=r"t\.csv, line 2: 5 fields but the header \(line 1\) names 4 columns; the field 'oops'",
    ):
        load_manifest(spec)


@fault(
    "cohort table",
    "a quoted value spanning two lines, then a bad value further down",
    "the error names the bad value's own line (it named the line above)",
)
def test_lines_after_a_quoted_newline_are_the_files(tmp_path) -> None:
    text = 'id,y,img,AGE,note\ns0,50,0.nii.gz,70,"two\nlines"\ns1,51,1.nii.gz,-999,x\n'
    spec = _cohort(tmp_path, text)
    with pytest.raises(ValueError, match=r"column 'AGE', line 4: value -999"):
        load_manifest(spec)


@fault(
    "cohort table",
    "a table saved as UTF-16 (with or without a byte-order mark)",
    "with the mark it is read as UTF-16; without, ValueError: NUL bytes, save as UTF-8 or declare the encoding"
    " (it was read as garbled latin-1)",
)
def test_utf16_tables_are_read_or_refused(tmp_path) -> None:
    text = "id,y,img,AGE\ns0,50,0.nii.gz,70\ns1,51,1.nii.gz,71\ns2,52,2.nii.gz,72\n"
    spec = _cohort(tmp_path, text)
    (tmp_path / "t.csv").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert load_manifest(spec).frame["AGE"].tolist() == [70.0, 71.0, 72.0]
    (tmp_path / "t.csv").write_bytes(text.encode("utf-16-le"))
    with pytest.raises(ValueError, match=r"t\.csv is not a text table: line 1 holds NUL bytes .*utf-16-le"):
        load_manifest(spec)
    spec.write_text(spec.read_text() + "encoding: utf-16-le\n")
    assert len(load_manifest(spec).frame) == 3


def test_an_unclosed_quote_names_its_line(tmp_path) -> None:
    path = _write(tmp_path / "t.csv", 'id,AGE\na,70\nb,"71\n')
    with pytest.raises(ValueError, match=r"t\.csv: line 3:"):
        read_table(path, NA)
