"""The AD cohort's ``location`` interaction mode: the record decides *where* the disease shows in the image.

The default (``graded``) image model lets the record shift atrophy only partly, so a reader that ignores the
record loses little (an oracle on the noise-free image effects gains about one balanced-accuracy point from the
interaction at λ = 2).  This mode is a stylised stress test with a large, known gain, built from the published
limbic-predominant vs hippocampal-sparing AD subtypes (limbic-predominant more often in women, sparing more often
in men), exaggerated until sex decides the subtype:

* subtype: ``limbic`` with probability ``p = ½ + ½·min(λ, 1)·(+1 female, −1 male)``; so at λ ≥ 1 every woman is
  limbic and every man cortical, at λ = 0 the subtype is a coin flip the record says nothing about (the control:
  the same images, nothing for the record to explain);
* the disease severity S lands on the subtype's regions only, with the default model's coefficients at full
  weight: limbic — hippocampi ``−0.45 S`` (×1.1 left, ×0.9 right), amygdalae ``−0.35 S``, temporal horns
  ``+1.2 S`` (log volume); cortical — MTL cortex ``+0.5 S`` and lateral temporal cortex ``+0.25 S`` (thinning
  fraction) with, as widespread cortical atrophy does, enlarged lateral ventricles ``+0.8 S`` and third
  ventricle ``+0.5 S`` (log volume).  At 4 mm the thinning is faint (it lives in a 1–2 mm grey-matter rim), so
  there the ventricles carry the cortical subtype; to make them about as readable as the limbic subtype's
  hippocampi, ventricle size varies half as much between people as in the default model (log SD 0.15 shared by
  both lateral ventricles, 0.10 for the third);
* the region the subtype spares carries the same pattern driven by a benign look-alike B that ignores diagnosis:
  with probability ½ AD-sized (``B ~ Beta(7, 3)``, the severity of amyloid-positive AD), otherwise normal
  variation (``B ~ Beta(1.2, 14)``, that of amyloid-negative CN).  A reader that does not know the subtype cannot
  tell the disease's atrophy from the look-alike's;
* ``effect_scale`` (default 1) multiplies the severity and look-alike coefficients alike: the studies and the
  demo use 2, so that a CNN on 4 mm crops of a few hundred subjects can read the disease at all;
* ageing as the default model at λ = 0 (no sex terms), so S reaches the image through the subtype's regions
  alone.  The regions lie inside the 64×96×64 mm hippocampal crops (the lateral ventricles 62 %, the temporal
  cortex 67 %, the MTL cortex 85 %).

The table (labels, biomarkers, missingness) is drawn exactly as in the default mode; only the image differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperfusion.simulate.anatomy import LOBE_NAMES, STRUCTURE_NAMES

INTERACTION_MODES = ("graded", "location")
LOOKALIKE_P = 0.5
LOOKALIKE_BETA = (7.0, 3.0)  # AD-sized look-alike: the severity of amyloid-positive AD
NORMAL_BETA = (1.2, 14.0)  # normal variation: the severity of amyloid-negative CN
HIPPOCAMPUS, AMYGDALA, TEMPORAL_HORN = 0.45, 0.35, 1.2  # log-volume change per unit severity (limbic)
MTL_CORTEX, TEMPORAL_CORTEX = 0.5, 0.25  # thinning fraction per unit severity (cortical)
LATERAL_VENTRICLE, THIRD_VENTRICLE = 0.8, 0.5  # log-volume change per unit severity (cortical)


def checked_mode(mode: str) -> str:
    """``mode`` if it is one of ``INTERACTION_MODES``.

    Raises:
        ValueError: naming the bad value and the choices.
    """
    if mode not in INTERACTION_MODES:
        raise ValueError(f"interaction_mode must be one of {INTERACTION_MODES}, got {mode!r}")
    return mode


@dataclass(frozen=True)
class LocationEffects:
    """Image effects of the location mode for a whole cohort.

    Attributes:
        log_f: target log-volume factors (n, structures) in ``STRUCTURE_NAMES`` order.
        cortical: thinning fractions (n, regions) in ``LOBE_NAMES`` order.
        wm_contrast: grey/white contrast loss (n,).
        latents: extra truth per subject (subtype, its probability, look-alike severity).
    """

    log_f: np.ndarray
    cortical: np.ndarray
    wm_contrast: np.ndarray
    latents: dict[str, np.ndarray]


def limbic_probability(female: np.ndarray, interaction: float) -> np.ndarray:
    """P(limbic subtype | sex): ½ at λ = 0, 1 for women and 0 for men at λ ≥ 1."""
    return 0.5 + 0.5 * min(float(interaction), 1.0) * np.where(np.asarray(female) == 1, 1.0, -1.0)


def checked_effect_scale(scale: float) -> float:
    """``scale`` as a float if it is a finite number > 0 (either interaction mode takes it).

    Raises:
        ValueError: naming the bad value.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"effect_scale must be a finite number > 0, got {scale!r}")
    return float(scale)


