"""Image locators: how a cohort row's image file is found, registered by name.

A locator gets one `ImageRow` (the row's raw cells, its subject id and line, the table's folder and the spec) and
returns a `Located`: the image's path with symbolic links followed, or None with what it looked for. The shipped
ones are ``column`` (``image.column``: a path relative to the table's folder) and ``glob`` (``image.glob``: a
pattern with ``{subject}`` searched under it, as in BIDS); a manifest names another with ``image.locator``.
`locate_images` runs the spec's locator over every row and reports all missing images in one error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hyperfusion.data.tables import lines, present

if TYPE_CHECKING:
    from hyperfusion.data.manifest import ManifestSpec

log = logging.getLogger("hyperfusion")

#: File names a search for images keeps.
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class ImageRow:
    """One table row, as a locator sees it.

    Args:
        cells: the row's raw text cells (NaN where missing), by column name.
        subject: the row's subject id (stripped).
        lines: the row's place for messages, e.g. ``"line 5"``.
        folder: the table's folder (relative image paths start here).
        table_path: the table file.
        spec: the validated manifest spec (``image_column``, ``image_glob``, ...).
    """

    cells: Mapping[str, Any]
    subject: str
    lines: str
    folder: Path
    table_path: Path
    spec: ManifestSpec


@dataclass(frozen=True)
class Located:
    """What a locator found: ``path`` (symbolic links followed), or None and ``wanted`` (what was looked for, and
    the row, for the error listing missing images); ``several``: more than one match, the first taken."""

    path: Path | None
    wanted: str = ""
    several: bool = False


#: A locator: one row in, where its image is out.
ImageLocator = Callable[[ImageRow], Located]

_LOCATORS: dict[str, ImageLocator] = {}


def register_image_locator(name: str, locator: ImageLocator) -> ImageLocator:
    """Register ``locator`` under ``name`` (the manifest's ``image.locator``); a later one replaces it."""
    _LOCATORS[name] = locator
    return locator


def image_locators() -> list[str]:
    """The registered locator names, sorted."""
    return sorted(_LOCATORS)


def locate_images(
    spec: ManifestSpec, table: pd.DataFrame, subjects: pd.Series, table_path: Path
) -> list[str]:
    """Each row's image path (absolute, as text), found by the spec's locator (``ManifestSpec.locator``).

    Raises:
        FileNotFoundError: images that are not found (up to five listed, with their count).
        ValueError: an unknown locator, or a row the locator refuses (e.g. an empty image cell).
    """
    name = spec.locator
    if name not in _LOCATORS:
        raise ValueError(
            f"image.locator: {name!r} is not a registered image locator; choose one of {image_locators()}"
        )
    locator = _LOCATORS[name]
    folder = table_path.parent
    paths: list[str] = []
    absent: list[str] = []
    several = 0
    cells = table.to_dict("index")  # rows by file line − 2 (unique)
    for index, subject in subjects.items():
        found = locator(ImageRow(cells[index], subject, lines([index]), folder, table_path, spec))
        if found.path is None:
            absent.append(found.wanted)
        several += found.several
        paths.append(str(found.path))
    if absent:
        raise FileNotFoundError(
            f"{table_path}: {len(absent)} image file(s) not found: "
            + "; ".join(absent[:5])
            + (" ..." if len(absent) > 5 else "")
        )
    if several:
        log.warning(
            "%s: %d subject(s) have several images matching %r; took the first in sorted order "
            "(e.g. the first session)",
            table_path,
            several,
            spec.image_glob if name == "glob" else name,
        )
    return paths


def resolved(path: Path, where: str) -> Path:
    """``path`` with its symbolic links followed; a link that loops is an error naming ``where`` and the link."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as err:  # Python < 3.13: RuntimeError("Symlink loop ..."); later: OSError
        raise ValueError(
            f"{where}: the image path {path} is a symbolic link that loops back on itself ({err})"
        ) from None


def _column(row: ImageRow) -> Located:
    """``image.column``: a path relative to the table's folder."""
    column = row.spec.image_column
    raw: Any = row.cells[column]
    if not present(raw):
        raise ValueError(f"{row.table_path}: image column {column!r} is empty on {row.lines}")
    path = resolved(row.folder / str(raw).strip(), f"{row.table_path}: {row.lines}")
    return Located(path) if path.is_file() else Located(None, f"{path} ({row.lines})")


def _glob(row: ImageRow) -> Located:
    """``image.glob``: the pattern, ``{subject}`` filled in, searched under the table's folder; first match wins."""
    pattern = row.spec.image_glob.format(subject=row.subject)  # type: ignore[union-attr]
    found = sorted(p for p in row.folder.glob(pattern) if p.name.endswith(NIFTI_SUFFIXES))
    if not found:
        return Located(None, f"{row.folder / pattern} (subject {row.subject!r}, {row.lines})")
    where = f"{row.table_path}: subject {row.subject!r}, {row.lines}"
    return Located(resolved(found[0], where), several=len(found) > 1)


register_image_locator("column", _column)
register_image_locator("glob", _glob)
