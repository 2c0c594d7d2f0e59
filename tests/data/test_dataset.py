"""Tests for hyperfusion.data.dataset: item shapes and dtypes, seeded side draws, both sides in evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from hyperfusion.data.cache import ImageCache
from hyperfusion.data.dataset import Augment, CohortDataset, build_dataset, shift_volume
from hyperfusion.data.images import ImageSpec
from hyperfusion.data.manifest import Cohort, ManifestSpec
from hyperfusion.data.tabular import TabularPreprocessor
from tests.faults import fault


def _pairs(n: int) -> list[np.ndarray]:
    """Per item a [2, 4, 5, 3] array whose left side is +i and right side −i (so sides are identifiable)."""
    return [
        np.stack([np.full((4, 5, 3), i + 1.0), np.full((4, 5, 3), -(i + 1.0))]).astype(np.float32)
        for i in range(n)
    ]


def test_evaluation_items_hold_both_sides() -> None:
    ds = CohortDataset(_pairs(3), np.ones((3, 2)), np.array([0, 2, 1]), ["a", "b", "c"], two_sides=True)
    image, tabular, target, subject = ds[1]
    assert image.shape == (2, 1, 4, 5, 3) and image.dtype == torch.float32
    assert image[0].unique().item() == 2.0 and image[1].unique().item() == -2.0  # left, then mirrored right
    assert tabular.shape == (2,) and tabular.dtype == torch.float32
    assert target.dtype == torch.int64 and target.item() == 2 and subject == "b"


def test_training_items_draw_one_seeded_side() -> None:
    n = 64
    ds = CohortDataset(
        _pairs(n),
        np.zeros((n, 1)),
        np.zeros(n, dtype=int),
        [str(i) for i in range(n)],
        two_sides=True,
        train=True,
        seed=5,
    )
    sides = [int(ds[i][0].flatten()[0].item() < 0) for i in range(n)]
    assert ds[0][0].shape == (1, 4, 5, 3)
    assert sides == [ds.side(i) for i in range(n)]
    assert 16 < sum(sides) < 48  # both sides occur
    again = CohortDataset(
        _pairs(n),
        np.zeros((n, 1)),
        np.zeros(n, dtype=int),
        [str(i) for i in range(n)],
        two_sides=True,
        train=True,
        seed=5,
    )
    assert sides == [again.side(i) for i in range(n)]  # deterministic per seed
    ds.set_epoch(1)
    assert sides != [ds.side(i) for i in range(n)]  # fresh draws per epoch


def test_regression_items_and_collation() -> None:
    volumes = [np.random.default_rng(i).random((4, 5, 3)).astype(np.float32) for i in range(4)]
    ds = CohortDataset(volumes, np.eye(4), np.array([61.5, 70.0, 55.0, 80.25]), list("abcd"))
    image, tabular, target, subject = next(iter(DataLoader(ds, batch_size=4)))
    assert image.shape == (4, 1, 4, 5, 3) and tabular.shape == (4, 4)
    assert target.dtype == torch.float32 and target.tolist() == [61.5, 70.0, 55.0, 80.25]
    assert list(subject) == list("abcd")
    np.testing.assert_array_equal(image[2, 0].numpy(), volumes[2])


@fault("dataset", "dataset inputs of different lengths", "ValueError listing the lengths")
def test_lengths_that_differ() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        CohortDataset(_pairs(2), np.zeros((3, 1)), np.zeros(2, dtype=int), ["a", "b"])


@fault(
    "dataset",
    "NaN tabular features or non-numeric targets",
    "ValueError: impute first / targets must be numbers",
)
def test_non_finite_features_or_bad_targets() -> None:
    with pytest.raises(ValueError, match="NaN or Inf"):
        CohortDataset(_pairs(1), np.array([[np.nan]]), np.zeros(1, dtype=int), ["a"])
    with pytest.raises(ValueError, match="targets"):
        CohortDataset(_pairs(1), np.zeros((1, 1)), np.array(["x"]), ["a"])


@fault(
    "dataset",
    "a cached image of the wrong shape",
    "ValueError naming the item, its shape and the expected one",
)
def test_image_of_the_wrong_shape() -> None:
    with pytest.raises(
        ValueError, match=r"item 0 \(array\): image shape \(2, 4, 5, 3\), expected \[D, H, W\]"
    ):
        CohortDataset(_pairs(1), np.zeros((1, 1)), np.zeros(1, dtype=int), ["a"])[0]


def test_build_dataset_end_to_end(tmp_path, head_file) -> None:
    paths = [head_file(f"s{i}.nii.gz", marker=bool(i % 2)) for i in range(4)]
    frame = pd.DataFrame(
        {
            "subject_id": ["s0", "s1", "s2", "s3"],
            "target": np.array([0, 1, 2, 1], dtype=np.int64),
            "image": [str(p) for p in paths],
            "AGE": [70.0, 75.0, np.nan, 80.0],
            "PTGENDER": ["Male", "Female", "Female", "Male"],
        }
    )
    spec = ManifestSpec(
        table="t.csv", subject="id", target_column="y", task="classification", image_column="img"
    )
    cohort = Cohort(
        frame, "classification", ("CN", "MCI", "AD"), ("AGE",), ("PTGENDER",), (), ("target",), spec, tmp_path
    )
    train = np.array([True, True, False, True])
    pre = TabularPreprocessor(continuous=["AGE"], categorical=["PTGENDER"]).fit(frame[train])
    crops = ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 16))
    cache = ImageCache(tmp_path / "cache")
    ds = build_dataset(cohort, train, pre, crops, cache, train=True, seed=0)
    assert len(ds) == 3 and ds.subject_ids == ["s0", "s1", "s3"]
    assert ds[2][0].shape == (1, 16, 24, 16) and ds[2][2].item() == 1
    test = build_dataset(cohort, [2], pre, crops, cache, train=False)
    image, tabular, target, subject = test[0]
    assert image.shape == (2, 1, 16, 24, 16) and subject == "s2" and target.item() == 2
    assert tabular.shape == (len(pre.feature_names_out),) and torch.isfinite(tabular).all()
    box = build_dataset(
        cohort, [0, 1], pre, ImageSpec.whole_brain(voxel_mm=4.0, shape=(40, 50, 40)), cache, train=True
    )
    assert box[0][0].shape == (1, 40, 50, 40)


def test_shift_volume_against_a_per_voxel_loop():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(5, 6, 4))
    for offsets in [(1, -2, 0), (-1, 3, 2), (0, 0, 0), (5, 0, 0)]:
        expected = np.zeros_like(volume)
        for i, j, k in np.ndindex(volume.shape):
            source = (i - offsets[0], j - offsets[1], k - offsets[2])
            if all(0 <= s < n for s, n in zip(source, volume.shape)):
                expected[i, j, k] = volume[source]
        np.testing.assert_array_equal(shift_volume(volume, offsets), expected)


def test_augmented_training_items_are_reproducible_and_leave_evaluation_alone():
    volumes = [np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) + i for i in range(3)]
    common = dict(tabular=np.zeros((3, 1)), targets=np.array([1.0, 2.0, 3.0]), subject_ids=["a", "b", "c"])
    augment = Augment(shift=1, flip_lr=True)
    train = CohortDataset(volumes, **common, train=True, seed=3, augment=augment)
    again = CohortDataset(volumes, **common, train=True, seed=3, augment=augment)
    seen = set()
    for epoch in range(8):
        train.set_epoch(epoch)
        again.set_epoch(epoch)
        image = train[0][0]
        torch.testing.assert_close(image, again[0][0])
        rng = np.random.default_rng([3, epoch, 0, 1])
        torch.testing.assert_close(image[0], torch.from_numpy(augment(volumes[0], rng)))
        seen.add(image.numpy().tobytes())
    assert len(seen) > 1  # the draws differ between epochs
    evaluation = CohortDataset(volumes, **common, train=False, seed=3, augment=augment)
    torch.testing.assert_close(evaluation[0][0][0], torch.from_numpy(volumes[0]))


def test_mirror_is_left_right():
    volume = np.zeros((4, 3, 3))
    volume[0] = 1.0  # the leftmost slab: RAS axis 0 runs from left (x < 0) to right
    flips = [Augment(flip_lr=True)(volume, np.random.default_rng(s)) for s in range(10)]
    assert any(np.array_equal(f[3], volume[0]) and f[0].sum() == 0 for f in flips)
    assert any(np.array_equal(f, volume) for f in flips)


def test_flip_refused_for_hippocampus_crops():
    from hyperfusion.config import ConfigError, config_from_dict

    raw = {"cohort": "c.yaml", "methods": ["ad-imaging"], "training": {"augment_flip": True}}
    with pytest.raises(ConfigError, match="already mirrors"):
        config_from_dict(raw)
    with pytest.raises(ConfigError, match="augment_shift"):
        config_from_dict({**raw, "training": {"augment_shift": -1}})
