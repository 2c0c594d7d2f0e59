"""The ADNI-like AD cohort: label first, then latent biology, then both modalities.

Labels and sex reproduce the paper's Table 2 exactly at n = 2120 (CN 740 = 309 M : 431 F, MCI 1015 = 569 : 446,
AD 365 = 198 : 167), proportionally otherwise; ages TruncN(μ, σ; 55, 91) per group.  Amyloid status
``P(A+) = σ(α_g + 1.1[e4≥1] + 0.5[e4=2] + 0.04(age−72))`` and severity ``S ~ Beta`` given (group, A) drive CSF
Aβ42, p-tau, t-tau, FDG and AV45; missingness follows a latent ADNI phase.

The image model reads through the table (interaction λ): where atrophy lands depends on APOE4, age and sex (π),
how much is normal depends on age and sex, and amyloid-negative look-alikes (LATE-like hippocampal loss in the
oldest-old, vascular-type MTL thinning) mimic AD.  At λ = 0: π ≡ 0.5, no look-alikes, no sex terms.  The
``location`` interaction mode replaces this image model by a stress test in which sex decides where the disease
shows (:mod:`hyperfusion.simulate.location`); the table is the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hyperfusion.simulate.anatomy import LOBE_NAMES, STRUCTURE_NAMES
from hyperfusion.simulate.effects import (
    Cohort,
    allocate,
    checked_cohort_args,
    sigmoid,
    stratified_truncnorm,
    table_rng,
)
from hyperfusion.simulate.location import checked_effect_scale, checked_mode, location_effects

GROUPS = ("CN", "MCI", "AD")
TABLE2_COUNTS = {"CN": (309, 431), "MCI": (569, 446), "AD": (198, 167)}  # (male, female) at n = 2120
AGE = {"CN": (72.2, 6.8), "MCI": (72.8, 7.6), "AD": (75.1, 7.8)}
AGE_RANGE = (55.0, 91.0)
EDUCATION_MEAN = {"CN": 16.3, "MCI": 15.9, "AD": 15.1}
APOE4_P = {"CN": (0.72, 0.25, 0.03), "MCI": (0.52, 0.38, 0.10), "AD": (0.34, 0.47, 0.19)}
AMYLOID_ALPHA = {"CN": -1.35, "MCI": -0.25, "AD": 1.9}
SEVERITY_BETA = {  # (A-, A+)
    "CN": ((1.2, 14.0), (1.5, 10.0)),
    "MCI": ((2.0, 8.0), (3.5, 5.0)),
    "AD": ((4.0, 4.0), (7.0, 3.0)),
}
PHASE_P = {"CN": (0.25, 0.45, 0.30), "MCI": (0.35, 0.45, 0.20), "AD": (0.50, 0.35, 0.15)}  # ADNI1, GO/2, 3
CSF_MISSING = (0.50, 0.15, 0.60)
FDG_MISSING = (0.50, 0.10, 0.65)
AV45_MISSING = (1.0, 0.10, 0.20)
# ADNIMERGE writes values beyond the assay range as strings
CENSOR = {"ABETA": (200.0, 1700.0), "PTAU": (8.0, 120.0), "TAU": (80.0, 1300.0)}
TABLE_COLUMNS = (
    "PTID", "VISCODE", "DX_bl", "AGE", "PTGENDER", "PTEDUCAT", "APOE4", "ABETA", "PTAU", "TAU", "FDG", "AV45",
)  # fmt: skip


def _censor(values: np.ndarray, lo: float, hi: float, digits: int) -> list[object]:
    out: list[object] = []
    for v in values:
        if np.isnan(v):
            out.append(np.nan)
        elif v <= lo:
            out.append(f"<{lo:g}")
        elif v >= hi:
            out.append(f">{hi:g}")
        else:
            out.append(round(float(v), digits))
    return out


def make_ad_cohort(
    n: int = 2120,
    *,
    interaction: float = 1.0,
    seed: int = 0,
    interaction_mode: str = "graded",
    effect_scale: float = 1.0,
) -> Cohort:
    """Draw the AD cohort's table, latents and image effects (no images).

    Args:
        n: number of subjects (>= 3); Table 2 exactly at 2120.
        interaction: λ ≥ 0, how much the image must be read in light of the table (0 none, 1 realistic, 2 strong;
            in the ``location`` mode, how far sex decides the subtype: 0 not at all, >= 1 fully).
        seed: everything is deterministic from it.
        interaction_mode: ``graded`` (the default image model) or ``location`` (sex decides where the disease
            shows; a stress test with a large interaction gain, see :mod:`hyperfusion.simulate.location`).
        effect_scale: multiplies the disease's (and its look-alikes') image effects in either mode: every
            severity coefficient of the image model and the look-alike terms alike (1: the values below).

    Raises:
        ValueError: on n < 3, a negative / non-finite interaction, an unknown interaction mode or a bad
            effect scale.
    """
    n, lam = checked_cohort_args(n, interaction, minimum=3)
    checked_mode(interaction_mode)
    effect_scale = checked_effect_scale(effect_scale)
    rng = table_rng(seed, "ad")
    cells = [(g, sex) for g in GROUPS for sex in (1, 0)]
    counts = allocate(n, np.array([TABLE2_COUNTS[g][1 - sex] for g, sex in cells]))
    group = np.concatenate([[g] * c for (g, _), c in zip(cells, counts)])
    male = np.concatenate([[sex] * c for (_, sex), c in zip(cells, counts)]).astype(int)
    age = np.empty(n)
    for g in GROUPS:
        sel = group == g
        age[sel] = stratified_truncnorm(rng, int(sel.sum()), *AGE[g], *AGE_RANGE)
    age = np.round(age, 1)
    # shuffle subjects so the file order carries no label information
    perm = rng.permutation(n)
    group, male, age = group[perm], male[perm], age[perm]
    female = 1 - male

    e4 = np.array([rng.choice(3, p=APOE4_P[g]) for g in group])
    edu = np.clip(np.round(rng.normal([EDUCATION_MEAN[g] for g in group] + 0.5 * male, 2.8)), 6, 20)
    alpha = np.array([AMYLOID_ALPHA[g] for g in group])
    amyloid = (
        rng.uniform(size=n) < sigmoid(alpha + 1.1 * (e4 >= 1) + 0.5 * (e4 == 2) + 0.04 * (age - 72))
    ).astype(int)
    ab = np.array([SEVERITY_BETA[g][a] for g, a in zip(group, amyloid)])
    severity = rng.beta(ab[:, 0], ab[:, 1])
    s, a_ = severity, amyloid

    abeta = np.exp(np.log(1350) - 0.72 * a_ - 0.15 * s + rng.normal(0, 0.25, n))
    ptau = np.exp(np.log(19) + 0.35 * a_ + 0.55 * s + rng.normal(0, 0.28, n))
    tau = np.exp(np.log(11) + np.log(ptau) + rng.normal(0, 0.10, n))
    fdg = 6.55 - 1.5 * s - 0.3 * a_ * s - 0.01 * (age - 72) + rng.normal(0, 0.45, n)
    av45 = 1.03 + 0.33 * a_ + 0.12 * a_ * s + rng.normal(0, 0.07, n)

    phase = np.array([rng.choice(3, p=PHASE_P[g]) for g in group])
    u = rng.uniform(size=(5, n))
    csf_missing = u[0] < np.take(CSF_MISSING, phase) + 0.1 * s
    abeta[csf_missing] = ptau[csf_missing] = tau[csf_missing] = np.nan
    fdg[u[1] < np.take(FDG_MISSING, phase)] = np.nan
    av45[u[2] < np.take(AV45_MISSING, phase)] = np.nan
    edu_out = np.where(u[3] < 0.01, np.nan, edu)
    e4_out = np.where(u[4] < 0.01, np.nan, e4.astype(float))

    # ADNIMERGE baseline diagnosis: SMC (from ADNI2 on) inside CN, EMCI/LMCI inside MCI
    dx = group.astype(object).copy()
    dx[(group == "CN") & (phase > 0) & (rng.uniform(size=n) < 0.2)] = "SMC"
    is_mci = group == "MCI"
    dx[is_mci] = np.where((phase[is_mci] == 0) | (s[is_mci] > 0.3), "LMCI", "EMCI")

    width = max(4, len(str(n)))
    site = rng.integers(2, 142, size=n)
    ptid = [f"{st:03d}_S_{i + 1:0{width}d}" for i, st in enumerate(site)]
    table = pd.DataFrame(
        {
            "PTID": ptid,
            "VISCODE": "bl",
            "DX_bl": dx,
            "AGE": age,
            "PTGENDER": np.where(male == 1, "Male", "Female"),
            "PTEDUCAT": edu_out,
            "APOE4": e4_out,
            "ABETA": _censor(abeta, *CENSOR["ABETA"], 1),
            "PTAU": _censor(ptau, *CENSOR["PTAU"], 2),
            "TAU": _censor(tau, *CENSOR["TAU"], 1),
            "FDG": np.round(fdg, 4),
            "AV45": np.round(av45, 4),
        }
    )

    # image model (log volume factors relative to the template); a = b - 45 with b the biological age
    bio = age + rng.normal(0, 3.0, n)
    common = {
        "PTID": ptid,
        "diagnosis": group,
        "amyloid_positive": amyloid,
        "severity": s,
        "apoe4": e4,
        "education": edu,
        "biological_age": bio,
        "phase": np.take(["ADNI1", "ADNIGO/2", "ADNI3"], phase),
    }
    if interaction_mode == "location":
        fx = location_effects(
            rng, severity=s, female=female, biological_age=bio, interaction=lam, effect_scale=effect_scale
        )
        latents = pd.DataFrame(common | fx.latents)
        return Cohort("ad", int(seed), table, latents, fx.log_f, fx.cortical, fx.wm_contrast)
    a = bio - 45
    lam1 = min(lam, 1.0)
    s = effect_scale * severity  # what the image shows of the disease (× 1.0 leaves every value bit for bit)
    pi = sigmoid(2 * lam * (1.6 * (e4 >= 1) + 0.08 * (age - 72) - 0.6 + 0.5 * female))
    w_lim = (1 - lam1) * 0.65 + lam1 * pi
    w_ctx = (1 - lam1) * 0.65 + lam1 * (1 - pi)
    hip_age = -(0.003 * a + 0.00015 * a**2) - 0.002 * lam * np.maximum(0, bio - 52) * female
    ven_age = (0.010 * a + 0.0003 * a**2) * (1 + 0.25 * lam * np.where(male == 1, 1.0, -1.0))
    late = effect_scale * lam * (amyloid == 0) * sigmoid((age - 76) / 3) * rng.exponential(0.15, n)
    vasc = effect_scale * lam * (e4 == 0) * male * rng.exponential(0.10, n)
    noise = rng.normal(size=(12, n))
    lv_common = 0.3 * noise[8]
    log_f = {
        "hippocampus_left": hip_age - 0.45 * s * w_lim * 1.1 - late + 0.08 * noise[0],
        "hippocampus_right": hip_age - 0.45 * s * w_lim * 0.9 - late + 0.08 * noise[1],
        "amygdala_left": -0.002 * a - 0.35 * s * w_lim - 0.5 * late + 0.08 * noise[2],
        "amygdala_right": -0.002 * a - 0.35 * s * w_lim - 0.5 * late + 0.08 * noise[3],
        "temporal_horn_left": ven_age + 1.2 * s * w_lim + 2.0 * late + 0.25 * noise[4],
        "temporal_horn_right": ven_age + 1.2 * s * w_lim + 2.0 * late + 0.25 * noise[5],
        "lateral_ventricle_left": ven_age + 0.8 * s + lv_common + 0.05 * noise[6],
        "lateral_ventricle_right": ven_age + 0.8 * s + lv_common + 0.05 * noise[7],
        "third_ventricle": 0.8 * ven_age + 0.5 * s + 0.2 * noise[9],
    }
    c_mtl = np.clip(0.004 * a + 0.5 * s * w_ctx + vasc + 0.05 * noise[10], 0, 0.8)
    c_age = np.clip(0.010 * a[:, None] + 0.04 * rng.normal(size=(n, len(LOBE_NAMES))), 0, 0.8)
    cortical = np.where(np.array(LOBE_NAMES) == "mtl", c_mtl[:, None], c_age)
    kappa = np.clip(0.004 * a, 0, 1)

    latents = pd.DataFrame(
        common | {"limbic_weight_pi": pi, "late_lookalike": late, "vascular_lookalike": vasc}
    )
    return Cohort(
        "ad",
        int(seed),
        table,
        latents,
        np.stack([log_f[name] for name in STRUCTURE_NAMES], axis=1),
        cortical,
        kappa,
    )
