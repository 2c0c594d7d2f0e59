"""Tests for hyperfusion.data.manifest: each preset on a small table written here, and every bad table."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.data.manifest import keys_markdown, load_manifest, load_table, read_spec, spec_from_dict
from tests.data.conftest import ras_affine, render, write_nifti
from tests.faults import fault

DX = ["CN", "SMC", "EMCI", "LMCI", "AD", "MCI", "Dementia"]
CLASS = [0, 0, 1, 1, 2, 1, 2]


def _image(folder: Path, name: str) -> Path:
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    return write_nifti(folder / name, render((21, 27, 20), affine, marker=False), affine)


def _adnimerge(folder: Path, n: int = 14, **overrides) -> Path:
    """An ADNIMERGE-like table with a baseline and an m06 row per subject, censored CSF strings and NaNs."""
    scan = _image(folder / "scans", "shared.nii.gz").read_bytes()
    rows = []
    for i in range(n):
        row = {
            "PTID": f"{i:03d}_S_{1000 + i}",
            "VISCODE": "bl",
            "DX_bl": DX[i % len(DX)],
            "AGE": f"{60 + i * 1.5:.1f}",
            "PTGENDER": "Female" if i % 2 else "Male",
            "PTEDUCAT": str(12 + i % 8),
            "APOE4": "" if i == 3 else str(i % 3),
            "ABETA": ">1700" if i % 5 == 0 else ("" if i % 4 == 1 else str(700 + 10 * i)),
            "PTAU": "<8" if i == 2 else str(20 + i),
            "TAU": str(200 + i),
            "FDG": "" if i % 3 == 0 else f"{1.1 + i / 100:.3f}",
            "AV45": "" if i % 2 else f"{1.0 + i / 50:.3f}",
            "image": f"scans/{i:03d}.nii.gz",
        }
        (folder / "scans" / f"{i:03d}.nii.gz").write_bytes(scan)
        rows.append(row)
        rows.append(
            {**row, "VISCODE": "m06", "DX_bl": "CN", "image": "scans/missing-but-not-baseline.nii.gz"}
        )
    table = pd.DataFrame(rows)
    for key, value in overrides.items():
        table = value(table) if callable(value) else table.assign(**{key: value})
    table.to_csv(folder / "ADNIMERGE.csv", index=False)
    return _spec(folder, {"preset": "adnimerge"})


def _spec(folder: Path, spec: dict, name: str = "cohort.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _load(path: Path, **kwargs):
    return load_manifest(path, **kwargs)


def _warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "hyperfusion" and r.levelno == logging.WARNING
    ]


def test_adnimerge_preset(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        cohort = load_manifest(_adnimerge(tmp_path))
    (message,) = _warnings(caplog)  # one line naming the file, the columns and the counts
    assert message.endswith("ADNIMERGE.csv: read 4 censored value(s) at their bound (ABETA: 3, PTAU: 1)")
    assert "\n" not in message
    frame = cohort.frame
    assert len(frame) == 14 and cohort.task == "classification" and cohort.classes == ("CN", "MCI", "AD")
    assert frame["target"].tolist() == [CLASS[i % 7] for i in range(14)]
    assert frame["target"].dtype == np.int64 and cohort.targets.dtype == np.int64
    assert frame["label"].tolist()[:5] == ["CN", "CN", "MCI", "MCI", "AD"]
    assert frame["subject_id"][0] == "000_S_1000" and frame["line"][1] == 4  # baseline rows: lines 2, 4, ...
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in frame["image"])
    assert frame.loc[0, "ABETA"] == 1700.0 and frame.loc[2, "PTAU"] == 8.0 and np.isnan(frame.loc[1, "ABETA"])
    assert np.isnan(frame.loc[3, "APOE4"]) and frame.loc[1, "PTGENDER"] == "Female"
    assert cohort.continuous == ("AGE", "PTEDUCAT", "APOE4", "ABETA", "PTAU", "TAU", "FDG", "AV45")
    assert cohort.categorical == ("PTGENDER",) and cohort.stratify == ("target", "PTGENDER", "AGE")
    features = cohort.preprocessor().fit(frame).transform(frame)
    assert features.shape[0] == 14 and np.all(np.isfinite(features))


def test_adnimerge_overrides_merge_with_the_preset(tmp_path) -> None:
    _adnimerge(tmp_path)
    spec = {
        "preset": "adnimerge",
        "target": {"column": "DX_bl", "mapping": {"SMC": "MCI"}},  # remap one label, keep the others
        "tabular": {"continuous": ["AGE"]},
    }
    cohort = _load(_spec(tmp_path, spec, "custom.yaml"))
    assert cohort.frame["label"][1] == "MCI" and cohort.frame["label"][2] == "MCI"  # SMC, EMCI
    assert cohort.continuous == ("AGE",) and cohort.categorical == ("PTGENDER",)


def _bids(folder: Path, sexes: list[str], ages: list[str]) -> Path:
    rows = []
    for i, (sex, age) in enumerate(zip(sexes, ages)):
        sub = f"sub-{i:02d}"
        _image(folder / sub / "anat", f"{sub}_T1w.nii.gz")
        rows.append({"participant_id": sub, "age": age, "sex": sex, "site": "A"})
    pd.DataFrame(rows).to_csv(folder / "participants.tsv", sep="\t", index=False)
    return _spec(folder, {"preset": "bids"})


def test_bids_preset(tmp_path, caplog) -> None:
    path = _bids(tmp_path, ["M", "female", "F", "male", "m"], ["23", "45.5", "61", "70", "38"])
    (tmp_path / "sub-01" / "ses-2" / "anat").mkdir(parents=True)  # a second session: the first is taken
    _image(tmp_path / "sub-01" / "ses-2" / "anat", "sub-01_ses-2_T1w.nii.gz")
    (tmp_path / "sub-02" / "anat" / "sub-02_T2w.nii.gz").write_bytes(b"")  # not a T1w: ignored
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        cohort = load_manifest(path)
    (message,) = _warnings(caplog)
    assert "participants.tsv: 1 subject(s) have several images matching" in message
    frame = cohort.frame
    assert cohort.task == "regression" and cohort.classes == ()
    assert frame["target"].tolist() == [23.0, 45.5, 61.0, 70.0, 38.0] and cohort.targets.dtype == np.float32
    assert frame["sex"].tolist() == ["M", "F", "F", "M", "M"]
    assert frame["image"][1].endswith("sub-01/anat/sub-01_T1w.nii.gz")
    assert cohort.stratify == ("target", "sex") and "label" not in frame


def test_generic_preset(tmp_path) -> None:
    _image(tmp_path, "a.nii.gz")
    for name in ("b", "c"):
        (tmp_path / f"{name}.nii.gz").write_bytes((tmp_path / "a.nii.gz").read_bytes())
    table = pd.DataFrame(
        {
            "eid": ["1", "2", "3", "2"],
            "visit": ["2", "2", "2", "3"],
            "y": ["yes", "no", "yes", "no"],
            "smoker": ["1", "0", "", "1"],
            "bmi": ["22.5", "30", "27", "31"],
            "site": ["x", "y", "x", "y"],
            "scan": ["a.nii.gz", "b.nii.gz", "c.nii.gz", "b.nii.gz"],
        }
    )
    table.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    spec = {
        "table": "t.tsv",
        "subject": "eid",
        "visit": {"column": "visit", "keep": 2},
        "target": {"column": "y", "task": "classification", "classes": ["no", "yes"]},
        "image": {"column": "scan"},
        "tabular": {"continuous": ["bmi"], "binary": ["smoker"]},
        "stratify": ["site"],
    }
    cohort = _load(_spec(tmp_path, spec))
    assert cohort.frame["target"].tolist() == [1, 0, 1] and cohort.binary == ("smoker",)
    assert cohort.frame["smoker"].tolist()[:2] == ["1", "0"] and pd.isna(cohort.frame["smoker"][2])
    assert cohort.frame["site"].tolist() == ["x", "y", "x"]
    assert cohort.stratify == ("target", "site")


# ---------------------------------------------------------------- bad input
@fault(
    "cohort table",
    "an image file named in the table does not exist",
    "FileNotFoundError listing every missing file with its line",
)
def test_missing_image_file(tmp_path) -> None:
    path = _adnimerge(
        tmp_path, image=lambda t: t.assign(image=t["image"].where(t.index != 4, "scans/gone.nii"))
    )
    with pytest.raises(FileNotFoundError, match=r"1 image file\(s\) not found: .*gone\.nii \(line 6\)"):
        _load(path)


@fault(
    "cohort table",
    "a BIDS subject without a T1w image",
    "FileNotFoundError naming the subject, line and searched pattern",
)
def test_bids_subject_without_image(tmp_path) -> None:
    path = _bids(tmp_path, ["M", "F"], ["20", "30"])
    (tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"subject 'sub-01', line 3"):
        _load(path)


@fault(
    "cohort table",
    "a column the spec declares is absent from the table",
    "ValueError naming the column, its role and the table's columns",
)
def test_declared_column_absent(tmp_path) -> None:
    path = _adnimerge(tmp_path, drop=lambda t: t.drop(columns=["FDG"]))
    with pytest.raises(
        ValueError, match=r"ADNIMERGE\.csv: declared column\(s\) 'FDG' \(tabular\.continuous\)"
    ):
        _load(path)


@fault("cohort table", "a subject id on two rows", "ValueError naming the id and its lines")
def test_duplicate_subject_ids(tmp_path) -> None:
    path = _adnimerge(tmp_path, dup=lambda t: t.assign(PTID=t["PTID"].where(t.index != 2, "000_S_1000")))
    with pytest.raises(ValueError, match=r"\['000_S_1000'\] appear more than once .*lines 2, 4"):
        _load(path)


@fault(
    "cohort table",
    "a row without a target",
    "ValueError naming the line; or dropped with a one-line warning (target.drop_missing)",
)
def test_missing_target_fails_or_is_dropped(tmp_path, caplog) -> None:
    path = _adnimerge(tmp_path, gap=lambda t: t.assign(DX_bl=t["DX_bl"].where(t.index != 6, "")))
    with pytest.raises(ValueError, match=r"target column 'DX_bl' is missing on line 8"):
        _load(path)
    spec = _spec(tmp_path, {"preset": "adnimerge", "target": {"drop_missing": True}}, "drop.yaml")
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        cohort = load_manifest(spec)
    assert any("dropped 1 row(s) without a target in column 'DX_bl' (line 8" in m for m in _warnings(caplog))
    assert len(cohort.frame) == 13 and "003_S_1003" not in set(cohort.frame["subject_id"])


@fault(
    "cohort table",
    "a label that is not a declared class",
    "ValueError naming the label, line, classes and mapping",
)
def test_unknown_label(tmp_path) -> None:
    path = _adnimerge(tmp_path, bad=lambda t: t.assign(DX_bl=t["DX_bl"].where(t.index != 8, "Converter")))
    with pytest.raises(ValueError, match=r"unknown label 'Converter' in column 'DX_bl' on line 10"):
        _load(path)


@fault(
    "cohort table",
    "a label of a megabyte (a pasted file) that is not a declared class",
    "a one-line error of a few hundred characters naming the line and the label's head and length (was 2 MB)",
)
def test_a_huge_label_makes_a_short_error(tmp_path, capsys) -> None:
    from hyperfusion.cli import main

    huge = "X" * 1_000_000
    path = _adnimerge(tmp_path, bad=lambda t: t.assign(DX_bl=t["DX_bl"].where(t.index != 8, huge)))
    assert main(["validate", str(path), "--steps", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and len(error) < 2500
    assert "unknown label 'XXXX" in error and "1,000,000 characters" in error and "line 10" in error


@fault(
    "cohort table",
    "an image path that is a symbolic link looping back on itself",
    "ValueError naming the table, the line and the link (was an internal error)",
)
def test_a_symlink_loop_names_the_line(tmp_path) -> None:
    path = _small(tmp_path, {"AGE": ["60", "61", "62"]}, {})
    (tmp_path / "1.nii.gz").unlink()
    (tmp_path / "1.nii.gz").symlink_to(tmp_path / "loop.nii.gz")
    (tmp_path / "loop.nii.gz").symlink_to(tmp_path / "1.nii.gz")
    with pytest.raises(
        ValueError, match=r"t\.csv: line 3: the image path .*1\.nii\.gz is a symbolic link that loops"
    ):
        _load(path)


@fault(
    "cohort table",
    "a subject id of only spaces",
    "ValueError naming the column and the line (it was accepted as the id '')",
)
def test_a_blank_subject_id_is_refused(tmp_path) -> None:
    path = _small(tmp_path, {"AGE": ["60", "61", "62"]}, {})
    table = tmp_path / "t.csv"
    table.write_text(table.read_text().replace("\ns1,", "\n   ,"))
    with pytest.raises(ValueError, match=r"column 'id' holds only spaces on line 3"):
        _load(path)


@fault(
    "cohort table",
    "a non-numeric value in a continuous column",
    "ValueError naming file, column, line and value",
)
def test_non_numeric_continuous_after_censor_parsing(tmp_path) -> None:
    path = _adnimerge(tmp_path, bad=lambda t: t.assign(TAU=t["TAU"].where(t.index != 10, "high")))
    with pytest.raises(
        ValueError, match=r"ADNIMERGE\.csv: column 'TAU', line 12: value 'high' is not a number"
    ):
        _load(path)


@fault(
    "cohort table",
    "a tabular column empty in every row of a training table",
    "ValueError naming the column: drop it from the spec",
)
def test_column_missing_for_every_row(tmp_path) -> None:
    path = _adnimerge(tmp_path, AV45="")
    with pytest.raises(ValueError, match=r"column 'AV45' is missing for every row"):
        _load(path)


@fault(
    "cohort table",
    "a binary column with a third value",
    "ValueError naming file, column, line, value and the column's values",
)
def test_bad_binary_value(tmp_path) -> None:
    for i in range(3):
        _image(tmp_path, f"{i}.nii.gz")
    pd.DataFrame(
        {
            "id": ["1", "2", "3"],
            "y": ["1", "2", "3"],
            "b": ["1", "0.0", "yes"],
            "img": [f"{i}.nii.gz" for i in range(3)],
        }
    ).to_csv(tmp_path / "t.csv", index=False)
    spec = {
        "table": "t.csv",
        "subject": "id",
        "target": {"column": "y", "task": "regression"},
        "image": {"column": "img"},
        "tabular": {"binary": ["b"]},
    }
    with pytest.raises(
        ValueError,
        match=r"t\.csv: binary column 'b', line 4: value 'yes' is a third value: .*\['0', '1', 'yes'\]",
    ):
        _load(_spec(tmp_path, spec))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"preset": "adnimerge", "colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({"preset": "ukbb"}, "unknown manifest preset 'ukbb'"),
        ({"preset": "adnimerge", "target": {"task": "ranking"}}, "'target.task' must be one of"),
        ({"preset": "adnimerge", "target": {"classes": ["CN"]}}, "at least two classes"),
        ({"preset": "adnimerge", "target": {"mapping": {"X": "Y"}}}, r"maps onto \['Y'\]"),
        ({"preset": "adnimerge", "image": {"glob": "x"}}, "exactly one of 'image.column' and 'image.glob'"),
        ({"preset": "adnimerge", "tabular": {"binary": ["AGE"]}}, "more than one tabular role"),
        ({"preset": "adnimerge", "tabular": {"continuous": "AGE"}}, "must be a list of column names"),
        ({"preset": "adnimerge", "visit": {"colour": 1}}, r"unknown key\(s\) \['colour'\] under 'visit'"),
        ({"preset": "bids", "target": {"classes": ["a", "b"]}}, "only apply to classification"),
        ({"table": "t.csv"}, "'target.task' must be one of"),
        ({"preset": "adnimerge", "ranges": {"AGE": [100, 40]}}, r"'ranges.AGE' needs low < high"),
        ({"preset": "adnimerge", "ranges": {"AGE": "40-100"}}, r"'ranges.AGE' must be \[low, high\]"),
        ({"preset": "adnimerge", "ranges": {"AGEE": [40, 100]}}, r"'ranges' names column\(s\) \['AGEE'\]"),
        ({"preset": "adnimerge", "ranges": [40, 100]}, "'ranges' must map column"),
        ({"preset": "adnimerge", "allow_duplicate_images": "yes"}, "'allow_duplicate_images' must be true"),
        ({"preset": "adnimerge", "encoding": "klingon-8"}, "'encoding' 'klingon-8' is not a known"),
        (
            {"preset": "bids", "tabular": {"categorical": [], "binary": {"sex": ["M"]}}},
            r"'tabular.binary.sex' must",
        ),
        ({"preset": "bids", "tabular": {"categorical": [], "binary": {"sex": ["M", " M"]}}}, None),
        ({"preset": "bids", "tabular": {"categorical": {"sex": ["M", "M"]}}}, "repeat a value"),
    ],
)
@fault(
    "manifest spec",
    "a malformed spec: unknown key or preset, wrong type, bad class list, range or encoding",
    "ValueError naming the key",
)
def test_bad_specs_name_the_key(tmp_path, spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message or "two different values"):
        read_spec(_spec(tmp_path, spec))


@fault("manifest spec", "a spec file that does not exist", "FileNotFoundError naming it")
def test_missing_spec_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_manifest(tmp_path / "nope.yaml")


@fault("cohort table", "a table file that does not exist", "FileNotFoundError naming it")
def test_missing_table_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ADNIMERGE\.csv does not exist"):
        load_manifest(_spec(tmp_path, {"preset": "adnimerge"}))


@fault("manifest spec", "a spec that is a YAML list, not a mapping", "ValueError naming the file")
def test_spec_that_is_not_a_mapping(tmp_path) -> None:
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=r"list\.yaml: a manifest spec must be a YAML mapping"):
        read_spec(tmp_path / "list.yaml")


def test_targets_are_optional_when_scoring_new_subjects(tmp_path):
    """`predict` reads tables whose target column is empty or absent; those rows get -1 instead of an error."""
    import nibabel as nib

    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, label in enumerate(["AD", None, None]):
        path = images / f"s{i}.nii.gz"
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), path)
        rows.append({"PTID": f"s{i}", "DX_bl": label, "AGE": 70 + i, "image": f"images/s{i}.nii.gz"})
    spec = spec_from_dict(
        {
            "preset": "generic",
            "table": "t.csv",
            "subject": "PTID",
            "target": {"column": "DX_bl", "task": "classification", "classes": ["CN", "AD"]},
            "image": {"column": "image"},
            "tabular": {"continuous": ["AGE"]},
        }
    )
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="missing"):
        load_table(spec, tmp_path / "t.csv")
    cohort = load_table(spec, tmp_path / "t.csv", require_target=False)
    assert cohort.frame["target"].tolist() == [1, -1, -1]
    pd.DataFrame(rows).drop(columns="DX_bl").to_csv(tmp_path / "u.csv", index=False)
    assert load_table(spec, tmp_path / "u.csv", require_target=False).frame["target"].tolist() == [-1, -1, -1]


# ---------------------------------------------------------------- scoring tables (predict)
def _scored(tmp_path: Path, rows: list[dict], name: str):
    """A table of new subjects laid out like ADNIMERGE, read as `predict` reads it."""
    folder = tmp_path / name
    folder.mkdir()
    scan = _image(folder / "scans", "template.nii.gz").read_bytes()
    for row in rows:
        (folder / "scans" / f"{row['PTID']}.nii.gz").write_bytes(scan)
    table = pd.DataFrame([{**row, "image": f"scans/{row['PTID']}.nii.gz"} for row in rows])
    table.drop(columns="DX_bl").to_csv(folder / "new.csv", index=False)
    return load_table(read_spec(tmp_path / "cohort.yaml"), folder / "new.csv", require_target=False)


def test_a_new_subject_without_csf_values_is_scored_like_a_blanked_row(tmp_path) -> None:
    """Missing for every row of a scoring table = missing in one row: imputed and flagged the same way."""
    training = _load(_adnimerge(tmp_path, n=28))
    pre = training.preprocessor().fit(training.frame)
    pre = type(pre).from_dict(pre.to_dict())  # as predict reads it: the saved JSON
    subject = {
        "PTID": "900_S_0001",
        "VISCODE": "bl",
        "DX_bl": "",
        "AGE": "74.5",
        "PTGENDER": "Female",
        "PTEDUCAT": "16",
    }
    subject |= {"APOE4": "1", "ABETA": "", "PTAU": "", "TAU": "", "FDG": "1.2", "AV45": ""}
    others = [
        {**subject, "PTID": f"900_S_{i:04d}", "AGE": str(65 + i), "ABETA": str(600 + 40 * i), "PTAU": "30"}
        | {"TAU": "300", "AV45": "1.3", "PTGENDER": "Male" if i % 2 else "Female"}
        for i in range(2, 7)
    ]
    alone = _scored(tmp_path, [subject], "alone")  # ABETA, PTAU, TAU, AV45 empty in every row
    batch = _scored(tmp_path, [*others[:2], subject, *others[2:]], "batch")
    features_alone = pre.transform(alone.frame, source="alone/new.csv")
    features_batch = pre.transform(batch.frame)
    np.testing.assert_allclose(features_alone[0], features_batch[2], rtol=1e-6, atol=1e-6)
    names = pre.feature_names_out
    flagged = [c for c in ("ABETA", "PTAU", "TAU", "AV45") if f"{c}_missing" in names]
    assert flagged == ["ABETA", "AV45"]  # the columns with missing training values have an indicator
    for column in flagged:
        assert features_alone[0, names.index(f"{column}_missing")] == 1.0
    assert np.all(np.isfinite(features_alone))


@fault(
    "predict",
    "new subjects whose table lacks a declared column entirely",
    "ValueError naming the column (only an empty column is imputed)",
)
def test_a_scoring_table_must_still_have_every_column(tmp_path) -> None:
    _adnimerge(tmp_path)
    pd.read_csv(tmp_path / "ADNIMERGE.csv").drop(columns=["AV45", "DX_bl"]).to_csv(
        tmp_path / "new.csv", index=False
    )
    with pytest.raises(
        ValueError, match=r"new\.csv: declared column\(s\) 'AV45' \(tabular\.continuous\) not in"
    ):
        load_table(read_spec(tmp_path / "cohort.yaml"), tmp_path / "new.csv", require_target=False)


# ---------------------------------------------------------------- binary and categorical declarations
def _small(folder: Path, columns: dict[str, list], spec: dict, *, images: int | None = None) -> Path:
    """A generic table with one image per row (distinct files) and the given extra columns."""
    n = len(next(iter(columns.values())))
    for i in range(n if images is None else images):
        _image(folder, f"{i}.nii.gz")
    table = {"id": [f"s{i}" for i in range(n)], "y": [str(50 + i) for i in range(n)]}
    table["img"] = [f"{i % (n if images is None else images)}.nii.gz" for i in range(n)]
    pd.DataFrame(table | columns).to_csv(folder / "t.csv", index=False)
    base = {"table": "t.csv", "subject": "id", "target": {"column": "y", "task": "regression"}}
    return _spec(folder, base | {"image": {"column": "img"}} | spec)


def test_binary_sex_column_in_the_manifest(tmp_path) -> None:
    path = _small(tmp_path, {"sex": ["M", "F", "", "F", "M"]}, {"tabular": {"binary": ["sex"]}})
    cohort = _load(path)
    assert cohort.frame["sex"].tolist()[:2] == ["M", "F"] and pd.isna(cohort.frame["sex"][2])
    features = cohort.preprocessor().fit(cohort.frame).transform(cohort.frame)
    assert features[[0, 1, 3, 4], 0].tolist() == [1.0, 0.0, 0.0, 1.0]  # F = 0, M = 1 (alphabetical)
    declared = _spec(
        tmp_path, {**yaml.safe_load(path.read_text()), "tabular": {"binary": {"sex": ["M", "F"]}}}
    )
    cohort = _load(declared)
    assert cohort.spec.binary_values == {"sex": ("M", "F")}
    features = cohort.preprocessor().fit(cohort.frame).transform(cohort.frame)
    assert features[[0, 1, 3, 4], 0].tolist() == [0.0, 1.0, 1.0, 0.0]  # declared: M = 0, F = 1


@fault(
    "cohort table",
    "a value outside a column's declared binary values or categories",
    "ValueError naming file, column, line, value and the declaration",
)
def test_values_outside_declarations_fail_at_load(tmp_path) -> None:
    spec = {"tabular": {"binary": {"sex": ["F", "M"]}, "categorical": {"site": ["a", "b"]}}}
    path = _small(tmp_path, {"sex": ["M", "F", "male"], "site": ["a", "b", "a"]}, spec)
    with pytest.raises(
        ValueError, match=r"binary column 'sex', line 4: value 'male' is not one of its declared"
    ):
        _load(path)
    path = _small(tmp_path, {"sex": ["M", "F", "M"], "site": ["a", "c", "a"]}, spec)
    with pytest.raises(
        ValueError, match=r"column 'site', line 3: category 'c' is not one of its declared .*\['a', 'b'\]"
    ):
        _load(path)
    cohort = _load(_small(tmp_path, {"sex": ["M", "F", "M"], "site": ["a", "a", "a"]}, spec))
    assert cohort.preprocessor().fit(cohort.frame).feature_names_out == ["sex", "site=a", "site=b"]


# ---------------------------------------------------------------- plausible ranges
@fault(
    "cohort table",
    "a sentinel such as -999 in a column with a plausible range (age, education, CSF, FDG, AV45)",
    "ValueError naming file, line, column, value and range, and how to override the range",
)
def test_sentinel_age_fails_naming_line_column_and_value(tmp_path) -> None:
    path = _adnimerge(tmp_path, age=lambda t: t.assign(AGE=t["AGE"].where(t.index != 6, "-999")))
    with pytest.raises(
        ValueError,
        match=r"ADNIMERGE\.csv: column 'AGE', line 8: value -999 is outside the plausible range \[40, 110\] "
        r"\(1 value\(s\) outside\).*ranges: \{AGE: \[low, high\]\}",
    ):
        _load(path)


def test_ranges_check_every_known_adnimerge_column(tmp_path) -> None:
    """Each preset range fails on a value just outside it and passes on its bounds (a hand-written table)."""
    bounds = {"AGE": (40, 110), "PTEDUCAT": (0, 30), "APOE4": (0, 2), "ABETA": (20, 5000)}
    bounds |= {"PTAU": (1, 500), "TAU": (10, 3000), "FDG": (0.5, 15), "AV45": (0.3, 4)}
    for column, (low, high) in bounds.items():
        for value, ok in ((low, True), (high, True), (low - 0.01, False), (high + 0.01, False)):
            folder = tmp_path / f"{column}-{value}"
            folder.mkdir()
            path = _adnimerge(
                folder, bad=lambda t, c=column, v=value: t.assign(**{c: t[c].where(t.index != 4, str(v))})
            )
            if ok:
                _load(path)
            else:
                with pytest.raises(
                    ValueError, match=rf"column '{column}', line 6: value {value:g} is outside"
                ):
                    _load(path)


def test_ranges_can_be_overridden_or_turned_off(tmp_path) -> None:
    _adnimerge(tmp_path, age=lambda t: t.assign(AGE=t["AGE"].where(t.index != 6, "30")))
    with pytest.raises(ValueError, match="value 30 is outside"):
        _load(tmp_path / "cohort.yaml")
    wider = _spec(tmp_path, {"preset": "adnimerge", "ranges": {"AGE": [18, 100]}}, "wider.yaml")
    assert _load(wider).frame["AGE"][3] == 30.0
    off = _spec(tmp_path, {"preset": "adnimerge", "ranges": {"AGE": None}}, "off.yaml")
    assert _load(off).spec.ranges.get("AGE") is None
    one_sided = _spec(tmp_path, {"preset": "adnimerge", "ranges": {"AGE": [None, 100]}}, "one.yaml")
    assert _load(one_sided).spec.ranges["AGE"] == (None, 100.0)
    unused = _spec(tmp_path, {"preset": "adnimerge", "tabular": {"continuous": ["AGE"]}}, "unused.yaml")
    assert set(read_spec(unused).ranges) == {"AGE"}  # the preset's ranges of unused columns are dropped


def test_regression_target_range_bids_age(tmp_path) -> None:
    path = _bids(tmp_path, ["M", "F", "M"], ["23", "-1", "61"])
    with pytest.raises(
        ValueError,
        match=r"participants\.tsv: column 'age', line 3: value -1 is outside the plausible range \[0, 120\]",
    ):
        _load(path)


@fault(
    "manifest spec",
    "a range on a stratification column that is not numeric",
    "ValueError naming the range and column",
)
def test_range_on_a_text_column(tmp_path) -> None:
    path = _small(tmp_path, {"site": ["a", "b", "a"]}, {"stratify": ["site"], "ranges": {"site": [0, 1]}})
    with pytest.raises(ValueError, match=r"'ranges.site' is set, but column 'site' is not numeric"):
        _load(path)


# ---------------------------------------------------------------- one image under two subjects
@fault(
    "cohort table",
    "one image path under two subjects (train/test leakage)",
    "ValueError naming both subjects and lines, unless allow_duplicate_images: true",
)
def test_one_image_path_under_two_subjects(tmp_path) -> None:
    path = _small(
        tmp_path, {"age": [str(60 + i) for i in range(10)]}, {}, images=9
    )  # rows 0 and 9 share 0.nii.gz
    with pytest.raises(
        ValueError,
        match=r"t\.csv: subjects 's0' \(line 2\) and 's9' \(line 11\) have the same image file .*0\.nii\.gz",
    ):
        _load(path)
    allowed = _spec(tmp_path, {**yaml.safe_load(path.read_text()), "allow_duplicate_images": True}, "ok.yaml")
    assert len(_load(allowed).frame) == 10
    scoring = load_table(read_spec(path), tmp_path / "t.csv", require_target=False)  # predict: no leakage
    assert len(scoring.frame) == 10


# ---------------------------------------------------------------- encodings, blank lines
def test_latin1_table_is_read_with_a_one_line_warning(tmp_path, caplog) -> None:
    path = _small(tmp_path, {"site": ["Zürich", "Genève", "Zürich"]}, {"stratify": ["site"]})
    table = tmp_path / "t.csv"
    table.write_bytes(table.read_text(encoding="utf-8").encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        cohort = _load(path)
    assert cohort.frame["site"].tolist() == ["Zürich", "Genève", "Zürich"]
    (message,) = _warnings(caplog)
    assert message.startswith(f"{table}: not UTF-8 text (line 2 has byte 0xfc); read as latin-1")
    cp1252 = _spec(tmp_path, {**yaml.safe_load(path.read_text()), "encoding": "cp1252"}, "cp.yaml")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        assert _load(cp1252).frame["site"][1] == "Genève"
    assert not _warnings(caplog)


@fault(
    "cohort table",
    "a table that does not decode in the encoding the manifest names",
    "ValueError naming the file, line and byte",
)
def test_declared_encoding_that_does_not_fit_names_the_line(tmp_path) -> None:
    path = _small(tmp_path, {"site": ["a", "b", "Zürich"]}, {"stratify": ["site"], "encoding": "ascii"})
    with pytest.raises(ValueError, match=r"t\.csv is not valid ascii text \(line 4 has byte 0xc3\)"):
        _load(path)


def test_blank_lines_keep_the_file_line_numbers(tmp_path) -> None:
    path = _small(
        tmp_path,
        {"age": ["60", "61", "62"]},
        {"tabular": {"continuous": ["age"]}, "ranges": {"age": [40, 100]}},
    )
    table = tmp_path / "t.csv"
    lines = table.read_text().splitlines()
    lines[3] = lines[3].replace(",62", ",-999")
    table.write_text("\n" + "\n".join([lines[0], lines[1], "", lines[2], "  ", lines[3]]) + "\n\n")
    with pytest.raises(ValueError, match=r"column 'age', line 7: value -999"):
        _load(path)
    table.write_text("\n" + "\n".join([lines[0], lines[1], "", lines[2]]) + "\n")
    assert _load(path).frame["line"].tolist() == [3, 5]


def test_ukbiobank_preset(tmp_path) -> None:
    rows = []
    for i, (sex, age) in enumerate([(0, 55), (1, 70), (0, 63)]):
        eid = 1_000_001 + i
        _image(tmp_path / "imaging" / f"{eid}_20252_2_0" / "T1", "T1_brain_to_MNI.nii.gz")
        rows.append({"eid": eid, "31-0.0": sex, "21003-2.0": age})
    pd.DataFrame(rows).to_csv(tmp_path / "ukb_extract.csv", index=False)
    cohort = _load(_spec(tmp_path, {"preset": "ukbiobank"}))
    assert cohort.task == "regression" and cohort.frame["31-0.0"].tolist() == ["F", "M", "F"]
    assert cohort.targets.tolist() == [55.0, 70.0, 63.0] and cohort.stratify == ("target", "31-0.0")
    pd.DataFrame(rows).assign(**{"21003-2.0": [55, -3, 63]}).to_csv(tmp_path / "ukb_extract.csv", index=False)
    with pytest.raises(ValueError, match=r"column '21003-2.0', line 3: value -3 is outside"):
        _load(tmp_path / "cohort.yaml")


def test_target_exclude_leaves_out_a_class_for_a_binary_comparison(tmp_path):
    """CN vs AD (paper App. B) from a three-class table: MCI rows are left out, the classes are CN and AD."""
    import pandas as pd

    from hyperfusion.data import spec_from_dict
    from hyperfusion.data.manifest import load_table

    images = tmp_path / "img"
    images.mkdir()
    rows = []
    for i, label in enumerate(["CN", "MCI", "AD", "CN", "MCI", "AD"]):
        (images / f"s{i}.nii.gz").write_bytes(b"x")
        rows.append({"id": f"s{i}", "dx": label, "image": f"img/s{i}.nii.gz"})
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    spec = spec_from_dict(
        {
            "table": "t.csv",
            "subject": "id",
            "image": {"column": "image"},
            "target": {"column": "dx", "task": "classification", "classes": ["CN", "AD"], "exclude": ["MCI"]},
        }
    )
    cohort = load_table(spec, tmp_path / "t.csv")
    assert list(cohort.frame["label"]) == ["CN", "AD", "CN", "AD"] and list(cohort.frame["target"]) == [
        0,
        1,
        0,
        1,
    ]
    target = {"column": "dx", "task": "classification", "classes": ["CN", "MCI"], "exclude": ["MCI"]}
    bad = {"table": "t.csv", "subject": "id", "image": {"column": "image"}, "target": target}
    with pytest.raises(ValueError, match=r"also in 'target.classes'"):
        spec_from_dict(bad)


def test_target_exclude_takes_the_rows_a_mapping_sends_to_the_excluded_label(tmp_path):
    """ADNIMERGE's EMCI/LMCI map onto MCI; with MCI excluded those rows go too (the mapping is not an error)."""
    import pandas as pd

    from hyperfusion.data import spec_from_dict
    from hyperfusion.data.manifest import load_table

    (tmp_path / "img").mkdir()
    rows = []
    for i, label in enumerate(["CN", "EMCI", "AD", "LMCI", "SMC"]):
        (tmp_path / "img" / f"s{i}.nii.gz").write_bytes(b"x")
        rows.append({"id": f"s{i}", "dx": label, "image": f"img/s{i}.nii.gz"})
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    target = {"column": "dx", "task": "classification", "classes": ["CN", "AD"], "exclude": ["MCI"],
              "mapping": {"EMCI": "MCI", "LMCI": "MCI", "SMC": "CN"}}  # fmt: skip
    spec = spec_from_dict({"table": "t.csv", "subject": "id", "image": {"column": "image"}, "target": target})
    cohort = load_table(spec, tmp_path / "t.csv")
    assert list(cohort.frame["subject_id"]) == ["s0", "s2", "s4"] and list(cohort.frame["label"]) == [
        "CN",
        "AD",
        "CN",
    ]
    target["mapping"] = {"EMCI": "LATE"}
    with pytest.raises(ValueError, match=r"maps onto \['LATE'\], which are not in \['CN', 'AD'\]"):
        spec_from_dict({"table": "t.csv", "subject": "id", "image": {"column": "image"}, "target": target})


