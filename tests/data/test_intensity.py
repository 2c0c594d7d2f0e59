"""hyperfusion.data.intensity: images unlike the cohort's T1s, found from the cohort's own statistics."""

from __future__ import annotations

import numpy as np

from hyperfusion.data.intensity import check_intensities


def _inputs(n: int = 12, seed: int = 0) -> list[np.ndarray]:
    """z-scored-like inputs sharing an anatomy (a smooth pattern), each with its own noise, zero outside."""
    rng = np.random.default_rng(seed)
    grid = np.indices((12, 12, 12)).astype(float)
    anatomy = np.sin(grid[0] / 2) + np.cos(grid[1] / 3) + grid[2] / 6
    inside = ((grid - 5.5) ** 2).sum(axis=0) < 30
    return [np.where(inside, anatomy + rng.normal(0, 0.3, anatomy.shape), 0) for _ in range(n)]


def test_a_cohort_of_alike_scans_gets_no_warning():
    inputs = _inputs()
    assert check_intensities(inputs, [f"s{i}" for i in range(12)], list(range(2, 14))) == []


def test_each_kind_is_found_and_attached_to_its_row():
    inputs = _inputs()
    inputs[3] = np.where(inputs[3] != 0, -inputs[3], 0)  # inverted
    inputs[6] = (inputs[6] != 0).astype(float)  # a mask
    inputs[9] = 2.5 * inputs[1]  # a rescaled copy of subject s1
    subjects = [f"s{i}" for i in range(12)]
    found = {(w.index, w.kind) for w in check_intensities(inputs, subjects, list(range(2, 14)))}
    assert {(3, "contrast"), (6, "mask"), (9, "copy")} <= found
    assert {i for i, _ in found} == {3, 6, 9}


def test_copies_of_one_subject_or_of_identical_files_are_left_to_others():
    inputs = _inputs(6)
    inputs[4] = inputs[2].copy()
    subjects = ["a", "b", "c", "d", "c", "e"]  # rows 2 and 4: two scans of one subject
    assert not [w for w in check_intensities(inputs, subjects, list(range(6))) if w.kind == "copy"]
    digests = ["1", "2", "3", "4", "3", "5"]  # the same file: refused as a duplicate elsewhere
    others = ["a", "b", "c", "d", "x", "e"]
    assert not [w for w in check_intensities(inputs, others, list(range(6)), digests) if w.kind == "copy"]
