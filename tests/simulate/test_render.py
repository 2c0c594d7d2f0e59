import numpy as np
import pytest
import torch

from hyperfusion.simulate.anatomy import STRUCTURE_NAMES, velocity_field
from hyperfusion.simulate.api import output_grid
from hyperfusion.simulate.render import NO_NUISANCE, Nuisance, SubjectEffects, build_renderer
from tests.simulate import reference


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


def _random_effects(rng):
    return SubjectEffects(
        rng.normal(0.0, 0.35, len(STRUCTURE_NAMES)), rng.uniform(0, 0.6, 5), float(rng.uniform(0, 0.3))
    )


@pytest.mark.parametrize(
    ("voxel", "region", "nuisance"),
    [
        (4.0, "whole", Nuisance()),
        (4.0, "box", Nuisance()),
        (8.0, "whole", NO_NUISANCE),
        (3.0, "box", Nuisance()),
    ],
)
def test_fast_path_matches_the_reference_on_random_subjects(voxel, region, nuisance):
    """The fast path skips only what reads exactly zero: same image and volumes as the original, to rounding."""
    grid = output_grid(voxel, region)
    renderer = build_renderer(grid, "phantom", phantom_mm=2.0)
    rng = np.random.default_rng(int(voxel * 10) + len(region))
    for seed in rng.integers(0, 2**31, size=3):
        effects = _random_effects(rng)
        old_image, old_vol = reference.render(renderer, effects, np.random.default_rng(seed), nuisance)
        image, vol = renderer.render(effects, np.random.default_rng(seed), nuisance)
        np.testing.assert_allclose(vol, old_vol, rtol=1e-4)
        close = np.isclose(image, old_image, rtol=1e-3, atol=1e-2)
        assert close.mean() > 0.9995, 1 - close.mean()  # a voxel whose mask sits at 0.5 may flip
        assert ((image > 0) == (old_image > 0)).mean() > 0.9995


def test_structure_band_keeps_every_point_that_reads_occupancy(renderer):
    """No point left out by the band reads non-zero occupancy after the flow (checked on the whole grid)."""
    anatomy = renderer.anatomy
    pts = renderer.measure_points
    rng = np.random.default_rng(4)
    for _ in range(3):
        k = renderer.k(renderer.clip(rng.normal(0.0, 0.5, len(STRUCTURE_NAMES))))
        v = velocity_field(anatomy, k)
        jitter = pts + rng.normal(0.0, 1.5, pts.shape).astype(np.float32)
        for points, on_nodes in ((pts, True), (jitter, False)):
            band = anatomy.near_structures(points, v, on_nodes=on_nodes)
            outside = anatomy.occupancy.sample(reference.flow(points[:, ~band], v))
            assert outside.max() == 0.0 and band.mean() < 0.9


def test_cohort_statistics_match_the_reference(tmp_path):
    """Region volumes, class proportions and the signal check's balanced accuracy: old and new paths agree."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from hyperfusion.simulate.ad import GROUPS, TABLE2_COUNTS, make_ad_cohort
    from hyperfusion.simulate.effects import allocate, subject_rng

    n = 36
    cohort = make_ad_cohort(n, interaction=1.0, seed=7, interaction_mode="location")
    renderer = build_renderer(output_grid(8.0, "box"), "phantom", phantom_mm=2.0)
    new, old = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(n):
            new.append(renderer.render(cohort.effects(i), subject_rng(7, "ad", i))[1])
            old.append(reference.render(renderer, cohort.effects(i), subject_rng(7, "ad", i), Nuisance())[1])
    finally:
        torch.set_num_threads(threads)
    new_logf = np.log(np.array(new) / renderer.anatomy.baseline_ml)
    old_logf = np.log(np.array(old) / renderer.anatomy.baseline_ml)
    spread = old_logf.std(0)
    # per structure, mean and SD agree far inside their sampling error (SE of a mean: SD / sqrt(n))
    assert (np.abs(new_logf.mean(0) - old_logf.mean(0)) < 0.05 * spread).all()
    np.testing.assert_allclose(new_logf.std(0), spread, rtol=0.01)
    y = cohort.latents["diagnosis"].map({"CN": 0, "MCI": 1, "AD": 2}).to_numpy()
    table2 = allocate(n, np.array([sum(TABLE2_COUNTS[g]) for g in GROUPS]))
    assert (
        np.abs(np.bincount(y, minlength=3) - table2).max() <= 1
    )  # Table 2's proportions (cells rounded by sex)
    female = (cohort.table.PTGENDER == "Female").to_numpy(float)[:, None]
    folds = StratifiedKFold(3, shuffle=True, random_state=0)

    def ba(logf):
        x = np.hstack([logf, female, logf * female])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return balanced_accuracy_score(y, cross_val_predict(model, x, y, cv=folds))

    assert abs(ba(new_logf) - ba(old_logf)) <= 0.02
