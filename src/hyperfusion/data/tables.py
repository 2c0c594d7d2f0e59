"""A cohort table's bytes → text cells, each row indexed by its true line in the file.

The table is parsed here rather than by pandas because pandas hides what a person needs to fix a file: it renames
a second column of the same name to ``AGE.1`` (and the first is then used silently), numbers rows without regard
to quoted newlines (so an error names the wrong line), and fails deep inside on a row with one field too many.
Here every such table is refused with one line naming the file, the line and the column or value, before any
value is used:

* text that is not UTF-8 is decoded as the manifest's ``encoding``, as UTF-16 when it starts with a UTF-16
  byte-order mark, and otherwise as latin-1 with a warning; a table with NUL bytes (UTF-16 without a
  byte-order mark, a spreadsheet file) is refused, since no text table holds them;
* a header that names one column twice (after stripping spaces) is refused, naming the column and positions;
* a row with a non-empty field beyond the header's last column is refused (trailing empty fields, as some
  spreadsheets write them, are ignored); a row with fewer fields reads the missing ones as missing;
* rows keep the line they start on, so a value after a quoted newline is reported at its own line.

Readers are a seam: `register_table_reader` names a reader and the file suffixes it takes, and the manifest's
``table_reader`` key (or else the table's suffix) chooses one. The shipped ``csv`` and ``tsv`` readers are
registered through it like any other; a new cohort format is one module that registers its reader (see
CONTRIBUTING.md ("How to add a cohort format")).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hyperfusion.text import shown

log = logging.getLogger("hyperfusion")

#: Read when a table is not UTF-8 (and the manifest names no ``encoding``); every byte decodes, with a warning.
FALLBACK_ENCODING = "latin-1"
_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

#: A table reader: ``(path, na_values, encoding) -> frame`` of text cells (object dtype, NaN where missing),
#: indexed by the row's line in the file − 2 (so messages name the file's lines), column names stripped.
TableReader = Callable[[Path, Sequence[str], str | None], pd.DataFrame]

_READERS: dict[str, TableReader] = {}
_SUFFIXES: dict[str, str] = {}  # ".tsv" -> reader name
#: The reader of a table whose suffix no reader claims (any text table is read as comma-separated, as always).
DEFAULT_READER = "csv"


def register_table_reader(name: str, reader: TableReader, suffixes: Sequence[str] = ()) -> TableReader:
    """Register ``reader`` under ``name`` (the manifest's ``table_reader``) and for the file ``suffixes``.

    A later registration of the same name or suffix replaces the earlier one. Returns ``reader``.
    """
    _READERS[name] = reader
    for suffix in suffixes:
        _SUFFIXES[suffix.lower()] = name
    return reader


def table_readers() -> list[str]:
    """The registered reader names, sorted."""
    return sorted(_READERS)


def read_table(
    path: Path, na_values: Sequence[str], encoding: str | None = None, *, reader: str | None = None
) -> pd.DataFrame:
    """The table read by the reader named ``reader`` (None: the one registered for its suffix, else ``csv``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown reader name, or whatever the reader refuses (naming the file and line).
    """
    if not path.is_file():
        raise FileNotFoundError(f"cohort table {path} does not exist")
    name = reader if reader is not None else _SUFFIXES.get(path.suffix.lower(), DEFAULT_READER)
    if name not in _READERS:
        raise ValueError(
            f"table_reader: {name!r} is not a registered table reader; choose one of {table_readers()}"
        )
    return _READERS[name](path, na_values, encoding)


def present(value: Any) -> bool:
    """Whether a cell holds a value (not None, NA or NaN)."""
    return not (value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)))


def lines(index: Sequence[Any] | pd.Index) -> str:
    """``"line 5"`` or ``"lines 5, 9"`` (at most ten) for rows indexed by file line − 2."""
    numbers = [int(i) + 2 for i in list(index)]
    listed = ", ".join(str(n) for n in numbers[:10]) + (" ..." if len(numbers) > 10 else "")
    return f"line{'s' if len(numbers) > 1 else ''} {listed}"


def read_delimited(path: Path, na_values: Sequence[str], encoding: str | None, sep: str) -> pd.DataFrame:
    """A ``sep``-separated text table as text cells (NaN where a cell is one of ``na_values`` or absent),
    indexed by file line − 2.

    Blank lines are left out of the rows but not of the line count; column names are stripped of spaces.

    Raises:
        ValueError: text that does not decode, NUL bytes, no header or no rows, a column named twice, a field
            beyond the header's columns, a quote left open — each naming the file and line.
    """
    text = decode_table(path, encoding)
    records = _records(text, sep, path)
    if not records:
        raise ValueError(f"cohort table {path} is empty: no header line")
    header_line, header = records[0]
    columns = _columns(header, header_line, path)
    missing = set(na_values)
    lines, rows = [], []
    for line, cells in records[1:]:
        extra = [c for c in cells[len(columns) :] if c.strip()]
        if extra:
            raise ValueError(
                f"{path}, line {line}: {len(cells)} fields but the header (line {header_line}) names "
                f"{len(columns)} columns; the field {shown(extra[0])} lies beyond the last column "
                f"{columns[-1]!r} (quote values that contain {sep!r})"
            )
        cells = cells[: len(columns)] + [""] * (len(columns) - len(cells))
        lines.append(line)
        rows.append([np.nan if c in missing else c for c in cells])
    if not rows:
        raise ValueError(f"cohort table {path} has no rows")
    table = pd.DataFrame(rows, columns=columns, index=pd.Index(np.asarray(lines) - 2), dtype=object)
    return table


def _csv(path: Path, na_values: Sequence[str], encoding: str | None) -> pd.DataFrame:
    return read_delimited(path, na_values, encoding, ",")


def _tsv(path: Path, na_values: Sequence[str], encoding: str | None) -> pd.DataFrame:
    return read_delimited(path, na_values, encoding, "\t")


register_table_reader("csv", _csv, (".csv",))
register_table_reader("tsv", _tsv, (".tsv", ".tab"))


def decode_table(path: Path, encoding: str | None) -> str:
    """The file's text: in ``encoding`` if given (strictly), else UTF-8 or UTF-16 by its byte-order mark, else
    latin-1 with a warning. NUL bytes are refused unless the text is UTF-16 or ``encoding`` names a wide one.

    Raises:
        ValueError: text that does not decode in the declared encoding, or NUL bytes in a narrow encoding.
    """
    raw = path.read_bytes()
    if encoding is None and raw.startswith(_UTF16_MARKS):
        encoding = "utf-16"
    utf8 = encoding is None or codecs.lookup(encoding).name == "utf-8"  # then drop a leading byte-order mark
    wide = not utf8 and codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))  # type: ignore[arg-type]
    if b"\x00" in raw and not wide:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise ValueError(
            f"cohort table {path} is not a text table: line {line} holds NUL bytes (UTF-16 without a byte-order "
            "mark, or a spreadsheet file?); save it as a UTF-8 CSV, or name its encoding in the manifest "
            "(encoding: utf-16-le)"
        )
    try:
        return raw.decode("utf-8-sig" if utf8 else encoding).lstrip("\ufeff")  # type: ignore[arg-type]
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        where = f"line {line} has byte 0x{raw[err.start]:02x}"
        if encoding is not None:
            raise ValueError(
                f"cohort table {path} is not valid {encoding} text ({where}); fix the file or the "
                "manifest's 'encoding'"
            ) from None
    log.warning(
        "%s: not UTF-8 text (%s); read as %s. Save it as UTF-8, or name its encoding in the manifest "
        "(encoding: cp1252, ...) to silence this",
        path,
        where,
        FALLBACK_ENCODING,
    )
    return raw.decode(FALLBACK_ENCODING)


def _records(text: str, sep: str, path: Path) -> list[tuple[int, list[str]]]:
    """Every non-blank record with the file line it starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    records = []
    start = 1
    limit = csv.field_size_limit(len(text) + 1)  # any cell of the file, however long (the default is 128 KiB)
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as err:
        raise ValueError(f"cannot read cohort table {path}: line {start}: {err}") from None
    finally:
        csv.field_size_limit(limit)
    return records


def _columns(header: list[str], line: int, path: Path) -> list[str]:
    """The header's names, stripped; an empty one is ``Unnamed: <position>``; a name twice is refused."""
    names = [h.strip() or f"Unnamed: {i}" for i, h in enumerate(header)]
    seen: dict[str, int] = {}
    for position, name in enumerate(names, 1):
        if name in seen:
            raise ValueError(
                f"{path}, line {line}: the header names column {shown(name)} twice (columns {seen[name]} and "
                f"{position}); rename one, or the wrong one may be used"
            )
        seen[name] = position
    return names
