"""The run directory: the only writer of a run's files, its lock, and the fingerprint of the cohort it was made with.

Layout (every file written atomically, readable as the umask allows)::

    config.yaml               the resolved configuration (what a resume is checked against)
    manifest.yaml             the cohort's spec, for ``predict``
    plugins.json              each plugin file the run executed: its absolute path and sha256
    models.json               every method's effective model arguments (the package's defaults included)
    cohort.json               fingerprint of the cohort: a digest per table row and per image content
    partitions_seed<S>.csv    subject → partition (classification) or train/val/test role (regression)
    preprocessing/s<S>_f<F>.json   each fold's tabular preprocessing, fitted on its training rows only
    checkpoints/<method>/<unit>.pt best-validation state_dicts (``torch.load(weights_only=True)``)
    checkpoints/<method>/<unit>.build.json   the exact arguments its model was built with (``load_model``)
    logs/<method>/<unit>/          training curves (``training.logger``): csv — metrics.csv, hparams.yaml;
                                   tensorboard — event files, hparams.yaml; not records
    logs/mlflow.db, logs/mlflow-artifacts/   ``training.logger: mlflow`` with no tracking_uri: MLflow's own store
    units/<method>/<unit>.json     one record per finished model: history, validation and test predictions, and
                                   the sha256 of its checkpoint, partitions and preprocessing files
    results.csv, predictions.csv, skill.csv, report.md, *.png   rebuilt from the records by ``report``
    .lock                     held by the one process writing the run (`hyperfusion.run.lock`)

Everything read back (plugins, models, cohort fingerprint, unit records) is a sealed record
(`hyperfusion.run.records`): it names what it belongs to and carries a digest of itself, and reads fail
closed, naming the file; the checkpoint, partitions and preprocessing files are proven by the records that name
their digests. A unit is finished exactly when its record reads back whole and belongs to it, and its
checkpoint is there with the recorded size; a truncated record (a crash mid-write) or a missing checkpoint makes
the unit unfinished again, with a warning; a record of another unit, or one edited since, is an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hyperfusion.atomic import ownership, remove_temporaries, write_text_atomic
from hyperfusion.config import section_defaults
from hyperfusion.data.cache import file_digest
from hyperfusion.run.lock import LockError, hold
from hyperfusion.run.plan import Unit
from hyperfusion.run.records import RecordError, TruncatedRecord, verified_json, write_sealed
from hyperfusion.yamlio import load_yaml

log = logging.getLogger("hyperfusion")

#: Model arguments sized by the cohort (``setup.SIZED_BY_COHORT``): each unit's build record holds its own.
SIZED_BY_COHORT = ("n_tabular", "n_classes", "input_shape")
#: Keys that may change between a run and its resume: they do not change any finished unit's result.
FREE_KEYS = (
    "training.device",
    "training.progress",
    "training.num_workers",
    "training.logger",
    "training.tracking_uri",
    "training.experiment",
    "protocol.executor",
    "protocol.address",
    "protocol.num_cpus",
    "protocol.num_gpus",
)
#: Keys that may grow (or shrink) a run: only the units they add are trained.
SCOPE_KEYS = ("methods", "reference_method", "protocol.split_seeds", "protocol.versions", "protocol.folds")
RECORD_KEYS = ("unit", "history", "validation", "test")
#: The folders of a run's own files (the image cache and a simulated cohort are not among them).
OWN_FOLDERS = ("units", "checkpoints", "preprocessing", "ensembles", "logs")


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
    plugins_path = property(lambda self: self.root / "plugins.json")
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

    def build_path(self, unit: Unit) -> Path:
        return self.root / "checkpoints" / unit.method / f"{unit.key}.build.json"

    def log_dir(self, unit: Unit) -> Path:
        """Where the unit's training curves go (``training.logger``): data the run made, never read back by it."""
        return self.root / "logs" / unit.method / unit.key

    tracking_store = property(
        lambda self: self.root / "logs" / "mlflow.db"
    )  # written by MLflow, never read back

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
            raise RunDirectoryError(f"the run directory {self.root} is not writable: {ownership(self.root)}")

    def is_run(self) -> bool:
        return self.config.is_file()

    def clear(self) -> None:
        """Start over: remove everything a run wrote except the image cache and a simulated cohort."""
        for name in OWN_FOLDERS:
            shutil.rmtree(self.root / name, ignore_errors=True)
        for path in self.root.glob("partitions_seed*.csv"):
            path.unlink()
        for path in (
            self.config,
            self.manifest,
            self.fingerprint_path,
            self.models_path,
            self.plugins_path,
            self.results,
            self.predictions,
        ):
            path.unlink(missing_ok=True)

    # --- one writer at a time ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock (taken atomically; a dead holder's only when proven dead, see `lock.hold`).

        While it is held nobody else writes the run's own files, so temporary files found there now were left by
        a writer killed mid-write (``kill -9`` during ``report``) and are removed.

        Raises:
            RunDirectoryError: another live process holds it (named), or its holder cannot be proven gone.
        """
        self.create()
        try:
            with hold(self.lock_path, str(self.root)):
                remove_temporaries([self.root], recursive=False)
                remove_temporaries([self.root / name for name in OWN_FOLDERS])
                yield
        except LockError as err:
            raise RunDirectoryError(str(err)) from None

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

    def save_config(
        self,
        resolved: Mapping[str, Any],
        manifest_text: str,
        plugins: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Write the resolved configuration, the cohort's spec, and the plugin files the run executes."""
        write_text_atomic(self.manifest, manifest_text)
        write_text_atomic(self.config, yaml.safe_dump(dict(resolved), sort_keys=False))
        write_sealed(self.plugins_path, "plugin files", {}, {"plugins": dict(plugins or {})})

    def recorded_plugins(self) -> dict[str, dict[str, str]] | None:
        """The plugin files the run executed (entry → path and sha256), or None when it recorded none.

        Raises:
            RunDirectoryError: plugins.json truncated, unsealed, of another kind, or edited.
        """
        if not self.plugins_path.is_file():
            self._absent_since_made(self.plugins_path)
            return None
        return dict(self._verified(self.plugins_path, "plugin files", {})["plugins"])

    def check_plugins(self, plugins: Mapping[str, Mapping[str, str]]) -> None:
        """Refuse a resume whose plugin files differ from those the finished models were built with.

        Raises:
            RunDirectoryError: naming the plugin, and its old and new path or content.
        """
        recorded = self.recorded_plugins()
        if recorded is None or not self.config.is_file():
            return
        changed = sorted(k for k in set(recorded) & set(plugins) if recorded[k] != dict(plugins[k]))
        if changed:
            name = changed[0]
            raise RunDirectoryError(
                f"{self.root}: the plugin {name!r} is not the code its finished models were built with (then "
                f"{recorded[name]['path']} with sha256 {recorded[name]['sha256'][:12]}…, now "
                f"{plugins[name]['path']} with {plugins[name]['sha256'][:12]}…); use another --out, or --restart"
            )

    def check_models(self, arguments: Mapping[str, Mapping[str, Any]]) -> None:
        """Refuse a method whose effective model arguments (the package's defaults included) changed since the run
        began — e.g. a new release with another default initial scale — so finished models never mix with new ones.

        Raises:
            RunDirectoryError: naming the method, the argument and both values.
        """
        current = {m: {k: repr(v) for k, v in sorted(a.items())} for m, a in arguments.items()}
        saved: dict[str, Any] = {}
        if self.models_path.is_file():
            saved = self._verified(self.models_path, "model arguments", {})["methods"]
            # runs made before build records listed the cohort-sized arguments at their (unused) defaults
            saved = {m: {k: v for k, v in a.items() if k not in SIZED_BY_COHORT} for m, a in saved.items()}
        else:
            self._absent_since_made(self.models_path)
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
        write_sealed(self.models_path, "model arguments", {}, {"methods": {**saved, **current}})

    # --- the cohort's fingerprint --------------------------------------------------------------------------

    def check_fingerprint(self, fingerprint: Mapping[str, Mapping[str, str]], *, write: bool = True) -> None:
        """Refuse a cohort that differs from the one the run was made with, naming what changed.

        The first call of a run writes the fingerprint (unless ``write`` is off: ``report`` only reads). A
        fingerprint without ``images`` compares the table's rows only (what ``report`` reads).

        Raises:
            RunDirectoryError: rows added, removed or changed, or images whose content changed; a cohort.json
                that is truncated, unsealed or edited (it is never rewritten from the cohort at hand); no
                cohort.json where ``write`` is off.
        """
        if not self.fingerprint_path.is_file():
            self._absent_since_made(self.fingerprint_path)
            if not write:
                raise RunDirectoryError(
                    f"{self.fingerprint_path} does not exist: nothing proves which cohort {self.root} was made "
                    "with; rerun `hyperfusion run` on it to finish it"
                )
            write_sealed(self.fingerprint_path, "cohort fingerprint", {}, fingerprint, indent=0)
            return
        saved = self.cohort_fingerprint()
        saved_rows, saved_images = dict(saved["rows"]), dict(saved["images"])
        rows, images = fingerprint["rows"], fingerprint.get("images", {})
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

    def cohort_fingerprint(self) -> dict[str, Any]:
        """The cohort fingerprint the run was made with (``rows`` and ``images``: subject key → digest).

        Raises:
            RunDirectoryError: cohort.json truncated, unsealed or edited.
        """
        return self._verified(self.fingerprint_path, "cohort fingerprint", {})

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
        """Seal the unit's record, with the sha256 and size of its checkpoint (written before the record) and the
        sha256 of the partitions file it was trained on."""
        checkpoint = self.checkpoint(unit)
        vouched = None
        if checkpoint.is_file():
            vouched = {"sha256": file_digest(checkpoint), "bytes": checkpoint.stat().st_size}
        partitions, preprocessing = (
            self.partitions(unit.split_seed),
            self.preprocessor(unit.split_seed, unit.fold),
        )
        fields = {
            **record,
            "checkpoint": vouched,
            "partitions_sha256": file_digest(partitions) if partitions.is_file() else None,
            "preprocessing_sha256": file_digest(preprocessing) if preprocessing.is_file() else None,
        }
        write_sealed(self.record_path(unit), "unit record", dataclasses.asdict(unit), fields)

    def write_build(self, unit: Unit, build: Mapping[str, Any]) -> None:
        """Seal how the unit's model was built (``setup.build_arguments``) beside its checkpoint, with the
        checkpoint's sha256, so the model can be rebuilt without the configuration that made it."""
        checkpoint = self.checkpoint(unit)
        fields = {**build, "checkpoint_sha256": file_digest(checkpoint)}
        write_sealed(self.build_path(unit), "model build arguments", dataclasses.asdict(unit), fields)

    def read_build(self, unit: Unit) -> dict[str, Any] | None:
        """The unit's build arguments, proven to be its own and to match its verified checkpoint; None when the
        run predates them.

        Raises:
            RunDirectoryError: a build record of another unit, edited, or written for another checkpoint.
        """
        path = self.build_path(unit)
        if not path.is_file():
            return None
        checkpoint = self.verified_checkpoint(unit)
        try:
            build = verified_json(path, "model build arguments", dataclasses.asdict(unit))
        except RecordError as err:
            raise RunDirectoryError(str(err)) from None
        if build.get("checkpoint_sha256") != file_digest(checkpoint):
            raise RunDirectoryError(
                f"{path} describes another checkpoint than {checkpoint} (replaced or swapped?); delete both to "
                "train the model again"
            )
        return build

    def read_record(self, unit: Unit) -> dict[str, Any] | None:
        """The unit's record, or None when it is unfinished (a truncated record counts as unfinished, with a warning).

        Raises:
            RunDirectoryError: a record of another unit (swapped or copied), unsealed, or edited since written.
        """
        path = self.record_path(unit)
        if not path.is_file():
            return None
        try:
            record = verified_json(path, "unit record", dataclasses.asdict(unit))
            if any(k not in record for k in RECORD_KEYS):
                raise TruncatedRecord(path, f"fields missing: {[k for k in RECORD_KEYS if k not in record]}")
        except TruncatedRecord as err:
            log.warning(
                "the record %s is corrupt (%s); that model counts as unfinished and is trained again",
                path,
                err.reason,
            )
            quarantine = path.with_suffix(".json.corrupt")
            with contextlib.suppress(OSError):
                os.replace(path, quarantine)
            return None
        except RecordError as err:
            raise RunDirectoryError(str(err)) from None
        return record

    def is_finished(self, unit: Unit) -> bool:
        """A whole record of this unit, and the checkpoint it vouches for present at its recorded size."""
        record = self.read_record(unit)
        if record is None:
            return False
        vouched = record.get("checkpoint")
        checkpoint = self.checkpoint(unit)
        if vouched is not None and not (
            checkpoint.is_file() and checkpoint.stat().st_size == vouched["bytes"]
        ):
            what = "is missing" if not checkpoint.is_file() else "has another size than recorded"
            log.warning(
                "the checkpoint %s of a finished model %s; that model is trained again", checkpoint, what
            )
            return False
        return True

    def verified_checkpoint(self, unit: Unit) -> Path:
        """The unit's checkpoint, proven to be the one its record was written with (sha256).

        Raises:
            FileNotFoundError: no record (never trained to the end), or a recorded checkpoint that is missing.
            RunDirectoryError: a checkpoint that is not the recorded one (replaced, swapped), or a bad record.
        """
        record = self.read_record(unit)
        checkpoint = self.checkpoint(unit)
        if record is None:
            raise FileNotFoundError(
                f"{self.record_path(unit)} does not exist: the model {unit.name} was never trained to the end; "
                f"rerun `hyperfusion run` with --out {self.root} to train it"
            )
        vouched = record.get("checkpoint")
        if vouched is None or not checkpoint.is_file():
            raise FileNotFoundError(
                f"{checkpoint} is missing, although its record {self.record_path(unit)} says the model finished "
                f"(deleted?); rerun `hyperfusion run` with --out {self.root} to train it again"
            )
        if file_digest(checkpoint) != vouched["sha256"]:
            raise RunDirectoryError(
                f"{checkpoint} is not the checkpoint its record {self.record_path(unit)} was written with "
                "(replaced or swapped?); put the right one back, or delete both to train the model again"
            )
        return checkpoint

    def verified_partitions(self, split_seed: int, records: Sequence[Mapping[str, Any]]) -> Path:
        """The partitions file of ``split_seed``, proven to be the one the finished ``records`` were trained on.

        What is computed from it beside the records (the no-skill baseline's training rows, explain's training
        rows) then comes from the same rows as the models.

        Raises:
            FileNotFoundError: no partitions file.
            RunDirectoryError: a file whose sha256 is not the one the records name (edited, or of another run).
        """
        return self._vouched(self.partitions(split_seed), "partitions", records)

    def verified_preprocessor(self, split_seed: int, fold: int, records: Sequence[Mapping[str, Any]]) -> Path:
        """The fold's tabular preprocessing file, proven to be the one its finished ``records`` were trained with
        (one fold's swapped for another's would feed every model features scaled for other rows).

        Raises:
            FileNotFoundError, RunDirectoryError: as `verified_partitions`.
        """
        return self._vouched(self.preprocessor(split_seed, fold), "preprocessing", records)

    def _vouched(self, path: Path, what: str, records: Sequence[Mapping[str, Any]]) -> Path:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: the run never prepared it")
        named = {r.get(f"{what}_sha256") for r in records} - {None}
        if named and named != {file_digest(path)}:
            raise RunDirectoryError(
                f"{path} is not the {what} file the finished models were trained with (edited, swapped, or copied "
                "from another run?); restore it, or start over with --restart"
            )
        return path

    def _absent_since_made(self, path: Path) -> None:
        """Refuse a record missing from a run that was made (its config.yaml written after it): never remade."""
        if self.config.is_file():
            raise RunDirectoryError(
                f"{path} is missing although {self.root} was made with it (deleted?): nothing proves what the "
                "finished models were made with; restore it, or start over with --restart"
            )

    def _verified(self, path: Path, kind: str, of: Mapping[str, Any]) -> dict[str, Any]:
        """`verified_json` for a run-level file; every failure is a RunDirectoryError naming it."""
        try:
            return verified_json(path, kind, of)
        except RecordError as err:
            raise RunDirectoryError(
                f"{err}; it is not rewritten from the cohort or settings at hand"
            ) from None


def fingerprint_cohort(frame: pd.DataFrame, image_digest=None) -> dict[str, dict[str, str]]:
    """A digest per table row (its values as read, file line and image path left out) and per image content.

    Rows are keyed by subject id (``id#k`` for the k-th row of a subject with several); ``image_digest`` maps an
    image path to the sha256 of its bytes (the image cache's). Without it only the rows are fingerprinted (what
    ``report`` and ``explain`` read; `RunDirectory.check_fingerprint` then compares the rows only).
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
        if image_digest is not None:
            images[key] = image_digest(image)
    return {"rows": rows, "images": images} if image_digest is not None else {"rows": rows}


def resolved_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Flattened keys whose values differ between two resolved configurations."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


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
