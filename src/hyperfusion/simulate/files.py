"""Deterministic NIfTI bytes: the same content gives the same bytes (gzip without a timestamp)."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np


def nifti_gz_bytes(image: np.ndarray, affine: np.ndarray, compresslevel: int = 1) -> bytes:
    """A float32 NIfTI-1 image (qform and sform = ``affine``, scanner/MNI code) as deterministic .nii.gz bytes.

    Level 1 by default: a noisy float32 image barely compresses (level 6 saves 1.5 % more), and at 1 mm level 6
    costs 0.22 s per subject here against 0.15 s.
    """
    img = nib.Nifti1Image(np.asarray(image, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=4)  # 4 = MNI152
    img.set_sform(affine, code=4)
    return gzip.compress(img.to_bytes(), compresslevel=compresslevel, mtime=0)
