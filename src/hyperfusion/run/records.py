"""Sealed JSON records: every file a run reads back says what it is, what it belongs to, and proves it is whole.

A run directory is read back by resumes, ``report``, ``predict`` and ``explain``. A file there can be truncated
(a crash mid-write by another tool, a full disk), swapped with another (two methods' records moved by hand),
copied from another run, or edited. Each of these once gave a silently wrong result: a truncated fingerprint
was rewritten from the changed cohort, a swapped record credited one method with another's scores. So every
record is written with a *seal*::

    {...the record's fields..., "seal": {"kind": "unit record", "of": {"method": ..., "split_seed": ...},
                                         "format": 1, "sha256": <digest of the fields>}}

and read only through `verified_json`, which fails closed, naming the file: unreadable or truncated, no seal
(written by hand or by an older version), a record of another kind or of another unit, or contents that no
longer match their digest. Nothing is ever "rewritten and carried on".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hyperfusion.atomic import write_text_atomic

#: Bump when a sealed record's fields change meaning.
FORMAT = 1
SEAL = "seal"


class RecordError(ValueError):
    """A record that cannot be trusted: unreadable, unsealed, of another kind or owner, or changed."""


class TruncatedRecord(RecordError):
    """A record that is not complete JSON (a crash mid-write, a full disk): the one failure that may be retried."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is truncated or not JSON ({reason})")
        self.reason = reason


def digest(fields: Mapping[str, Any]) -> str:
    """sha256 of a record's fields in canonical JSON (sorted keys), as they read back from the file."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def sealed(kind: str, of: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` (as plain JSON data) with their seal: the kind, the owner, the format and the digest."""
    plain = json.loads(json.dumps(dict(fields), allow_nan=True))
    if SEAL in plain:
        raise ValueError(f"a record's own fields may not be named {SEAL!r}")
    owner = json.loads(json.dumps(dict(of)))
    return {**plain, SEAL: {"kind": kind, "of": owner, "format": FORMAT, "sha256": digest(plain)}}


def write_sealed(
    path: Path, kind: str, of: Mapping[str, Any], fields: Mapping[str, Any], *, indent: int = 1
) -> Path:
    """Write ``fields`` sealed as a ``kind`` record of ``of`` to ``path``, atomically."""
    return write_text_atomic(path, json.dumps(sealed(kind, of, fields), indent=indent, sort_keys=True))


def verified_json(path: Path, kind: str, of: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of the sealed ``kind`` record at ``path``, proven to belong to ``of`` and to be unchanged.

    Raises:
        FileNotFoundError: no such file.
        TruncatedRecord: the file is not complete JSON.
        RecordError: no seal, another kind, another owner, another format, or fields that do not match the digest.
    """
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise TruncatedRecord(path, "corrupt bytes") from None
    try:
        record = json.loads(text)
    except ValueError as err:
        raise TruncatedRecord(path, str(err)) from None
    seal = record.get(SEAL) if isinstance(record, dict) else None
    if not isinstance(seal, dict):
        raise RecordError(
            f"{path} has no seal: it was written by hand or by an older version of hyperfusion, so nothing "
            "proves what it belongs to; start this run directory over with --restart"
        )
    fields = {k: v for k, v in record.items() if k != SEAL}
    if seal.get("kind") != kind:
        raise RecordError(
            f"{path} is a {seal.get('kind')!r} record, not a {kind!r} (a file copied or renamed?)"
        )
    expected = json.loads(json.dumps(dict(of)))
    if seal.get("of") != expected:
        raise RecordError(
            f"{path} holds the {kind} of {_owner(seal.get('of'))}, not of {_owner(expected)} (files swapped or "
            "copied from another run?); move it back, or delete it and rerun to make it again"
        )
    if seal.get("format") != FORMAT:
        raise RecordError(
            f"{path} has record format {seal.get('format')!r}; this version reads format {FORMAT}"
        )
    if seal.get("sha256") != digest(fields):
        raise RecordError(
            f"{path} was changed after it was written (its contents no longer match their digest); delete it "
            "and rerun to make it again, or start over with --restart"
        )
    return fields


_ORDER = ("method", "split_seed", "version", "fold")


def _owner(of: Any) -> str:
    """``method ad-film, split seed 0, version 1, fold 2`` (or ``this run`` for a run-level record)."""
    if not isinstance(of, dict) or not of:
        return "this run" if of == {} else repr(of)
    keys = sorted(of, key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k))
    return ", ".join(f"{k.replace('_', ' ')} {of[k]}" for k in keys)
