"""The crop reader: pooling, a closed-form fit that equals scikit-learn's pipeline, selection on validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from hyperfusion.models import create_model, list_models, model_info, with_crop_readers
from hyperfusion.models.crop_reader import COMPONENTS, STRENGTHS, CropReader, pool_factor

SHAPE = (6, 8, 6)


def batches(images: np.ndarray, y: np.ndarray, size: int = 7):
    """Evaluation-layout batches (image [B, S, 1, D, H, W], tabular, target, id) like the run's loaders."""
    out = []
    for start in range(0, len(y), size):
        image = torch.as_tensor(images[start : start + size], dtype=torch.float32)
        out.append((image, torch.zeros(len(image), 1), torch.as_tensor(y[start : start + size]), "id"))
    return out


def cohort(n: int, n_classes: int = 3, seed: int = 0, views: int = 2):
    """Crops whose mean intensity in one corner falls with the class (plus noise): a linear signal."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    images = rng.normal(size=(n, views, 1, *SHAPE))
    images[:, :, :, :3, :4, :3] -= 0.8 * y[:, None, None, None, None, None]
    return images, y


def test_pool_factor_keeps_at_most_max_voxels():
    assert pool_factor((16, 24, 16)) == 1
    assert pool_factor((64, 96, 64)) == 4  # 16 x 24 x 16 = 6144 <= 8192 < 22 x 32 x 22
    assert pool_factor((5, 5, 5), max_voxels=8) == 3  # ceil(5 / 3) = 2 per axis
    for bad in ((4, 4), (0, 4, 4)):
        with pytest.raises(ValueError, match="three positive sizes"):
            pool_factor(bad)


def test_fit_equals_the_scikit_learn_pipeline_it_chose():
    train, y_train = cohort(60, seed=1)
    val, y_val = cohort(30, seed=2)
    reader = CropReader(SHAPE, 3).fit(batches(train, y_train), batches(val, y_val))
    k, strength = reader.selection["components"], reader.selection["C"]
    assert k in COMPONENTS and strength in STRENGTHS

    # the slow obvious reference: each view one sample, PCA -> standardise -> balanced LR, views averaged
    flat = train.reshape(60 * 2, -1)
    pca = PCA(n_components=min(64, 119), svd_solver="full").fit(flat)
    scores = pca.transform(flat)[:, :k]
    scaler = StandardScaler().fit(scores)
    lr = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000)
    lr.fit(scaler.transform(scores), np.repeat(y_train, 2))
    expected = np.mean(
        [
            lr.predict_proba(scaler.transform(pca.transform(val[:, s].reshape(30, -1))[:, :k]))
            for s in range(2)
        ],
        axis=0,
    )
    with torch.no_grad():
        got = np.mean(
            [reader(torch.as_tensor(val[:, s], dtype=torch.float32)).softmax(1).numpy() for s in range(2)],
            axis=0,
        )
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert reader.selection["val_BA"] == pytest.approx(balanced_accuracy_score(y_val, got.argmax(1)))
    assert reader.selection["val_BA"] > 0.6  # the signal is there to read
    assert reader.selection["parameters"] == k * 3 + 3


def test_the_choice_is_the_best_on_validation():
    train, y_train = cohort(60, seed=3)
    val, y_val = cohort(30, seed=4)
    reader = CropReader(SHAPE, 3).fit(batches(train, y_train), batches(val, y_val))
    flat = train.reshape(120, -1)
    pca = PCA(n_components=64, svd_solver="full").fit(flat)
    best = 0.0
    for k in COMPONENTS:
        scores = pca.transform(flat)[:, :k]
        scaler = StandardScaler().fit(scores)
        for strength in STRENGTHS:
            lr = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000)
            lr.fit(scaler.transform(scores), np.repeat(y_train, 2))
            p = np.mean(
                [
                    lr.predict_proba(scaler.transform(pca.transform(val[:, s].reshape(30, -1))[:, :k]))
                    for s in (0, 1)
                ],
                axis=0,
            )
            best = max(best, balanced_accuracy_score(y_val, p.argmax(1)))
    assert reader.selection["val_BA"] == pytest.approx(best)


def test_two_classes_give_the_binary_regressions_probabilities():
    train, y_train = cohort(40, n_classes=2, seed=5, views=1)
    val, y_val = cohort(20, n_classes=2, seed=6, views=1)
    reader = CropReader(SHAPE, 2).fit(batches(train[:, 0], y_train), batches(val[:, 0], y_val))
    k, strength = reader.selection["components"], reader.selection["C"]
    flat = train.reshape(40, -1)
    pca = PCA(n_components=39, svd_solver="full").fit(flat)
    scaler = StandardScaler().fit(pca.transform(flat)[:, :k])
    lr = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000)
    lr.fit(scaler.transform(pca.transform(flat)[:, :k]), y_train)
    expected = lr.predict_proba(scaler.transform(pca.transform(val.reshape(20, -1))[:, :k]))
    with torch.no_grad():
        got = reader(torch.as_tensor(val[:, 0], dtype=torch.float32)).softmax(1).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_a_fitted_reader_survives_a_state_dict_round_trip():
    train, y_train = cohort(30, seed=7)
    reader = CropReader(SHAPE, 3).fit(batches(train, y_train), batches(*cohort(15, seed=8)))
    copy = CropReader(SHAPE, 3)
    copy.load_state_dict(reader.state_dict())
    image = torch.randn(4, 1, *SHAPE)
    torch.testing.assert_close(copy(image), reader(image))


def test_the_fit_runs_on_one_blas_thread_so_any_host_gets_the_same_reader(monkeypatch):
    """A Ray worker with one core and a laptop with many must fit bit-identical readers from the same rows."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import hyperfusion.models.crop_reader as module

    seen: list[int] = []
    original = module.PCA.fit

    def recording_fit(self, x, y=None):
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return original(self, x, y)

    monkeypatch.setattr(module.PCA, "fit", recording_fit)
    train, y_train = cohort(40, seed=3)
    val = batches(*cohort(20, seed=4))
    reader = CropReader(SHAPE, 3).fit(batches(train, y_train), val)
    assert seen and set(seen) == {1}
    with threadpool_limits(limits=1):
        again = CropReader(SHAPE, 3).fit(batches(train, y_train), val)
    for key, value in reader.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_a_class_without_training_samples_is_refused():
    train, y_train = cohort(12, seed=9)
    y_train[:] = np.where(y_train == 2, 1, y_train)
    with pytest.raises(ValueError, match="none of class \\[2\\]"):
        CropReader(SHAPE, 3).fit(batches(train, y_train), batches(*cohort(9, seed=10)))


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match="n_classes"):
        CropReader(SHAPE, 1)
    with pytest.raises(ValueError, match="spatial shape"):
        CropReader(SHAPE, 3)(torch.zeros(2, 1, 4, 4, 4))


def test_every_imaging_model_is_shown_beside_its_crop_reader():
    info = model_info("ad-crop-reader")
    assert info.fit == "closed_form" and info.uses_image and not info.uses_tabular
    assert isinstance(create_model("ad-crop-reader", input_shape=SHAPE), CropReader)
    assert with_crop_readers(["ad-imaging", "ad-hyperfusion"]) == [
        "ad-imaging",
        "ad-crop-reader",
        "ad-hyperfusion",
    ]
    assert with_crop_readers(["ad-crop-reader", "ad-imaging"]) == ["ad-crop-reader", "ad-imaging"]
    assert with_crop_readers(["ad-hyperfusion"]) == ["ad-hyperfusion"]
    # brain age has no reader (regression): nothing is added
    assert with_crop_readers(["brainage-imaging"]) == ["brainage-imaging"]
    assert all(model_info(m).fit == "gradient" for m in list_models() if m != "ad-crop-reader")
