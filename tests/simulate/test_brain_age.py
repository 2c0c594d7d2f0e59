import numpy as np
import pytest

from hyperfusion.simulate.anatomy import STRUCTURE_NAMES
from hyperfusion.simulate.brain_age import make_brain_age_cohort


def test_ukb_like_demographics():
    c = make_brain_age_cohort(2000, seed=1)
    t = c.table
    assert list(t.columns) == ["participant_id", "age", "sex"]
    assert t.age.between(45, 82).all()
    assert t.age.mean() == pytest.approx(64, abs=0.3) and t.age.std() == pytest.approx(7.5, abs=0.3)
    assert (t.sex == "M").mean() == pytest.approx(0.48, abs=0.03)
    assert c.latents.brain_age_gap.std() == pytest.approx(3.0, abs=0.2)
    assert t.participant_id.str.match(r"^sub-\d{4}$").all()


def _sex_slope_gap(c, structure):
    s = STRUCTURE_NAMES.index(structure)
    age = c.latents.biological_age.to_numpy()
    male = (c.table.sex == "M").to_numpy()
    slope = [np.polyfit(age[m], c.log_f[m, s], 1)[0] for m in (male, ~male)]
    return slope[0] - slope[1]


def test_ageing_pattern_depends_on_sex_only_with_interaction():
    off = make_brain_age_cohort(3000, interaction=0.0, seed=2)
    on = make_brain_age_cohort(3000, interaction=1.0, seed=2)
    assert abs(_sex_slope_gap(off, "hippocampus_left")) < 0.0015
    assert _sex_slope_gap(on, "hippocampus_left") > 0.003  # men's hippocampi age more slowly (Δ = -0.5)
    f_on = on.cortical[:, 0][on.table.sex == "M"].mean() - on.cortical[:, 0][on.table.sex == "F"].mean()
    assert f_on > 0.05  # frontal atrophy stronger in men


def test_ventricles_enlarge_with_age():
    c = make_brain_age_cohort(2000, interaction=0.0, seed=3)
    s = STRUCTURE_NAMES.index("lateral_ventricle_left")
    age = c.latents.biological_age.to_numpy()
    old, young = np.exp(c.log_f[age > 78, s]).mean(), np.exp(c.log_f[age < 50, s]).mean()
    assert 1.3 < old / young < 2.5


@pytest.mark.parametrize(("n", "lam"), [(0, 1.0), (5, -0.5)])
def test_bad_arguments(n, lam):
    with pytest.raises(ValueError):
        make_brain_age_cohort(n, interaction=lam)