DOCS = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"


def test_the_key_reference_in_the_docs_is_the_field_table() -> None:
    text = DOCS.read_text()
    start, end = "<!-- keys:start -->\n", "<!-- keys:end -->"
    listed = text[text.index(start) + len(start) : text.index(end)]
    assert listed == keys_markdown(), "regenerate the table in docs/manifest.md from keys_markdown()"


def test_the_docs_example_is_a_valid_spec() -> None:
    text = DOCS.read_text()
    example = text[text.index("```yaml\n") + len("```yaml\n") :].split("```", 1)[0]
    spec = spec_from_dict(yaml.safe_load(example), source="docs/manifest.md")
    assert spec.preset == "adnimerge" and spec.ranges["AGE"] == (50, 95)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"preset": "adnimerge", "tabel": "t.csv"},
            r"unknown key\(s\) \['tabel'\] \(did you mean 'table'\?\); allowed",
        ),
        (
            {"preset": "adnimerge", "target": {"colum": "DX"}},
            r"unknown key\(s\) \['colum'\] under 'target' \(did you mean 'column'\?\); allowed",
        ),
        (
            {"preset": "adnimerge", "tabel": 1, "subjet": 2},
            r"\['subjet', 'tabel'\] \(did you mean 'subject' for 'subjet', 'table' for 'tabel'\?\)",
        ),
    ],
)
@fault("manifest spec", "a misspelt key", "ValueError naming the key and the nearest valid one")
def test_a_misspelt_key_names_the_nearest_valid_one(tmp_path, spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_spec(_spec(tmp_path, spec))
