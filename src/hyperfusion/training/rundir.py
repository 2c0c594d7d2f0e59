"""The run directory: the only writer of a run's files, its lock, and the fingerprint of the cohort it was made with.

Layout (every file written atomically, readable as the umask allows)::

    config.yaml               the resolved configuration (what a resume is checked against)
    manifest.yaml             the cohort's spec, for ``predict``
    cohort.json               fingerprint of the cohort: a digest per table row and per image content
    partitions_seed<S>.csv    subject → partition (classification) or train/val/test role (regression)
    preprocessing/s<S>_f<F>.json   each fold's tabular preprocessing, fitted on its training rows only
    checkpoints/<method>/<unit>.pt best-validation state_dicts (``torch.load(weights_only=True)``)
    units/<method>/<unit>.json     one record per finished model: history, validation and test predictions
    results.csv, predictions.csv, skill.csv, report.md, *.png   rebuilt from the records by ``report``
    .lock                     held by the one process writing the run

A unit is finished exactly when its record exists and reads back whole; a record that does not (a truncated file)
makes its unit unfinished again, with a warning.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import section_defaults
from hyperfusion.training.plan import Unit
from hyperfusion.yamlio import load_yaml

log = logging.getLogger("hyperfusion")

#: Keys that may change between a run and its resume: they do not change any finished unit's result.
FREE_KEYS = (
    "training.device",
    "training.progress",
    "training.num_workers",
    "protocol.executor",
    "protocol.address",
    "protocol.num_cpus",
    "protocol.num_gpus",
)
#: Keys that may grow (or shrink) a run: only the units they add are trained.
SCOPE_KEYS = ("methods", "reference_method", "protocol.split_seeds", "protocol.versions", "protocol.folds")
RECORD_KEYS = ("unit", "history", "validation", "test")


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked (locked, changed cohort, incompatible configuration)."""


