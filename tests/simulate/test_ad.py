import numpy as np
import pandas as pd
import pytest

from hyperfusion.simulate.ad import AGE, TABLE2_COUNTS, TABLE_COLUMNS, make_ad_cohort


@pytest.fixture(scope="module")
def cohort():
    return make_ad_cohort(2120, interaction=1.0, seed=11)


def _numeric(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col.astype(str).str.lstrip("<>"), errors="coerce")


def test_table2_counts_sex_and_ages_exact(cohort):
    t = cohort.table.assign(group=cohort.latents["diagnosis"])
    assert tuple(cohort.table.columns) == TABLE_COLUMNS
    for g, (m, f) in TABLE2_COUNTS.items():
        sub = t[t.group == g]
        assert (sub.PTGENDER == "Male").sum() == m and (sub.PTGENDER == "Female").sum() == f
        assert sub.AGE.mean() == pytest.approx(AGE[g][0], abs=0.5)
        assert sub.AGE.std() == pytest.approx(AGE[g][1], abs=0.5)
    assert set(t.DX_bl) <= {"CN", "SMC", "EMCI", "LMCI", "AD"}
    mapped = t.DX_bl.replace({"SMC": "CN", "EMCI": "MCI", "LMCI": "MCI"})
    assert (mapped == t.group).all()
    assert t.PTID.is_unique and (t.VISCODE == "bl").all()


def test_proportional_counts_at_other_n():
    c = make_ad_cohort(212, seed=0)
    counts = c.latents["diagnosis"].value_counts()
    for g, (m, f) in TABLE2_COUNTS.items():
        assert abs(counts[g] - 212 * (m + f) / 2120) < 1.01
    assert counts.sum() == 212


def test_missing_rates_adni_like(cohort):
    t = cohort.table
    assert t.ABETA.isna().mean() == pytest.approx(0.40, abs=0.03)
    assert (t.ABETA.isna() == t.PTAU.isna()).all() and (t.ABETA.isna() == t.TAU.isna()).all()
    assert t.FDG.isna().mean() == pytest.approx(0.36, abs=0.03)
    assert t.AV45.isna().mean() == pytest.approx(0.43, abs=0.03)
    assert t.PTEDUCAT.isna().mean() < 0.03 and t.APOE4.isna().mean() < 0.03


def test_biomarker_group_means_within_10_percent(cohort):
    expected = {  # ADNI-like group means the design targets
        "CN": dict(ABETA=1145, PTAU=23, TAU=258, FDG=6.40, AV45=1.13),
        "MCI": dict(ABETA=928, PTAU=30, TAU=327, FDG=5.99, AV45=1.25),
        "AD": dict(ABETA=652, PTAU=40, TAU=443, FDG=5.30, AV45=1.41),
    }
    t = cohort.table.assign(group=cohort.latents["diagnosis"])
    for g, cols in expected.items():
        for col, value in cols.items():
            assert _numeric(t.loc[t.group == g, col]).mean() == pytest.approx(value, rel=0.10), (g, col)


def test_censored_strings_like_adnimerge(cohort):
    abeta = cohort.table.ABETA.dropna().astype(str)
    assert abeta.str.startswith(">").any() or abeta.str.startswith("<").any()
    assert set(abeta[abeta.str[0].isin(["<", ">"])]) <= {"<200", ">1700"}


def test_amyloid_and_apoe4_fractions(cohort):
    lat = cohort.latents
    a = lat.groupby("diagnosis").amyloid_positive.mean()
    assert a["CN"] < a["MCI"] < a["AD"] and a["AD"] > 0.85 and a["CN"] < 0.4


def test_interaction_zero_removes_context():
    c = make_ad_cohort(300, interaction=0.0, seed=2)
    assert np.allclose(c.latents.limbic_weight_pi, 0.5)
    assert (c.latents.late_lookalike == 0).all() and (c.latents.vascular_lookalike == 0).all()
    c2 = make_ad_cohort(300, interaction=2.0, seed=2)
    assert c2.latents.limbic_weight_pi.std() > 0.2 and (c2.latents.late_lookalike > 0).any()


def test_atrophy_follows_diagnosis(cohort):
    hip = cohort.log_f[:, 0]
    g = cohort.latents["diagnosis"].to_numpy()
    change = np.exp(hip[g == "AD"]).mean() / np.exp(hip[g == "CN"]).mean() - 1
    assert -0.30 < change < -0.08


def test_deterministic_per_seed():
    a, b = make_ad_cohort(50, seed=4), make_ad_cohort(50, seed=4)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert np.array_equal(a.log_f, b.log_f)
    assert not make_ad_cohort(50, seed=5).table.equals(a.table)


def test_effect_scale_multiplies_the_graded_disease_and_lookalike_terms():
    base, double = make_ad_cohort(300, seed=3), make_ad_cohort(300, seed=3, effect_scale=2.0)
    pd.testing.assert_frame_equal(base.table, double.table)  # the record is the same draw
    lat = base.latents
    s, w_lim, late = (
        lat["severity"],
        lat["limbic_weight_pi"],
        lat["late_lookalike"],
    )  # at λ = 1 the weight is π
    # the left hippocampus moves by exactly one more −0.45 × 1.1 × S × w − late (the noise is the same draw)
    np.testing.assert_allclose(
        double.log_f[:, 0] - base.log_f[:, 0], -0.45 * 1.1 * s * w_lim - late, atol=1e-12
    )
    # the lateral ventricles carry 0.8 S more; the look-alikes double with the disease
    np.testing.assert_allclose(double.log_f[:, 6] - base.log_f[:, 6], 0.8 * s, atol=1e-12)
    np.testing.assert_allclose(double.latents["late_lookalike"], 2 * late, atol=1e-12)
    np.testing.assert_array_equal(double.latents["severity"], s)
    # a scale of 1 is the default cohort bit for bit
    assert np.array_equal(make_ad_cohort(300, seed=3, effect_scale=1.0).log_f, base.log_f)


@pytest.mark.parametrize(("n", "lam"), [(2, 1.0), (2.5, 1.0), (10, -1.0), (10, float("nan"))])
def test_bad_arguments(n, lam):
    with pytest.raises(ValueError):
        make_ad_cohort(n, interaction=lam)
