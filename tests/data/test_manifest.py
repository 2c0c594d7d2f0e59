"""Tests for hyperfusion.data.manifest: each preset on a small table written here, and every bad table."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.data.manifest import load_manifest, read_spec
from tests.data.conftest import ras_affine, render, write_nifti

DX = ["CN", "SMC", "EMCI", "LMCI", "AD", "MCI", "Dementia"]
CLASS = [0, 0, 1, 1, 2, 1, 2]


def _image(folder: Path, name: str) -> Path:
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    return write_nifti(folder / name, render((21, 27, 20), affine, marker=False), affine)


def _adnimerge(folder: Path, n: int = 14, **overrides) -> Path:
    """An ADNIMERGE-like table with a baseline and an m06 row per subject, censored CSF strings and NaNs."""
    _image(folder / "scans", "shared.nii.gz")
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
            "image": "scans/shared.nii.gz",
        }
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


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_manifest(path)


def test_adnimerge_preset(tmp_path) -> None:
    with pytest.warns(UserWarning, match=r"censored values at their bound: ABETA: 3, PTAU: 1"):
        cohort = load_manifest(_adnimerge(tmp_path))
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


def test_bids_preset(tmp_path) -> None:
    path = _bids(tmp_path, ["M", "female", "F", "male", "m"], ["23", "45.5", "61", "70", "38"])
    (tmp_path / "sub-01" / "ses-2" / "anat").mkdir(parents=True)  # a second session: the first is taken
    _image(tmp_path / "sub-01" / "ses-2" / "anat", "sub-01_ses-2_T1w.nii.gz")
    (tmp_path / "sub-02" / "anat" / "sub-02_T2w.nii.gz").write_bytes(b"")  # not a T1w: ignored
    with pytest.warns(UserWarning, match="1 subject"):
        cohort = load_manifest(path)
    frame = cohort.frame
    assert cohort.task == "regression" and cohort.classes == ()
    assert frame["target"].tolist() == [23.0, 45.5, 61.0, 70.0, 38.0] and cohort.targets.dtype == np.float32
    assert frame["sex"].tolist() == ["M", "F", "F", "M", "M"]
    assert frame["image"][1].endswith("sub-01/anat/sub-01_T1w.nii.gz")
    assert cohort.stratify == ("target", "sex") and "label" not in frame


def test_generic_preset(tmp_path) -> None:
    _image(tmp_path, "a.nii.gz")
    table = pd.DataFrame(
        {
            "eid": ["1", "2", "3", "2"],
            "visit": ["2", "2", "2", "3"],
            "y": ["yes", "no", "yes", "no"],
            "smoker": ["1", "0", "", "1"],
            "bmi": ["22.5", "30", "27", "31"],
            "site": ["x", "y", "x", "y"],
            "scan": ["a.nii.gz"] * 4,
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
    assert np.isnan(cohort.frame["smoker"][2]) and cohort.frame["site"].tolist() == ["x", "y", "x"]
    assert cohort.stratify == ("target", "site")


# ---------------------------------------------------------------- bad input
def test_missing_image_file(tmp_path) -> None:
    path = _adnimerge(
        tmp_path, image=lambda t: t.assign(image=t["image"].where(t.index != 4, "scans/gone.nii"))
    )
    with pytest.raises(FileNotFoundError, match=r"1 image file\(s\) not found: .*gone\.nii \(line 6\)"):
        _load(path)


def test_bids_subject_without_image(tmp_path) -> None:
    path = _bids(tmp_path, ["M", "F"], ["20", "30"])
    (tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"subject 'sub-01', line 3"):
        _load(path)


def test_declared_column_absent(tmp_path) -> None:
    path = _adnimerge(tmp_path, drop=lambda t: t.drop(columns=["FDG"]))
    with pytest.raises(
        ValueError, match=r"ADNIMERGE\.csv: declared column\(s\) 'FDG' \(tabular\.continuous\)"
    ):
        _load(path)


def test_duplicate_subject_ids(tmp_path) -> None:
    path = _adnimerge(tmp_path, dup=lambda t: t.assign(PTID=t["PTID"].where(t.index != 2, "000_S_1000")))
    with pytest.raises(ValueError, match=r"\['000_S_1000'\] appear more than once .*lines 2, 4"):
        _load(path)


def test_missing_target_fails_or_is_dropped(tmp_path) -> None:
    path = _adnimerge(tmp_path, gap=lambda t: t.assign(DX_bl=t["DX_bl"].where(t.index != 6, "")))
    with pytest.raises(ValueError, match=r"target column 'DX_bl' is missing on line 8"):
        _load(path)
    spec = _spec(tmp_path, {"preset": "adnimerge", "target": {"drop_missing": True}}, "drop.yaml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohort = load_manifest(spec)
    assert any("dropped 1 row(s) without a target" in str(w.message) for w in caught)
    assert len(cohort.frame) == 13 and "003_S_1003" not in set(cohort.frame["subject_id"])


def test_unknown_label(tmp_path) -> None:
    path = _adnimerge(tmp_path, bad=lambda t: t.assign(DX_bl=t["DX_bl"].where(t.index != 8, "Converter")))
    with pytest.raises(ValueError, match=r"unknown label 'Converter' in column 'DX_bl' on line 10"):
        _load(path)


def test_non_numeric_continuous_after_censor_parsing(tmp_path) -> None:
    path = _adnimerge(tmp_path, bad=lambda t: t.assign(TAU=t["TAU"].where(t.index != 10, "high")))
    with pytest.raises(
        ValueError, match=r"ADNIMERGE\.csv: column 'TAU', line 12: value 'high' is not a number"
    ):
        _load(path)


def test_column_missing_for_every_row(tmp_path) -> None:
    path = _adnimerge(tmp_path, AV45="")
    with pytest.raises(ValueError, match=r"column 'AV45' is missing for every row"):
        _load(path)


def test_bad_binary_value(tmp_path) -> None:
    _image(tmp_path, "a.nii.gz")
    pd.DataFrame({"id": ["1", "2"], "y": ["1", "2"], "b": ["1", "yes"], "img": ["a.nii.gz"] * 2}).to_csv(
        tmp_path / "t.csv", index=False
    )
    spec = {
        "table": "t.csv",
        "subject": "id",
        "target": {"column": "y", "task": "regression"},
        "image": {"column": "img"},
        "tabular": {"binary": ["b"]},
    }
    with pytest.raises(ValueError, match=r"column 'b', line 3: value 'yes' is not a number"):
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
    ],
)
def test_bad_specs_name_the_key(tmp_path, spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_spec(_spec(tmp_path, spec))


def test_missing_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_manifest(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match=r"ADNIMERGE\.csv does not exist"):
        load_manifest(_spec(tmp_path, {"preset": "adnimerge"}))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        read_spec(tmp_path / "list.yaml")


def test_targets_are_optional_when_scoring_new_subjects(tmp_path):
    """`predict` reads tables whose target column is empty or absent; those rows get -1 instead of an error."""
    import nibabel as nib

    from hyperfusion.data import load_table, spec_from_dict

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
