"""Choosing whom to attribute, patch sizes in voxels, file names from subject ids."""

from __future__ import annotations

import pytest

from hyperfusion.explain.images import choose_subjects, patch_voxels, safe_name
from tests.faults import fault


def test_subjects_are_taken_from_each_predicted_class_in_turn():
    predicted = ["CN", "CN", "CN", "AD", "MCI", "AD", "CN"]
    assert choose_subjects(predicted, 3) == [0, 3, 4]  # one of each class first
    assert choose_subjects(predicted, 5) == [0, 1, 3, 4, 5]
    assert choose_subjects(predicted, 50) == list(range(7))
    assert choose_subjects(predicted, 0) == []


def test_patch_size_in_voxels_is_rounded_and_at_least_one():
    assert patch_voxels(8.0, 4.0) == 2 and patch_voxels(8.0, 1.75) == 5 and patch_voxels(1.0, 4.0) == 1


@fault("explain", "a negative or non-finite occlusion patch size", "ValueError naming the patch")
def test_patch_size_must_be_positive():
    with pytest.raises(ValueError, match="positive size in mm"):
        patch_voxels(float("nan"), 1.0)


def test_subject_ids_become_safe_file_names():
    assert safe_name("011_S_0002") == "011_S_0002" and safe_name("sub 01/ses:2") == "sub_01_ses_2"
