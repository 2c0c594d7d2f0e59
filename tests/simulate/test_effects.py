import numpy as np
import pytest
from scipy import stats

from hyperfusion.simulate.effects import allocate, stratified_truncnorm, subject_rng, truncnorm_matching


def test_allocate_exact_and_proportional():
    w = np.array([309, 431, 569, 446, 198, 167])
    assert (allocate(2120, w) == w).all()
    c = allocate(100, w)
    assert c.sum() == 100 and np.abs(c - 100 * w / w.sum()).max() < 1
    with pytest.raises(ValueError):
        allocate(-1, w)


def test_truncnorm_matching_reproduces_observed_moments():
    m, s = truncnorm_matching(75.1, 7.8, 55.0, 91.0)
    d = stats.truncnorm((55 - m) / s, (91 - m) / s, loc=m, scale=s)
    assert d.mean() == pytest.approx(75.1, abs=1e-6) and d.std() == pytest.approx(7.8, abs=1e-6)


def test_stratified_draws_match_moments_and_bounds():
    x = stratified_truncnorm(np.random.default_rng(0), 300, 72.0, 7.0, 55.0, 91.0)
    assert x.min() >= 55 and x.max() <= 91
    assert x.mean() == pytest.approx(72.0, abs=0.1) and x.std() == pytest.approx(7.0, abs=0.2)


def test_subject_streams_independent_of_order():
    assert subject_rng(3, "ad", 7).normal() == subject_rng(3, "ad", 7).normal()
    assert subject_rng(3, "ad", 7).normal() != subject_rng(3, "ad", 8).normal()
    assert subject_rng(3, "ad", 7).normal() != subject_rng(3, "brain_age", 7).normal()
