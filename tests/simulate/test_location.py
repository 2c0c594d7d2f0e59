"""The AD cohort's ``location`` interaction mode: sex decides where the disease shows."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hyperfusion.cli import main
from hyperfusion.simulate import simulate_ad
from hyperfusion.simulate.ad import make_ad_cohort
from hyperfusion.simulate.anatomy import LOBE_NAMES, STRUCTURE_NAMES
from hyperfusion.simulate.location import (
    AMYGDALA,
    HIPPOCAMPUS,
    LATERAL_VENTRICLE,
    LOOKALIKE_BETA,
    LOOKALIKE_P,
    MTL_CORTEX,
    NORMAL_BETA,
    TEMPORAL_CORTEX,
    TEMPORAL_HORN,
    THIRD_VENTRICLE,
    limbic_probability,
    location_effects,
)
from hyperfusion.simulate.render import NO_NUISANCE
from tests.faults import fault

KW = dict(voxel_size=4.0, template="phantom", progress=False)
HIP_L = STRUCTURE_NAMES.index("hippocampus_left")
LV_L = STRUCTURE_NAMES.index("lateral_ventricle_left")
MTL, TEMPORAL = LOBE_NAMES.index("mtl"), LOBE_NAMES.index("temporal")


def _cohort(n=1500, lam=1.0, seed=5):
    return make_ad_cohort(n, interaction=lam, seed=seed, interaction_mode="location")


@pytest.fixture(scope="module")
def full():
    return _cohort()


def _female(c) -> np.ndarray:
    return (c.table.PTGENDER == "Female").to_numpy()


def test_sex_decides_the_subtype_at_full_interaction(full):
    limbic = (full.latents.subtype == "limbic").to_numpy()
    assert (limbic == _female(full)).all()
    strong = _cohort(300, lam=2.0)
    assert ((strong.latents.subtype == "limbic").to_numpy() == _female(strong)).all()


@pytest.mark.parametrize(("lam", "p_female"), [(0.0, 0.5), (0.5, 0.75)])
def test_subtype_probability_follows_interaction(lam, p_female):
    c = _cohort(4000, lam=lam, seed=1)
    limbic, female = (c.latents.subtype == "limbic").to_numpy(), _female(c)
    assert limbic[female].mean() == pytest.approx(p_female, abs=0.04)
    assert limbic[~female].mean() == pytest.approx(1 - p_female, abs=0.04)
    np.testing.assert_allclose(c.latents.limbic_probability, np.where(female, p_female, 1 - p_female))


def test_limbic_probability_by_hand():
    female = np.array([1, 0, 1, 0])
    np.testing.assert_allclose(limbic_probability(female, 0.0), [0.5] * 4)
    np.testing.assert_allclose(limbic_probability(female, 0.2), [0.6, 0.4, 0.6, 0.4])
    np.testing.assert_allclose(limbic_probability(female, 3.0), [1, 0, 1, 0])


def test_table_and_labels_are_those_of_the_default_mode(full):
    graded = make_ad_cohort(1500, interaction=1.0, seed=5)
    pd.testing.assert_frame_equal(full.table, graded.table)
    common = ["PTID", "diagnosis", "amyloid_positive", "severity", "apoe4", "education", "biological_age"]
    pd.testing.assert_frame_equal(full.latents[common], graded.latents[common])
    assert {"subtype", "limbic_probability", "lookalike_severity"} <= set(full.latents.columns)


def _reference(rng, severity, female, bio, lam):
    """Per-subject re-computation of ``location_effects`` from the same stream of draws."""
    n = len(severity)
    u_sub, u_look = rng.uniform(size=n), rng.uniform(size=n)
    big, small = rng.beta(*LOOKALIKE_BETA, n), rng.beta(*NORMAL_BETA, n)
    z = rng.normal(size=(10, n))
    lobe_noise = rng.normal(size=(n, len(LOBE_NAMES)))
    mtl_noise = rng.normal(size=n)
    log_f, cortical = np.zeros((n, len(STRUCTURE_NAMES))), np.zeros((n, len(LOBE_NAMES)))
    for i in range(n):
        p = 0.5 + 0.5 * min(lam, 1.0) * (1 if female[i] else -1)
        b = big[i] if u_look[i] < LOOKALIKE_P else small[i]
        s_lim, s_ctx = (severity[i], b) if u_sub[i] < p else (b, severity[i])
        a = bio[i] - 45
        hip, ven = -(0.003 * a + 0.00015 * a * a), 0.010 * a + 0.0003 * a * a
        row = {
            "hippocampus_left": hip - HIPPOCAMPUS * 1.1 * s_lim + 0.08 * z[0, i],
            "hippocampus_right": hip - HIPPOCAMPUS * 0.9 * s_lim + 0.08 * z[1, i],
            "amygdala_left": -0.002 * a - AMYGDALA * s_lim + 0.08 * z[2, i],
            "amygdala_right": -0.002 * a - AMYGDALA * s_lim + 0.08 * z[3, i],
            "temporal_horn_left": ven + TEMPORAL_HORN * s_lim + 0.25 * z[4, i],
            "temporal_horn_right": ven + TEMPORAL_HORN * s_lim + 0.25 * z[5, i],
            "lateral_ventricle_left": ven + LATERAL_VENTRICLE * s_ctx + 0.15 * z[8, i] + 0.05 * z[6, i],
            "lateral_ventricle_right": ven + LATERAL_VENTRICLE * s_ctx + 0.15 * z[8, i] + 0.05 * z[7, i],
            "third_ventricle": 0.8 * ven + THIRD_VENTRICLE * s_ctx + 0.10 * z[9, i],
        }
        log_f[i] = [row[name] for name in STRUCTURE_NAMES]
        for j, lobe in enumerate(LOBE_NAMES):
            value = 0.010 * a + 0.04 * lobe_noise[i, j]
            if lobe == "mtl":
                value = 0.004 * a + MTL_CORTEX * s_ctx + 0.05 * mtl_noise[i]
            elif lobe == "temporal":
                value += TEMPORAL_CORTEX * s_ctx
            cortical[i, j] = min(max(value, 0.0), 0.8)
    return log_f, cortical


@pytest.mark.parametrize("lam", [0.0, 0.6, 1.0])
def test_effects_match_a_per_subject_reference(lam):
    rng = np.random.default_rng(0)
    n = 40
    severity, female, bio = rng.beta(2, 5, n), rng.integers(0, 2, n), rng.uniform(55, 95, n)
    fx = location_effects(
        np.random.default_rng(9), severity=severity, female=female, biological_age=bio, interaction=lam
    )
    log_f, cortical = _reference(np.random.default_rng(9), severity, female, bio, lam)
    np.testing.assert_allclose(fx.log_f, log_f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fx.cortical, cortical, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fx.wm_contrast, np.clip(0.004 * (bio - 45), 0, 1))


def test_disease_shows_only_in_the_subtypes_region(full):
    """Regressing each region on severity S within a subtype: the subtype's region follows S with the stated
    coefficient, the spared region not at all (it follows the look-alike instead)."""
    lat = full.latents
    s, look = lat.severity.to_numpy(), lat.lookalike_severity.to_numpy()
    a = lat.biological_age.to_numpy() - 45
    hip = full.log_f[:, HIP_L] + (0.003 * a + 0.00015 * a**2)  # ageing removed
    for subtype, limbic_driver, cortical_driver in (("limbic", s, look), ("cortical", look, s)):
        sel = (lat.subtype == subtype).to_numpy()
        slope = np.polyfit(limbic_driver[sel], hip[sel], 1)[0]
        assert slope == pytest.approx(-HIPPOCAMPUS * 1.1, abs=0.05)
        residual = hip[sel] + HIPPOCAMPUS * 1.1 * limbic_driver[sel]
        assert residual.std() == pytest.approx(0.08, abs=0.01)
        assert abs(np.corrcoef(cortical_driver[sel], residual)[0, 1]) < 0.1
        mtl_slope = np.polyfit(cortical_driver[sel], full.cortical[sel, MTL], 1)[0]
        assert mtl_slope == pytest.approx(MTL_CORTEX, abs=0.06)
        ventricle = full.log_f[sel, LV_L] - (0.010 * a[sel] + 0.0003 * a[sel] ** 2)
        assert np.polyfit(cortical_driver[sel], ventricle, 1)[0] == pytest.approx(LATERAL_VENTRICLE, abs=0.08)
        assert (ventricle - LATERAL_VENTRICLE * cortical_driver[sel]).std() == pytest.approx(0.158, abs=0.015)
        assert abs(np.corrcoef(limbic_driver[sel], ventricle)[0, 1]) < 0.1


def test_lookalike_is_ad_sized_half_the_time_and_ignores_diagnosis(full):
    lat = full.latents
    look = lat.lookalike_severity
    assert (look > 0.4).mean() == pytest.approx(LOOKALIKE_P * 0.99, abs=0.05)  # Beta(7, 3) > 0.4: 99 %
    by_group = look.groupby(lat.diagnosis).mean()
    assert by_group.max() - by_group.min() < 0.05


def test_ad_vs_cn_hippocampal_change_in_range(full):
    g = full.latents.diagnosis.to_numpy()
    hip = np.exp(full.log_f[:, HIP_L])
    assert -0.30 < hip[g == "AD"].mean() / hip[g == "CN"].mean() - 1 < -0.05


def test_deterministic_per_seed():
    a, b = _cohort(60, seed=4), _cohort(60, seed=4)
    assert np.array_equal(a.log_f, b.log_f) and np.array_equal(a.cortical, b.cortical)
    pd.testing.assert_frame_equal(a.latents, b.latents)
    assert not np.array_equal(_cohort(60, seed=6).log_f, a.log_f)


def test_realised_volumes_follow_the_subtype(renderer, full):
    """Rendered (phantom, no nuisance): a limbic patient's hippocampus shrinks by its target, a cortical
    patient's only by ageing and the look-alike, each within 15 % of the target change."""
    lat = full.latents
    ad = (lat.diagnosis == "AD").to_numpy()
    picks = [
        int(np.argmax(np.where(ad & (lat.subtype == "limbic"), lat.severity, -1))),
        int(np.argmax(np.where(ad & (lat.subtype == "cortical") & (lat.lookalike_severity < 0.1), lat.severity, -1))),
    ]  # fmt: skip
    changes = []
    for i in picks:
        _, vol = renderer.render(full.effects(i), np.random.default_rng(0), NO_NUISANCE)
        for s in (HIP_L, STRUCTURE_NAMES.index("amygdala_left")):
            target = np.exp(renderer.clip(full.log_f[i])[s]) - 1
            realised = vol[s] / renderer.anatomy.baseline_ml[s] - 1
            assert realised == pytest.approx(target, rel=0.15, abs=0.02), (i, STRUCTURE_NAMES[s])
        changes.append(vol[HIP_L] / renderer.anatomy.baseline_ml[HIP_L] - 1)
    assert changes[0] < -0.25 and changes[1] > -0.15  # severe AD: limbic shrinks, cortical spares


