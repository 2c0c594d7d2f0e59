"""Does each image look like a T1 of this cohort? Intensity statistics against the cohort's own distribution.

The image checks of preprocessing (readable, finite, of MNI size and position) pass images that are no T1 at all,
or not the cohort's: an inverted-contrast scan (a header with a negative ``scl_slope``, a T2), a binary brain mask
saved in place of the scan, or another subject's scan under a new name with its intensities rescaled (its bytes
differ, so the content check of `hyperfusion.data.duplicates` misses it; its model input is the same). Any of
these may be deliberate, so ``validate`` reports them as warnings, one line per image:

* **mask**: most of the image's non-zero voxels share one value (a T1 has a continuum of intensities);
* **contrast**: the image's model input correlates with the cohort's mean input far less than the cohort's
  images typically do (robust z-score of the correlation), or negatively — inverted or another contrast;
* **copy**: two subjects' model inputs correlate above `COPY_CORRELATION`, i.e. one is the other up to an
  intensity scaling (z-scored inputs are invariant to it);
* **header**: a negative ``scl_slope``, which inverts the stored intensities.

The statistics are computed on the preprocessed (z-scored) inputs in the image cache, subsampled to at most
`SIGNATURE_SIZE` voxels, so a cohort of thousands is checked in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np

#: Voxels kept of each model input for the statistics (a regular subsample).
SIGNATURE_SIZE = 20_000
#: A share of non-zero voxels at one value above which an image is a mask rather than a scan (simulated and
#: real T1s: under 1 %, even stored as 8-bit integers on the model's own grid; a binary mask in a 4 mm crop: 49 %).
MASK_SHARE = 0.25
#: Robust z-score of an image's correlation with the cohort mean below which its contrast is called unlike.
CONTRAST_Z = -6.0
#: Correlation of two subjects' inputs above which one is a (rescaled) copy of the other.
COPY_CORRELATION = 0.999


@dataclass(frozen=True)
class ImageWarning:
    """One image that does not look like a T1 of the cohort (``kind``: mask, contrast, copy or header)."""

    index: int  # the row of the cohort frame
    kind: str
    message: str


def header_warnings(path: str) -> list[str]:
    """What the NIfTI header alone says is off (a negative ``scl_slope`` inverts intensities)."""
    slope = getattr(nib.load(path).dataobj, "slope", 1.0)  # nibabel moves scl_slope from the header to here
    if slope is not None and np.isfinite(slope) and slope < 0:
        return [f"its header's scl_slope is {slope:g}, which inverts the stored intensities"]
    return []


def signature(volume: np.ndarray) -> np.ndarray:
    """A regular subsample of a model input (float64), at most `SIGNATURE_SIZE` voxels."""
    flat = np.asarray(volume, dtype=np.float64).ravel()
    step = max(1, flat.size // SIGNATURE_SIZE)
    return flat[::step][:SIGNATURE_SIZE]


def check_intensities(
    inputs: Sequence[np.ndarray],
    subjects: Sequence[str],
    lines: Sequence[int],
    digests: Sequence[str] | None = None,
) -> list[ImageWarning]:
    """Warnings for the inputs (one per subject row, all of one shape) that do not look like the cohort's T1s.

    ``digests`` (the files' sha256) leave out copies with identical bytes: those are already an error.
    """
    if not inputs:
        return []
    signatures = np.stack([signature(v) for v in inputs])
    warnings = [w for i, s in enumerate(signatures) if (w := _mask(i, s)) is not None]
    if len(inputs) >= 3:
        warnings += _contrast(signatures)
    warnings += _copies(signatures, list(subjects), list(lines), digests)
    return sorted(warnings, key=lambda w: w.index)


def _mask(index: int, values: np.ndarray) -> ImageWarning | None:
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return None
    _, counts = np.unique(nonzero, return_counts=True)
    share = counts.max() / nonzero.size
    if share <= MASK_SHARE:
        return None
    return ImageWarning(
        index,
        "mask",
        f"{share:.0%} of its brain voxels have one value ({len(counts)} distinct): a mask or label map, not a T1",
    )


def _contrast(signatures: np.ndarray) -> list[ImageWarning]:
    """Each input's correlation with the mean of the others, against the cohort's median and spread."""
    total = signatures.sum(axis=0)
    n = len(signatures)
    correlations = np.array([_correlation(s, (total - s) / (n - 1)) for s in signatures])
    median = float(np.median(correlations))
    spread = max(1.4826 * float(np.median(np.abs(correlations - median))), 0.02)
    out = []
    for i, c in enumerate(correlations):
        z = (c - median) / spread
        if c < 0 or z < CONTRAST_Z:
            out.append(
                ImageWarning(
                    i,
                    "contrast",
                    f"its intensities correlate {c:.2f} with the cohort's mean image, where the cohort's images "
                    f"typically do {median:.2f}: inverted or another contrast (T2, FLAIR), or not a brain scan",
                )
            )
    return out


def _copies(
    signatures: np.ndarray, subjects: list[str], lines: list[int], digests: Sequence[str] | None
) -> list[ImageWarning]:
    centred = signatures - signatures.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    unit = centred / np.where(norms > 0, norms, 1.0)[:, None]
    out = []
    for i in range(len(unit)):
        correlations = unit[i + 1 :] @ unit[i]
        for j in np.flatnonzero(correlations > COPY_CORRELATION) + i + 1:
            if subjects[j] == subjects[i] or (digests is not None and digests[i] == digests[j]):
                continue  # several scans of one subject may be alike; identical files are refused elsewhere
            out.append(
                ImageWarning(
                    int(j),
                    "copy",
                    f"it is the scan of subject {subjects[i]!r} (line {lines[i]}) up to an intensity scaling "
                    f"(correlation {correlations[j - i - 1]:.4f}): the same scan under two subjects leaks between "
                    "training and test partitions",
                )
            )
    return out


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0
