"""Tests for hyperfusion.data.duplicates: one scan under two subjects, by path at load and by content per run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from hyperfusion.data.cache import ImageCache, file_digest
from hyperfusion.data.duplicates import check_duplicate_images, check_duplicate_paths
from hyperfusion.data.images import ImageSpec
from hyperfusion.data.manifest import load_manifest
from tests.data.conftest import ras_affine, render, write_nifti
from tests.faults import fault


def _cohort(folder: Path, copies: dict[int, int], n: int = 6, **spec) -> Path:
    """n subjects with their own scans, except ``copies`` {i: j}: subject i's file is a byte copy of j's."""
    affine = ras_affine(8.0, (-80.0, -120.0, -68.0))
    for i in range(n):
        if i in copies:
            continue
        data = render((21, 27, 20), affine, marker=bool(i % 2)) * (1 + i / 10)
        write_nifti(folder / f"s{i}.nii.gz", data, affine)
    for i, j in copies.items():
        (folder / f"s{i}.nii.gz").write_bytes((folder / f"s{j}.nii.gz").read_bytes())
    table = pd.DataFrame(
        {
            "id": [f"S{i}" for i in range(n)],
            "age": [60 + i for i in range(n)],
            "img": [f"s{i}.nii.gz" for i in range(n)],
        }
    )
    table.to_csv(folder / "t.csv", index=False)
    base = {"table": "t.csv", "subject": "id", "target": {"column": "age", "task": "regression"}}
    (folder / "cohort.yaml").write_text(yaml.safe_dump(base | {"image": {"column": "img"}} | spec))
    return folder / "cohort.yaml"


@fault(
    "images",
    "the same image content under two subjects (a copied file under another name)",
    "ValueError naming both subjects, their lines and files, unless allow_duplicate_images: true",
)
def test_identical_content_under_two_subjects_is_named(tmp_path) -> None:
    cohort = load_manifest(_cohort(tmp_path, {4: 1}))  # different paths, so the load-time check passes
    with pytest.raises(ValueError) as err:
        check_duplicate_images(cohort, ImageCache(tmp_path / "cache"))
    message = str(err.value)
    assert message.startswith(
        f"{tmp_path / 't.csv'}: subjects 'S1' (line 3) and 'S4' (line 6) have the same image"
    )
    assert (
        "s1.nii.gz and " in message and "s4.nii.gz" in message and "allow_duplicate_images: true" in message
    )
    with pytest.raises(ValueError, match="'S1' \\(line 3\\) and 'S4'"):
        check_duplicate_images(cohort)  # without a cache: every file hashed here
    allowed = load_manifest(_cohort(tmp_path / "ok", {4: 1}, allow_duplicate_images=True))
    check_duplicate_images(allowed, ImageCache(tmp_path / "cache"))


def test_distinct_images_pass_and_the_cache_hashes_each_file_once(tmp_path, monkeypatch) -> None:
    cohort = load_manifest(_cohort(tmp_path, {}))
    calls: list[str] = []

    def counting(path):
        calls.append(str(path))
        return file_digest(path)

    monkeypatch.setattr("hyperfusion.data.cache.file_digest", counting)
    cache = ImageCache(tmp_path / "cache")
    check_duplicate_images(cohort, cache)
    for path in cohort.image_paths:
        cache.path_for(path, ImageSpec())
    assert sorted(calls) == sorted(str(p) for p in cohort.image_paths)  # once each, shared with the cache


def test_same_subject_may_repeat_an_image() -> None:
    """Rows of one subject (several visits) sharing a file are not leakage: they share a partition."""
    frame = pd.DataFrame({"subject_id": ["a", "a", "b"], "image": ["x", "x", "y"], "line": [2, 3, 4]})
    check_duplicate_paths(frame, source="t.csv")
    frame.loc[2, "image"] = "x"
    with pytest.raises(
        ValueError, match=r"t\.csv: subjects 'a' \(line 2\) and 'b' \(line 4\) have the same image file \(x\)"
    ):
        check_duplicate_paths(frame, source="t.csv")