def _tabular(table: pd.DataFrame) -> np.ndarray:
    cols = ["AGE", "PTEDUCAT", "APOE4", "ABETA", "PTAU", "TAU", "FDG", "AV45"]
    num = [
        pd.to_numeric(table[c].astype(str).str.lstrip("<>"), errors="coerce").to_numpy(float) for c in cols
    ]
    return np.column_stack([*num, (table.PTGENDER == "Male").to_numpy(float)])


def _oracle_gap(lam: float, seed: int, n: int = 2000, volumes_only: bool = False) -> float:
    """Balanced-accuracy gain of image × sex terms for a logistic oracle on the noise-free image effects
    (structure volumes and temporal / MTL thinning, or the volumes alone: what 4 mm voxels show)."""
    c = _cohort(n, lam=lam, seed=seed)
    tab = _tabular(c.table)
    img = c.log_f if volumes_only else np.column_stack([c.log_f, c.cortical[:, [TEMPORAL, MTL]]])
    sign = 2 * tab[:, -1:] - 1
    y = pd.Categorical(c.latents.diagnosis, ["CN", "MCI", "AD"]).codes
    train = np.arange(n) < int(0.75 * n)

    def score(x):
        model = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True),
            StandardScaler(),
            LogisticRegression(max_iter=2000, class_weight="balanced"),
        )
        model.fit(x[train], y[train])
        return balanced_accuracy_score(y[~train], model.predict(x[~train]))

    return score(np.hstack([tab, img, img * sign])) - score(np.hstack([tab, img]))


