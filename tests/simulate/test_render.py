import numpy as np
import pytest

from hyperfusion.simulate.anatomy import STRUCTURE_NAMES
from hyperfusion.simulate.render import NO_NUISANCE, Nuisance, SubjectEffects


def _effects(scale=1.0):
    log_f = scale * np.array([-0.3, -0.3, -0.2, -0.2, 0.6, 0.6, 0.7, 0.7, 0.4])
    return SubjectEffects(log_f, np.full(5, 0.3 * scale), 0.1 * scale)


def test_background_exactly_zero_brain_positive_and_finite(renderer):
    image, vol = renderer.render(_effects(), np.random.default_rng(0))
    assert image.shape == renderer.grid.shape and image.dtype == np.float32
    assert np.isfinite(image).all() and np.isfinite(vol).all()
    assert (image >= 0).all()
    assert image[0].max() == 0 and image[:, :, -1].max() == 0  # corners of the box are outside the brain
    brain = image > 0
    assert 0.2 < brain.mean() < 0.6


def test_same_stream_same_image(renderer):
    a = renderer.render(_effects(), np.random.default_rng(5))
    b = renderer.render(_effects(), np.random.default_rng(5))
    c = renderer.render(_effects(), np.random.default_rng(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_no_effects_no_nuisance_reproduces_template(renderer):
    image, _ = renderer.render(_effects(0.0), np.random.default_rng(0), NO_NUISANCE)
    ref = renderer.source.sample(renderer.points)[0].reshape(renderer.grid.shape)
    inside = image > 0
    np.testing.assert_allclose(image[inside], np.maximum(ref[inside], 1e-3), rtol=1e-5, atol=1e-5)


def test_cortical_atrophy_darkens_grey_matter(renderer):
    base = SubjectEffects(np.zeros(len(STRUCTURE_NAMES)), np.zeros(5), 0.0)
    thin = SubjectEffects(np.zeros(len(STRUCTURE_NAMES)), np.full(5, 0.5), 0.0)
    a, _ = renderer.render(base, np.random.default_rng(0), NO_NUISANCE)
    b, _ = renderer.render(thin, np.random.default_rng(0), NO_NUISANCE)
    assert b.sum() < a.sum() and (b <= a + 1e-4).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(log_f=np.zeros(3), cortical=np.zeros(5), wm_contrast=0.0),
        dict(log_f=np.zeros(9), cortical=np.full(5, 1.5), wm_contrast=0.0),
        dict(log_f=np.full(9, np.nan), cortical=np.zeros(5), wm_contrast=0.0),
    ],
)
def test_bad_effects(kwargs):
    with pytest.raises(ValueError):
        SubjectEffects(**kwargs)


def test_bad_nuisance():
    with pytest.raises(ValueError, match="noise"):
        Nuisance(noise=-1.0)
