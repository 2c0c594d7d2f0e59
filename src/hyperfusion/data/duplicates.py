"""One scan under two subjects: the same image can land in a training and a test partition (leakage).

Two checks, both skipped when the manifest sets ``allow_duplicate_images: true``:

* at load, the same image *path* on rows of different subjects (free: no file is read);
* `check_duplicate_images`, once per run, the same image *content* (sha256 of the file's bytes, the digest the
  image cache keys on, so a cache that will preprocess the files anyway computes it only once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from hyperfusion.data.cache import ImageCache, file_digest

if TYPE_CHECKING:
    from hyperfusion.data.manifest import Cohort

_ADVICE = (
    "the same scan under two subjects leaks between training and test partitions; fix the table, or set "
    "allow_duplicate_images: true in the manifest if the duplicates are intended"
)


def check_duplicate_paths(frame: pd.DataFrame, *, source: str) -> None:
    """Fail when one image path is used by rows of different subjects (frame columns image, subject_id, line).

    Raises:
        ValueError: naming the file, the image, and two of its subjects with their lines.
    """
    _fail_on_shared(frame, frame["image"].astype(str), what="image file", source=source)


def check_duplicate_images(cohort: Cohort, cache: ImageCache | None = None) -> None:
    """Fail when two subjects' images have identical content (a copied file under another name included).

    ``cache``: the run's `ImageCache`, whose memo of file digests then serves its own lookups too; without
    it every file is hashed here. Does nothing when the manifest sets ``allow_duplicate_images: true``.

    Raises:
        ValueError: naming the table file, both subjects, their lines and images.
        FileNotFoundError: an image file that has disappeared since the cohort was loaded.
    """
    if cohort.spec.allow_duplicate_images:
        return
    digest = cache.digest if cache is not None else file_digest
    frame = cohort.frame
    memo: dict[str, str] = {}
    digests = [memo.setdefault(path, digest(path)) for path in frame["image"].astype(str)]
    _fail_on_shared(
        frame, pd.Series(digests, index=frame.index), what="image content", source=str(cohort.table_path)
    )


def _fail_on_shared(frame: pd.DataFrame, keys: pd.Series, *, what: str, source: str) -> None:
    subjects = frame["subject_id"].astype(str)
    per_key = subjects.groupby(keys.to_numpy(), sort=False).nunique()
    shared = per_key.index[per_key > 1]
    if len(shared) == 0:
        return
    rows = frame.index[keys.isin(shared).to_numpy()]
    first = keys[rows[0]]
    a = rows[0]
    b = next(r for r in rows if keys[r] == first and subjects[r] != subjects[a])
    raise ValueError(
        f"{source}: subjects {subjects[a]!r} (line {_line(frame, a)}) and {subjects[b]!r} "
        f"(line {_line(frame, b)}) have the same {what} ({_names(frame, [a, b])}); {len(shared)} "
        f"{what}(s) are shared by several subjects ({len(rows)} rows); {_ADVICE}"
    )


def _line(frame: pd.DataFrame, row) -> int:
    return int(frame.at[row, "line"])


def _names(frame: pd.DataFrame, rows: Sequence) -> str:
    paths = list(dict.fromkeys(str(frame.at[r, "image"]) for r in rows))
    return " and ".join(paths)