def location_effects(
    rng: np.random.Generator,
    *,
    severity: np.ndarray,
    female: np.ndarray,
    biological_age: np.ndarray,
    interaction: float,
    effect_scale: float = 1.0,
) -> LocationEffects:
    """Draw the location mode's image effects (see the module docstring) from ``rng``.

    ``effect_scale`` multiplies every severity and look-alike coefficient (1: the values above): the disease and
    its look-alike show more clearly against normal variation, and so does where each shows.
    """
    s = np.asarray(severity, dtype=float)
    n = len(s)
    p = limbic_probability(female, interaction)
    limbic = rng.uniform(size=n) < p
    ad_sized = rng.uniform(size=n) < LOOKALIKE_P
    lookalike = np.where(ad_sized, rng.beta(*LOOKALIKE_BETA, n), rng.beta(*NORMAL_BETA, n))
    s_lim = effect_scale * np.where(limbic, s, lookalike)  # what the limbic region shows
    s_ctx = effect_scale * np.where(limbic, lookalike, s)  # what the cortex and the ventricles show

    a = np.asarray(biological_age, dtype=float) - 45
    hip_age = -(0.003 * a + 0.00015 * a**2)
    ven_age = 0.010 * a + 0.0003 * a**2
    z = rng.normal(size=(10, n))
    log_f = {
        "hippocampus_left": hip_age - HIPPOCAMPUS * 1.1 * s_lim + 0.08 * z[0],
        "hippocampus_right": hip_age - HIPPOCAMPUS * 0.9 * s_lim + 0.08 * z[1],
        "amygdala_left": -0.002 * a - AMYGDALA * s_lim + 0.08 * z[2],
        "amygdala_right": -0.002 * a - AMYGDALA * s_lim + 0.08 * z[3],
        "temporal_horn_left": ven_age + TEMPORAL_HORN * s_lim + 0.25 * z[4],
        "temporal_horn_right": ven_age + TEMPORAL_HORN * s_lim + 0.25 * z[5],
        "lateral_ventricle_left": ven_age + LATERAL_VENTRICLE * s_ctx + 0.15 * z[8] + 0.05 * z[6],
        "lateral_ventricle_right": ven_age + LATERAL_VENTRICLE * s_ctx + 0.15 * z[8] + 0.05 * z[7],
        "third_ventricle": 0.8 * ven_age + THIRD_VENTRICLE * s_ctx + 0.10 * z[9],
    }
    thinning = 0.010 * a[:, None] + 0.04 * rng.normal(size=(n, len(LOBE_NAMES)))  # ageing, as the default
    mtl, temporal = LOBE_NAMES.index("mtl"), LOBE_NAMES.index("temporal")
    thinning[:, mtl] = 0.004 * a + MTL_CORTEX * s_ctx + 0.05 * rng.normal(size=n)
    thinning[:, temporal] += TEMPORAL_CORTEX * s_ctx
    return LocationEffects(
        log_f=np.stack([log_f[name] for name in STRUCTURE_NAMES], axis=1),
        cortical=np.clip(thinning, 0, 0.8),
        wm_contrast=np.clip(0.004 * a, 0, 1),
        latents={
            "subtype": np.where(limbic, "limbic", "cortical"),
            "limbic_probability": p,
            "lookalike_severity": lookalike,
        },
    )
