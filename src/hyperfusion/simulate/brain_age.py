"""The UK Biobank-like brain-age cohort: target = age, tabular = sex.

``age ~ TruncN(64, 7.5; 45, 82)``, ``male ~ Bernoulli(0.48)``; the image shows the biological age
``b = age + N(0, 3²)`` (a = b − 45), which sets an error floor of about 2.4 years.  Ageing differs by sex in *where*
it shows: region r's effect is scaled by ``m_r = 1 + λ Δ_r(sex)`` over (ventricles, hippocampus, frontal,
temporal, parietal, occipital, WM contrast) with ``Δ(male) = (+.5, −.5, +.5, +.5, −.5, −.5, +.2) = −Δ(female)``
(stylised: designed so that sex decides where to look).  At λ = 0 the image does not depend on sex.

``variability`` scales every between-subject difference that age does not explain (the regional noise terms; 1 =
the UK Biobank-like default). Those differences dominate what a few hundred 4 mm scans show — ventricle size alone
varies ±35 % between people of the same age — so a CNN needs thousands of default subjects to read age well; a
small demo cohort at ``variability`` 0.15 carries an age signal a few hundred subjects can learn (docs/simulate.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hyperfusion.simulate.anatomy import LOBE_NAMES, STRUCTURE_NAMES
from hyperfusion.simulate.effects import Cohort, checked_cohort_args, stratified_truncnorm, table_rng

AGE_MEAN, AGE_SD, AGE_RANGE = 64.0, 7.5, (45.0, 82.0)
P_MALE = 0.48
BIO_AGE_SD = 3.0
SEX_PATTERN_MALE = {  # Δ_r(male); Δ(female) = −Δ(male)
    "ventricles": 0.5,
    "hippocampus": -0.5,
    "frontal": 0.5,
    "temporal": 0.5,
    "parietal": -0.5,
    "occipital": -0.5,
    "wm_contrast": 0.2,
}


def make_brain_age_cohort(
    n: int = 2000, *, interaction: float = 1.0, seed: int = 0, variability: float = 1.0
) -> Cohort:
    """Draw the brain-age cohort's table, latents and image effects (no images).

    Args:
        n: number of subjects (>= 1).
        interaction: λ_sex ≥ 0, strength of the sex-specific ageing pattern (0 none, 1 realistic, 2 strong).
        seed: everything is deterministic from it.
        variability: scale of the between-subject differences age does not explain (1: the default cohort).

    Raises:
        ValueError: on n < 1, a negative / non-finite interaction, or a variability outside (0, 1].
    """
    n, lam = checked_cohort_args(n, interaction, minimum=1)
    if not 0 < variability <= 1:
        raise ValueError(f"variability must be in (0, 1], got {variability!r}")
    rng = table_rng(seed, "brain_age")
    age = np.round(stratified_truncnorm(rng, n, AGE_MEAN, AGE_SD, *AGE_RANGE), 1)
    male = (rng.uniform(size=n) < P_MALE).astype(int)
    female = 1 - male
    bio = age + rng.normal(0, BIO_AGE_SD, n)
    a = bio - 45
    sign = np.where(male == 1, 1.0, -1.0)
    m = {r: 1 + lam * d * sign for r, d in SEX_PATTERN_MALE.items()}

    noise = rng.normal(size=(10, n)) * variability
    ven = (0.010 * a + 0.0003 * a**2) * m["ventricles"] + 0.30 * noise[0]
    hip = -(0.003 * a + 0.00015 * a**2) * m["hippocampus"] - 0.002 * lam * np.maximum(0, bio - 52) * female
    log_f = {
        "hippocampus_left": hip + 0.08 * noise[1],
        "hippocampus_right": hip + 0.08 * noise[2],
        "amygdala_left": -0.002 * a * m["hippocampus"] + 0.08 * noise[3],
        "amygdala_right": -0.002 * a * m["hippocampus"] + 0.08 * noise[4],
        "temporal_horn_left": ven + 0.15 * noise[5],
        "temporal_horn_right": ven + 0.15 * noise[6],
        "lateral_ventricle_left": ven + 0.05 * noise[7],
        "lateral_ventricle_right": ven + 0.05 * noise[8],
        "third_ventricle": 0.8 * ven + 0.10 * noise[9],
    }
    lobe_m = {"frontal": "frontal", "temporal": "temporal", "parietal": "parietal", "occipital": "occipital"}
    lobe_m["mtl"] = "temporal"
    cortical = np.stack(
        [
            np.clip(0.010 * a * m[lobe_m[j]] + 0.04 * variability * rng.normal(size=n), 0, 0.8)
            for j in LOBE_NAMES
        ],
        axis=1,
    )
    kappa = np.clip(0.004 * a * m["wm_contrast"], 0, 1)

    width = max(4, len(str(n)))
    ids = [f"sub-{i + 1:0{width}d}" for i in range(n)]
    table = pd.DataFrame({"participant_id": ids, "age": age, "sex": np.where(male == 1, "M", "F")})
    latents = pd.DataFrame({"participant_id": ids, "biological_age": bio, "brain_age_gap": bio - age})
    return Cohort(
        "brain_age",
        int(seed),
        table,
        latents,
        np.stack([log_f[name] for name in STRUCTURE_NAMES], axis=1),
        cortical,
        kappa,
    )