def test_oracle_gap_on_a_small_sample():
    """Image × sex terms gain ≈ 10 points at λ = 1 (n = 2000; bound 5), ≈ 7 from the volumes alone (n = 5000;
    bound 4), and nothing at λ = 0 (bound 3)."""
    assert _oracle_gap(1.0, seed=0) > 0.05
    assert _oracle_gap(1.0, seed=0, n=5000, volumes_only=True) > 0.04
    assert abs(_oracle_gap(0.0, seed=0)) < 0.03


def test_simulate_writes_the_mode_and_keeps_default_settings(tmp_path):
    loc, default = tmp_path / "loc", tmp_path / "default"
    simulate_ad(loc, n=4, seed=2, interaction_mode="location", **KW)
    simulate_ad(default, n=4, seed=2, **KW)
    assert json.loads((loc / "simulation.json").read_text())["interaction_mode"] == "location"
    assert "interaction_mode" not in json.loads((default / "simulation.json").read_text())
    lat = pd.read_csv(loc / "latents.csv")
    assert set(lat.subtype) <= {"limbic", "cortical"} and lat.volume_ml_hippocampus_left.notna().all()
    assert (loc / "ADNIMERGE.csv").read_bytes() == (default / "ADNIMERGE.csv").read_bytes()
    assert (loc / "images").is_dir() and len(list((loc / "images").iterdir())) == 4


