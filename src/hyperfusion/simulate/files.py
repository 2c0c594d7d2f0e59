"""Deterministic NIfTI bytes: the same content gives the same bytes (gzip without a timestamp)."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np


def nifti_gz_bytes(image: np.ndarray, affine: np.ndarray) -> bytes:
    """A float32 NIfTI-1 image (qform and sform = ``affine``, scanner/MNI code) as deterministic .nii.gz bytes."""
    img = nib.Nifti1Image(np.asarray(image, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=4)  # 4 = MNI152
    img.set_sform(affine, code=4)
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
