"""On-disk cache of preprocessed images, keyed by file content and `ImageSpec`, read back as memory maps.

Decompressing and resampling a NIfTI takes 0.1–1 s, while a training step wants thousands of crops per
second. Each preprocessed array is stored once as ``<key>.npy`` with

    key = sha256(sha256(file bytes) ‖ ImageSpec fields ‖ FORMAT_VERSION)

so an edited file or a changed spec never reuses a stale array, and a renamed or copied file still hits.
Writes are atomic; concurrent writers of one key race harmlessly (same bytes, last rename wins).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hyperfusion.atomic import save_npy_atomic
from hyperfusion.data.batches import load_npy
from hyperfusion.data.images import ImageSpec, preprocess_image

log = logging.getLogger("hyperfusion")

#: Bump when `preprocess_image`'s output changes for the same inputs, so old caches are not reused.
FORMAT_VERSION = 1
_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _readable(path: Path, spec: ImageSpec) -> bool:
    """Whether a cached array opens and has the spec's shape (a truncated file fails to map)."""
    try:
        array = load_npy(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return False
    return tuple(array.shape) == tuple(spec.output_shape)


def cache_key(content_digest: str, spec: ImageSpec) -> str:
    """The cache key of one file content under one spec."""
    payload = json.dumps(
        {"file": content_digest, "spec": spec.to_dict(), "v": FORMAT_VERSION}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ImageCache:
    """A folder of preprocessed images.

    Args:
        root: cache folder (created when needed).

    Example:
        >>> cache = ImageCache("/tmp/hf-cache")                      # doctest: +SKIP
        >>> array = cache.get("sub-01_T1w.nii.gz", ImageSpec.whole_brain())  # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._digests: dict[tuple[str, int, int], str] = {}

    def path_for(self, image_path: str | Path, spec: ImageSpec) -> Path:
        """Where the preprocessed array of ``image_path`` under ``spec`` lives (existing or not)."""
        key = cache_key(self.digest(image_path), spec)
        return self.root / key[:2] / f"{key}.npy"

    def ensure(self, image_path: str | Path, spec: ImageSpec) -> Path:
        """Preprocess ``image_path`` unless cached; returns the ``.npy`` path.

        Raises:
            FileNotFoundError, ValueError: as `preprocess_image`, naming the image file.
        """
        target = self.path_for(image_path, spec)
        if target.is_file() and not _readable(target, spec):
            log.warning(
                "the cache file %s of %s is unreadable or truncated; it is rebuilt", target, image_path
            )
            target.unlink(missing_ok=True)
        if not target.is_file():
            save_npy_atomic(target, preprocess_image(image_path, spec))
        return target

    def ensure_all(self, image_paths: Iterable[str | Path], spec: ImageSpec) -> list[Path]:
        """`ensure` for each path, in order."""
        return [self.ensure(path, spec) for path in image_paths]

    def get(self, image_path: str | Path, spec: ImageSpec) -> np.ndarray:
        """The preprocessed array as a read-only memory map (computed and stored on a miss)."""
        return load_npy(self.ensure(image_path, spec), mmap_mode="r")

    def digest(self, path: str | Path) -> str:
        """sha256 of the file's bytes, computed once per file version (path, mtime, size) for this cache.

        Raises:
            FileNotFoundError: no such file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"image file {path} does not exist")
        stat = path.stat()
        memo = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if memo not in self._digests:
            self._digests[memo] = file_digest(path)
        return self._digests[memo]