@fault("simulator", "resume a cohort folder with another --interaction-mode", "ValueError: other arguments")
def test_resume_refuses_another_mode(tmp_path):
    simulate_ad(tmp_path, n=3, seed=2, **KW)
    with pytest.raises(ValueError, match="other arguments"):
        simulate_ad(tmp_path, n=3, seed=2, interaction_mode="location", **KW)


@fault("simulator", "unknown interaction mode", "ValueError naming interaction_mode and the choices")
def test_unknown_mode_refused(tmp_path):
    with pytest.raises(ValueError, match="interaction_mode must be one of"):
        make_ad_cohort(10, interaction_mode="switch")
    with pytest.raises(ValueError, match="interaction_mode"):
        simulate_ad(tmp_path, n=3, interaction_mode="Location", **KW)


def test_cli_location_mode(tmp_path):
    out = tmp_path / "c"
    args = ["simulate", "ad", "--n", "3", "--interaction-mode", "location", "--template", "phantom"]
    assert main([*args, "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "simulation.json").read_text())["interaction_mode"] == "location"


@fault(
    "simulator",
    "--interaction-mode location for the brain-age cohort",
    "exit status 2: for the ad cohort only",
)
def test_cli_rejects_location_for_brain_age(tmp_path, capsys):
    args = ["simulate", "brain-age", "--n", "2", "--interaction-mode", "location", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "for the ad cohort only" in capsys.readouterr().err


def test_effect_scale_multiplies_every_severity_and_lookalike_coefficient():
    rng = np.random.default_rng(1)
    n = 40
    severity, female, bio = rng.beta(2, 5, n), rng.integers(0, 2, n), rng.uniform(55, 95, n)
    base = location_effects(np.random.default_rng(4), severity=severity, female=female, biological_age=bio,
                            interaction=1.0)  # fmt: skip
    scaled = location_effects(np.random.default_rng(4), severity=severity, female=female, biological_age=bio,
                              interaction=1.0, effect_scale=2.0)  # fmt: skip
    limbic = base.latents["subtype"] == "limbic"
    s_lim = np.where(limbic, severity, base.latents["lookalike_severity"])
    # the left hippocampus moves by exactly −0.45 × 1.1 × S_lim more (the noise terms are the same draws)
    np.testing.assert_allclose(
        scaled.log_f[:, HIP_L] - base.log_f[:, HIP_L], -HIPPOCAMPUS * 1.1 * s_lim, atol=1e-12
    )
    s_ctx = np.where(limbic, base.latents["lookalike_severity"], severity)
    np.testing.assert_allclose(
        scaled.log_f[:, LV_L] - base.log_f[:, LV_L], LATERAL_VENTRICLE * s_ctx, atol=1e-12
    )


@fault("simulator", "an effect scale that is not a positive number",
       "ValueError naming effect_scale and the value")  # fmt: skip
def test_effect_scale_is_checked(tmp_path):
    for mode in ("graded", "location"):
        for bad in (0.0, -1.0, float("nan"), True):
            with pytest.raises(ValueError, match="effect_scale must be a finite number > 0"):
                make_ad_cohort(10, interaction_mode=mode, effect_scale=bad)
    simulate_ad(tmp_path / "s", n=3, seed=2, interaction_mode="location", effect_scale=2.0, **KW)
    assert json.loads((tmp_path / "s" / "simulation.json").read_text())["effect_scale"] == 2.0
