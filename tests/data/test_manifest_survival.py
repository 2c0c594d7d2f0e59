"""Survival cohorts in the manifest: ``target.task: survival`` with ``target.time`` and ``target.event`` columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.data.manifest import load_manifest, spec_from_dict
from tests.data.conftest import ras_affine, render, write_nifti

TARGET = {"task": "survival", "time": "MONTHS_TO_EVENT", "event": "CONVERTED"}


def _cohort(
    folder: Path, n: int = 10, target: dict | None = None, preset: str = "generic", **columns
) -> Path:
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    scan = write_nifti(folder / "scans" / "0.nii.gz", render((21, 27, 20), affine, marker=False), affine)
    for i in range(1, n):
        (folder / "scans" / f"{i}.nii.gz").write_bytes(scan.read_bytes())
    table = pd.DataFrame(
        {
            "PTID": [f"s{i}" for i in range(n)],
            "AGE": [60.0 + i for i in range(n)],
            "MONTHS_TO_EVENT": [6.0 * (i + 1) for i in range(n)],
            "CONVERTED": [i % 2 for i in range(n)],
            "image": [f"scans/{i}.nii.gz" for i in range(n)],
        }
    )
    for name, values in columns.items():
        table[name] = values
    table.to_csv(folder / "cohort.csv", index=False)
    spec = {
        "preset": preset,
        "table": "cohort.csv",
        "subject": "PTID",
        "image": {"column": "image"},
        "tabular": {"continuous": ["AGE"]},
        "target": target if target is not None else TARGET,
    }
    (folder / "cohort.yaml").write_text(yaml.safe_dump(spec))
    return folder / "cohort.yaml"


def test_time_and_event_columns_become_the_targets(tmp_path) -> None:
    cohort = load_manifest(_cohort(tmp_path))
    assert cohort.task == "survival"
    np.testing.assert_allclose(cohort.targets[:, 0], [6.0 * (i + 1) for i in range(10)])
    np.testing.assert_array_equal(cohort.targets[:, 1], [i % 2 for i in range(10)])
    assert cohort.targets.dtype == np.float32 and cohort.stratify[0] == "event"
    assert "MONTHS_TO_EVENT" not in cohort.continuous


def test_a_preset_of_another_task_keeps_its_target_keys_to_itself(tmp_path) -> None:
    spec = spec_from_dict({"preset": "adnimerge", "target": TARGET}, source="c.yaml")
    assert spec.classes == () and spec.target_column == "MONTHS_TO_EVENT" and spec.event_column == "CONVERTED"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"task": "survival", "time": "T"}, r"c.yaml: 'target.event' must be a non-empty string, got None"),
        ({"task": "survival", "time": "T", "event": "T"}, "are the same column 'T'"),
        ({"task": "survival", "time": "T", "event": "E", "column": "T"}, "not 'target.column'"),
        ({"task": "regression", "column": "A", "time": "T"}, "only apply to task survival"),
        ({"task": "regression"}, r"'target.column' must be a non-empty string, got None"),
    ],
)
def test_bad_target_keys_name_the_key(target: dict, message: str) -> None:
    raw = {"table": "t.csv", "subject": "PTID", "image": {"column": "image"}, "target": target}
    with pytest.raises(ValueError, match=message):
        spec_from_dict(raw, source="c.yaml")


def test_a_bad_event_names_the_line_and_value(tmp_path) -> None:
    events = [0, 1, 0, 1, 2, 1, 0, 1, 0, 1]
    with pytest.raises(
        ValueError, match=r"cohort.csv: event column 'CONVERTED' on line 6 is '2'; an event is 1"
    ):
        load_manifest(_cohort(tmp_path, CONVERTED=events))


def test_a_missing_event_names_the_line(tmp_path) -> None:
    events = [0, 1, 0, None, 0, 1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"event column 'CONVERTED' on line 5 is nan"):
        load_manifest(_cohort(tmp_path, CONVERTED=events))


def test_a_negative_time_names_the_line(tmp_path) -> None:
    times = [6.0, -3.0, *[12.0] * 8]
    with pytest.raises(ValueError, match=r"time column 'MONTHS_TO_EVENT' on line 3 is -3.0"):
        load_manifest(_cohort(tmp_path, MONTHS_TO_EVENT=times))


def test_a_missing_time_is_refused_like_any_target(tmp_path) -> None:
    times = [6.0, None, *[12.0] * 8]
    with pytest.raises(ValueError, match=r"target column 'MONTHS_TO_EVENT' is missing on line 3"):
        load_manifest(_cohort(tmp_path, MONTHS_TO_EVENT=times))


def test_new_subjects_need_no_outcome(tmp_path) -> None:
    path = _cohort(tmp_path)
    table = pd.read_csv(tmp_path / "cohort.csv").drop(columns=["MONTHS_TO_EVENT", "CONVERTED"])
    table.to_csv(tmp_path / "cohort.csv", index=False)
    cohort = load_manifest(path, require_target=False)
    assert np.isnan(cohort.targets).all()


FROM_VISITS = {
    "task": "survival",
    "from_visits": {"months": "M", "diagnosis": "DX", "at_risk": ["MCI"], "event": ["Dementia"]},
}


def _visits(folder: Path) -> Path:
    """Baseline rows with images and follow-up rows without: s0 converts at 12, s1 is censored at 24, s2 (CN) and
    s3 (no follow-up) are left out; the rows are out of month order."""
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    write_nifti(folder / "scans" / "s0.nii.gz", render((21, 27, 20), affine, marker=False), affine)
    for s in ("s1", "s2", "s3"):
        (folder / "scans" / f"{s}.nii.gz").write_bytes((folder / "scans" / "s0.nii.gz").read_bytes())
    rows = [
        ("s0", "m12", 12, "Dementia", ""), ("s0", "bl", 0, "MCI", "scans/s0.nii.gz"), ("s0", "m06", 6, "MCI", ""),
        ("s1", "bl", 0, "MCI", "scans/s1.nii.gz"), ("s1", "m24", 24, "MCI", ""), ("s1", "m12", 12, "", ""),
        ("s2", "bl", 0, "CN", "scans/s2.nii.gz"), ("s2", "m06", 6, "CN", ""),
        ("s3", "bl", 0, "MCI", "scans/s3.nii.gz"),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["PTID", "VISCODE", "M", "DX", "image"]).assign(AGE=70.0)
    table.to_csv(folder / "visits.csv", index=False)
    spec = {
        "table": "visits.csv",
        "subject": "PTID",
        "visit": {"column": "VISCODE", "keep": "bl"},
        "image": {"column": "image"},
        "tabular": {"continuous": ["AGE"]},
        "target": FROM_VISITS,
    }
    (folder / "cohort.yaml").write_text(yaml.safe_dump(spec))
    return folder / "cohort.yaml"


def test_from_visits_derives_time_and_event_per_baseline_row(tmp_path, caplog) -> None:
    cohort = load_manifest(_visits(tmp_path))
    assert list(cohort.frame["subject_id"]) == ["s0", "s1"]
    np.testing.assert_array_equal(cohort.targets, [[12.0, 1.0], [24.0, 0.0]])
    (line,) = [r.getMessage() for r in caplog.records if "from_visits" in r.getMessage()]
    assert line.endswith(
        "from_visits: 2 of 4 subjects at risk at baseline (1 events, 1 censored); left out: no baseline 0, "
        "baseline event 0, baseline not at risk 1, no follow up 1"
    )


@pytest.mark.parametrize(
    ("from_visits", "message"),
    [
        ({"months": "M", "diagnosis": "DX", "at_risk": ["MCI"]}, r"'target.from_visits.event' is required"),
        ({"months": "M", "diagnosis": "DX", "at_risk": [], "event": ["D"]}, "must be a non-empty list"),
        ({"month": "M", "diagnosis": "DX", "at_risk": ["MCI"], "event": ["D"]}, r"did you mean 'months'"),
    ],
)
def test_bad_from_visits_keys_name_the_key(from_visits: dict, message: str) -> None:
    raw = {"table": "t.csv", "subject": "PTID", "image": {"column": "image"}}
    raw["target"] = {"task": "survival", "from_visits": from_visits}
    with pytest.raises(ValueError, match=message):
        spec_from_dict(raw, source="c.yaml")
    with pytest.raises(ValueError, match="not both"):
        spec_from_dict({**raw, "target": {**FROM_VISITS, "time": "T", "event": "E"}}, source="c.yaml")