class RunDirectory:
    """Paths and the only writes of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    manifest = property(lambda self: self.root / "manifest.yaml")
    fingerprint_path = property(lambda self: self.root / "cohort.json")
    models_path = property(lambda self: self.root / "models.json")
    results = property(lambda self: self.root / "results.csv")
    predictions = property(lambda self: self.root / "predictions.csv")
    cache = property(lambda self: self.root / "cache")
    lock_path = property(lambda self: self.root / ".lock")

    def partitions(self, split_seed: int) -> Path:
        return self.root / f"partitions_seed{split_seed}.csv"

    def preprocessor(self, split_seed: int, fold: int) -> Path:
        return self.root / "preprocessing" / f"s{split_seed}_f{fold}.json"

    def checkpoint(self, unit: Unit) -> Path:
        return self.root / "checkpoints" / unit.method / f"{unit.key}.pt"

    def record_path(self, unit: Unit) -> Path:
        return self.root / "units" / unit.method / f"{unit.key}.json"

    # --- the directory itself ------------------------------------------------------------------------------

    def create(self) -> None:
        """Make the folder, or fail with one line when ``--out`` is a file or not writable."""
        if self.root.exists() and not self.root.is_dir():
            raise RunDirectoryError(f"--out {self.root} is a file, not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirectoryError(f"cannot create the run directory {self.root}: {err.strerror}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise RunDirectoryError(f"the run directory {self.root} is not writable")

    def is_run(self) -> bool:
        return self.config.is_file()

    def clear(self) -> None:
        """Start over: remove everything a run wrote except the image cache and a simulated cohort."""
        for name in ("units", "checkpoints", "preprocessing", "ensembles"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for path in self.root.glob("partitions_seed*.csv"):
            path.unlink()
        for path in (
            self.config,
            self.manifest,
            self.fingerprint_path,
            self.models_path,
            self.results,
            self.predictions,
        ):
            path.unlink(missing_ok=True)

    # --- one writer at a time ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock; a second process exits at once naming the holder; a dead holder's lock is taken."""
        self.create()
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._lock_holder()
                if holder is not None and _alive(holder):
                    raise RunDirectoryError(
                        f"{self.root} is being written by process {holder.get('pid')} on "
                        f"{holder.get('host')} (since {holder.get('since')}); wait for it to finish, or use "
                        "another --out"
                    ) from None
                log.warning(
                    "taking over the lock of %s left by a process that is no longer running (%s)",
                    self.root,
                    holder or "unreadable lock file",
                )
                self.lock_path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(mine, handle)
            break
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if self._lock_holder() == mine:
                    self.lock_path.unlink()

    def _lock_holder(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(self.lock_path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    # --- configuration -------------------------------------------------------------------------------------

    def saved_config(self) -> dict[str, Any] | None:
        if not self.config.is_file():
            return None
        try:
            saved = load_yaml(self.config.read_text(), str(self.config))
        except yaml.YAMLError as err:
            raise RunDirectoryError(f"{self.config} is corrupt ({err}); start over with --restart") from None
        if not isinstance(saved, dict):
            raise RunDirectoryError(f"{self.config} is corrupt; start over with --restart")
        return saved

    def check_config(self, resolved: Mapping[str, Any]) -> list[str]:
        """Compare with the saved configuration; returns the scope keys that changed (growth), refuses the rest.

        Raises:
            RunDirectoryError: a key that changes finished results differs (named, old and new values).
        """
        saved = self.saved_config()
        if saved is None:
            return []
        old, new = _flatten(saved), _flatten(resolved)
        defaults = section_defaults()
        changed = sorted(
            k
            for k in set(old) | set(new)
            if old.get(k) != new.get(k) and not (k not in old and k in defaults and new.get(k) == defaults[k])
        )
        refused = [k for k in changed if k not in FREE_KEYS and k not in SCOPE_KEYS]
        if refused:
            detail = "; ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in refused[:5])
            raise RunDirectoryError(
                f"{self.root} holds a run whose finished models depend on settings you changed ({detail}); "
                "use another --out, or --restart to start this one over"
            )
        return [k for k in changed if k in SCOPE_KEYS]

    def save_config(self, resolved: Mapping[str, Any], manifest_text: str) -> None:
        write_text_atomic(self.manifest, manifest_text)
        write_text_atomic(self.config, yaml.safe_dump(dict(resolved), sort_keys=False))

    def check_models(self, arguments: Mapping[str, Mapping[str, Any]]) -> None:
        """Refuse a method whose effective model arguments (the package's defaults included) changed since the run
        began — e.g. a new release with another default initial scale — so finished models never mix with new ones.

        Raises:
            RunDirectoryError: naming the method, the argument and both values.
        """
        current = {m: {k: repr(v) for k, v in sorted(a.items())} for m, a in arguments.items()}
        saved: dict[str, Any] = {}
        if self.models_path.is_file():
            try:
                saved = json.loads(self.models_path.read_text())
            except ValueError:
                log.warning("%s was unreadable; it is written again", self.models_path)
        for method, args in current.items():
            old = saved.get(method)
            if old is None or old == args:
                continue
            changed = sorted(k for k in set(old) | set(args) if old.get(k) != args.get(k))
            detail = "; ".join(f"{k}: {old.get(k)} → {args.get(k)}" for k in changed[:4])
            raise RunDirectoryError(
                f"{self.root}: the model {method!r} would now be built differently from its finished models "
                f"({detail}); use another --out, or --restart to start over"
            )
        write_text_atomic(self.models_path, json.dumps({**saved, **current}, indent=1, sort_keys=True))

    # --- the cohort's fingerprint --------------------------------------------------------------------------

    def check_fingerprint(self, fingerprint: Mapping[str, Mapping[str, str]]) -> None:
        """Refuse a cohort that differs from the one the run was made with, naming what changed.

        Raises:
            RunDirectoryError: rows added, removed or changed, or images whose content changed.
        """
        if not self.fingerprint_path.is_file():
            write_text_atomic(self.fingerprint_path, json.dumps(fingerprint, indent=0, sort_keys=True))
            return
        try:
            saved = json.loads(self.fingerprint_path.read_text())
            saved_rows, saved_images = dict(saved["rows"]), dict(saved["images"])
        except (ValueError, KeyError, TypeError):
            log.warning("%s was unreadable; it is written again from this cohort", self.fingerprint_path)
            write_text_atomic(self.fingerprint_path, json.dumps(fingerprint, indent=0, sort_keys=True))
            return
        rows, images = fingerprint["rows"], fingerprint["images"]
        added = sorted(set(rows) - set(saved_rows))
        removed = sorted(set(saved_rows) - set(rows))
        changed = sorted(k for k in set(rows) & set(saved_rows) if rows[k] != saved_rows[k])
        new_images = sorted(k for k in set(images) & set(saved_images) if images[k] != saved_images[k])
        problems = [
            f"{len(items)} {what} ({_examples(items)})"
            for items, what in (
                (added, "row(s) added"),
                (removed, "row(s) removed"),
                (changed, "row(s) changed"),
                (new_images, "image(s) with new content"),
            )
            if items
        ]
        if problems:
            raise RunDirectoryError(
                f"the cohort differs from the one {self.root} was made with: {'; '.join(problems)}. Its finished "
                "models were trained and scored on the old one; use another --out, or --restart to start over"
            )

    # --- partitions, preprocessing, records ----------------------------------------------------------------

    def write_once(self, path: Path, text: str, what: str) -> None:
        """Write a file that must never change within a run; refuse if an existing one differs."""
        if path.is_file():
            if path.read_text() != text:
                raise RunDirectoryError(
                    f"{path} differs from the {what} this run would make now; the run directory was made "
                    "by another version or from another cohort: use another --out, or --restart"
                )
            return
        write_text_atomic(path, text)

    def write_record(self, unit: Unit, record: Mapping[str, Any]) -> None:
        write_text_atomic(self.record_path(unit), json.dumps(record, indent=1))

    def read_record(self, unit: Unit) -> dict[str, Any] | None:
        """The unit's record, or None when it is unfinished (a corrupt record counts as unfinished, with a warning)."""
        path = self.record_path(unit)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or any(k not in record for k in RECORD_KEYS):
                raise ValueError("fields missing")
        except (ValueError, OSError) as err:
            log.warning(
                "the record %s is corrupt (%s); that model counts as unfinished and is trained again",
                path,
                err,
            )
            quarantine = path.with_suffix(".json.corrupt")
            with contextlib.suppress(OSError):
                os.replace(path, quarantine)
            return None
        return record

    def is_finished(self, unit: Unit) -> bool:
        return self.read_record(unit) is not None


def fingerprint_cohort(frame: pd.DataFrame, image_digest) -> dict[str, dict[str, str]]:
    """A digest per table row (its values as read, file line and image path left out) and per image content.

    Rows are keyed by subject id (``id#k`` for the k-th row of a subject with several); ``image_digest`` maps an
    image path to the sha256 of its bytes (the image cache's).
    """
    values = frame.drop(columns=[c for c in ("line", "image") if c in frame.columns])
    counts: dict[str, int] = {}
    rows, images = {}, {}
    for (_, row), image in zip(values.iterrows(), frame["image"]):
        subject = str(row["subject_id"])
        k = counts.get(subject, 0)
        counts[subject] = k + 1
        key = subject if k == 0 else f"{subject}#{k}"
        text = json.dumps({c: _plain(v) for c, v in row.items()}, sort_keys=True, default=str)
        rows[key] = hashlib.sha256(text.encode()).hexdigest()[:16]
        images[key] = image_digest(image)
    return {"rows": rows, "images": images}


def resolved_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Flattened keys whose values differ between two resolved configurations."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def nearest(key: str, valid: Sequence[str]) -> str:
    """' (did you mean X?)' for the closest valid key, or ''."""
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in ("model", "model_overrides", "simulate"):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _examples(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (", ..." if len(items) > n else "")


def _alive(holder: Mapping[str, Any]) -> bool:
    """Whether the lock's holder still runs (only decidable on this host; another host's lock is respected)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True
    return True
