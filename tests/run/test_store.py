"""The run directory: one writer at a time, a cohort fingerprint, what may change between a run and its resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from hyperfusion.run.plan import Unit
from hyperfusion.run.store import RunDirectory, RunDirectoryError, fingerprint_cohort
from tests.faults import fault

CONFIG = {
    "cohort": "/c/cohort.yaml",
    "methods": ["ad-imaging", "ad-hyperfusion"],
    "reference_method": "ad-hyperfusion",
    "protocol": {"split_seeds": [0], "versions": 1, "folds": 2, "n_partitions": 3},
    "training": {"epochs": 2, "lr": 0.001, "device": "cpu", "progress": False},
}


def _with(**changes):
    config = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            config[section][name] = value
        else:
            config[section] = value
    return config


@fault(
    "run directory",
    "a second process started on the same --out",
    "exit status 2 at once, naming the process and host that hold the run",
)
def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    run = RunDirectory(tmp_path / "run")
    with run.lock():
        holder = json.loads(run.lock_path.read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(RunDirectoryError, match=f"process {os.getpid()}"), run.lock():
            pass
    assert not run.lock_path.exists()


@fault(
    "run directory", "a lock left by a process that was killed", "the stale lock is taken over with a warning"
)
def test_a_stale_lock_is_taken_over(tmp_path, caplog):
    run = RunDirectory(tmp_path / "run")
    run.create()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    run.lock_path.write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "since": "x"})
    )
    with run.lock():
        assert json.loads(run.lock_path.read_text())["pid"] == os.getpid()
    assert "no longer running" in caplog.text


@fault("run directory", "--out names an existing file", "one-line error: the path is a file, not a directory")
def test_out_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        RunDirectory(path).create()


@fault("run directory", "--out in a folder without write permission", "one-line error naming the directory")
def test_unwritable_out_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(RunDirectoryError, match=r"cannot create|not writable"):
            RunDirectory(locked / "run").create()
    finally:
        locked.chmod(0o700)


def test_free_keys_and_growth_are_accepted(tmp_path):
    run = RunDirectory(tmp_path)
    run.save_config(CONFIG, "spec")
    assert run.check_config(_with(training__device="cuda", training__progress=True)) == []
    grown = run.check_config(_with(protocol__versions=3, methods=["ad-imaging", "ad-hyperfusion", "ad-film"]))
    assert grown == ["methods", "protocol.versions"]


def test_a_setting_added_later_at_its_default_is_no_change(tmp_path):
    run = RunDirectory(tmp_path)
    run.save_config(CONFIG, "spec")  # written before training.augment_shift existed
    assert run.check_config(_with(training__augment_shift=0, training__augment_flip=False)) == []
    with pytest.raises(RunDirectoryError, match=r"training.augment_shift: None → 2"):
        run.check_config(_with(training__augment_shift=2))


@fault(
    "run directory",
    "a rerun with a setting that changes finished models (learning rate, epochs, image spec)",
    "exit status 2 naming the key with its old and new value; --restart starts over",
)
def test_result_changing_keys_are_refused(tmp_path):
    run = RunDirectory(tmp_path)
    run.save_config(CONFIG, "spec")
    with pytest.raises(RunDirectoryError, match=r"training.lr: 0.001 → 0.01"):
        run.check_config(_with(training__lr=0.01))


def _frame(**edits):
    frame = pd.DataFrame(
        {
            "subject_id": ["a", "b", "c"],
            "target": [0, 1, 2],
            "AGE": [70.0, 71.0, float("nan")],
            "line": [2, 3, 4],
            "image": ["/x/a.nii", "/x/b.nii", "/x/c.nii"],
        }
    )
    for column, (row, value) in edits.items():
        frame.loc[row, column] = value
    return frame


def _fingerprinted(folder):
    """A run directory with the fingerprint of `_frame()`, and the image digests it was made with."""
    run = RunDirectory(folder)
    digest = {"/x/a.nii": "1", "/x/b.nii": "2", "/x/c.nii": "3"}.__getitem__
    run.check_fingerprint(fingerprint_cohort(_frame(), digest))
    return run, digest


@fault(
    "run directory",
    "the cohort table edited after a run (rows dropped or relabelled) and the run rerun",
    "exit status 2 naming how many rows were added, removed or changed, with examples",
)
def test_a_changed_cohort_is_refused_naming_what_changed(tmp_path):
    run, digest = _fingerprinted(tmp_path)
    run.check_fingerprint(fingerprint_cohort(_frame(line=(0, 9), image=(0, "/x/a.nii")), digest))  # same data
    with pytest.raises(RunDirectoryError, match=r"1 row\(s\) changed \(b\)"):
        run.check_fingerprint(fingerprint_cohort(_frame(target=(1, 0)), digest))
    with pytest.raises(RunDirectoryError, match=r"1 row\(s\) removed \(c\)"):
        run.check_fingerprint(fingerprint_cohort(_frame().iloc[:2], digest))


@fault(
    "run directory",
    "an image file replaced by another scan after a run",
    "exit status 2 naming the subject whose image content changed",
)
def test_changed_image_content_is_refused(tmp_path):
    run = RunDirectory(tmp_path)
    run.check_fingerprint(
        fingerprint_cohort(_frame(), {"/x/a.nii": "1", "/x/b.nii": "2", "/x/c.nii": "3"}.get)
    )
    with pytest.raises(RunDirectoryError, match=r"image\(s\) with new content \(a\)"):
        run.check_fingerprint(
            fingerprint_cohort(_frame(), {"/x/a.nii": "9", "/x/b.nii": "2", "/x/c.nii": "3"}.get)
        )


@fault(
    "run directory",
    "a truncated unit record (a crash mid-write by another tool, a full disk)",
    "a warning naming the file; that model counts as unfinished and is trained again",
)
def test_a_corrupt_record_makes_its_unit_unfinished(tmp_path, caplog):
    run = RunDirectory(tmp_path)
    unit = Unit("ad-imaging", 0, 0, 1)
    run.write_record(unit, {"unit": {}, "history": [], "validation": {}, "test": {}})
    assert run.is_finished(unit)
    run.record_path(unit).write_text('{"unit": {}, "hist')
    assert run.read_record(unit) is None
    assert "is corrupt" in caplog.text and str(run.record_path(unit)) in caplog.text
    assert not run.record_path(unit).exists()


def test_write_once_refuses_a_different_file(tmp_path):
    run = RunDirectory(tmp_path)
    path = tmp_path / "partitions_seed0.csv"
    run.write_once(path, "a,b\n", "partitions")
    run.write_once(path, "a,b\n", "partitions")
    with pytest.raises(RunDirectoryError, match="differs from the partitions"):
        run.write_once(path, "a,c\n", "partitions")


@fault(
    "run directory",
    "a resume after the package's model defaults changed (a new release)",
    "exit status 2 naming the method, the argument and both values",
)
def test_changed_model_arguments_are_refused(tmp_path):
    run = RunDirectory(tmp_path)
    run.check_models({"ad-film": {"init_std": 0.01, "bottleneck": 7}})
    run.check_models({"ad-film": {"init_std": 0.01, "bottleneck": 7}, "ad-daft": {"init_std": 1.0}})  # growth
    with pytest.raises(
        RunDirectoryError, match=r"'ad-film' would now be built differently .*init_std: 0.01 → 1.0"
    ):
        run.check_models({"ad-film": {"init_std": 1.0, "bottleneck": 7}})


@fault(
    "run directory",
    "report (or run) killed with kill -9 while writing a file",
    "the temporary file it left is removed when the run directory is next locked (it stayed for good)",
)
def test_a_killed_writers_temporary_file_is_swept(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.create()
    code = (
        "import sys, time; from hyperfusion.atomic import write_atomic\n"
        "write_atomic(sys.argv[1], lambda h: (h.write('partial'), h.flush(), print('writing', flush=True),"
        " time.sleep(60)))\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(run.root / "report.md")], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()  # SIGKILL: no cleanup runs
    writer.wait()
    (left,) = [p for p in run.root.iterdir() if p.name.endswith(".tmp")]
    (run.root / "units" / "ad-imaging").mkdir(parents=True)
    nested = run.root / "units" / "ad-imaging" / ".s0_v0_f0.json.abc123.tmp"
    nested.write_text("{")
    kept = run.root / "cache" / "ab" / ".x.npy.def456.tmp"  # the shared image cache is not the run's to sweep
    kept.parent.mkdir(parents=True)
    kept.write_text("")
    with run.lock():
        pass
    assert not left.exists() and not nested.exists() and kept.exists()
    assert not (run.root / "report.md").exists()


# ---------------------------------------------------------------- sealed records and fingerprints
def _records(run: RunDirectory) -> tuple[Unit, Unit]:
    a, b = Unit("ad-imaging", 0, 0, 0), Unit("ad-hyperfusion", 0, 0, 0)
    for unit, score in ((a, 0.4), (b, 0.9)):
        run.write_record(unit, {"unit": {}, "history": [], "validation": {}, "test": {"score": score}})
    return a, b


@fault(
    "run directory",
    "two methods' unit records swapped on disk",
    "exit status 2 naming the file and whose record it holds (report had credited one method with the other's scores)",
)
def test_swapped_records_are_named(tmp_path):
    run = RunDirectory(tmp_path)
    a, b = _records(run)
    pa, pb = run.record_path(a), run.record_path(b)
    text_a, text_b = pa.read_text(), pb.read_text()
    pa.write_text(text_b)
    pb.write_text(text_a)
    with pytest.raises(
        RunDirectoryError, match=r"s0_v0_f0\.json holds the unit record of method ad-hyperfusion"
    ):
        run.read_record(a)


def test_an_edited_or_unsealed_record_is_refused(tmp_path):
    run = RunDirectory(tmp_path)
    a, _ = _records(run)
    path = run.record_path(a)
    record = json.loads(path.read_text())
    record["test"]["score"] = 0.99
    path.write_text(json.dumps(record))
    with pytest.raises(RunDirectoryError, match="was changed after it was written"):
        run.read_record(a)
    del record["seal"]
    path.write_text(json.dumps(record))
    with pytest.raises(RunDirectoryError, match="has no seal"):
        run.read_record(a)


@fault(
    "run directory",
    "a truncated cohort.json, then a rerun with a changed cohort",
    "exit status 2 naming cohort.json as truncated; it is never rewritten from the changed cohort (it was)",
)
def test_a_truncated_cohort_fingerprint_fails_closed(tmp_path):
    run, digest = _fingerprinted(tmp_path)
    text = run.fingerprint_path.read_text()
    run.fingerprint_path.write_text(text[: len(text) // 2])
    with pytest.raises(RunDirectoryError, match=r"cohort\.json is truncated or not JSON"):
        run.check_fingerprint(fingerprint_cohort(_frame(target=(1, 0)), digest))
    assert run.fingerprint_path.read_text() == text[: len(text) // 2]  # not rewritten


@fault(
    "run directory",
    "a truncated models.json, then a resume with changed model arguments",
    "exit status 2 naming models.json as truncated; it is never rewritten from the new arguments (it was)",
)
def test_a_truncated_models_file_fails_closed(tmp_path):
    run = RunDirectory(tmp_path)
    run.check_models({"ad-film": {"init_std": 0.01}})
    run.models_path.write_text('{"methods": {"ad-fi')
    with pytest.raises(RunDirectoryError, match=r"models\.json is truncated or not JSON"):
        run.check_models({"ad-film": {"init_std": 1.0}})
    assert run.models_path.read_text() == '{"methods": {"ad-fi'


# ---------------------------------------------------------------- checkpoints vouched for by their records
def _finished(run: RunDirectory, unit: Unit) -> None:
    run.checkpoint(unit).parent.mkdir(parents=True, exist_ok=True)
    run.checkpoint(unit).write_bytes(b"weights")
    run.write_record(unit, {"unit": {}, "history": [], "validation": {}, "test": {}})


@fault(
    "run directory",
    "a finished model's checkpoint deleted, then the run resumed",
    "a warning naming the checkpoint; that model counts as unfinished and is trained again (it counted as finished)",
)
def test_a_deleted_checkpoint_makes_its_unit_unfinished(tmp_path, caplog):
    run = RunDirectory(tmp_path)
    unit = Unit("ad-imaging", 0, 0, 1)
    _finished(run, unit)
    assert run.is_finished(unit)
    run.checkpoint(unit).unlink()
    assert not run.is_finished(unit)
    assert f"the checkpoint {run.checkpoint(unit)} of a finished model is missing" in caplog.text


@fault(
    "predict",
    "a finished model's checkpoint deleted, then predict or explain",
    "FileNotFoundError naming the checkpoint as deleted and how to retrain it (it said 'never trained')",
)
def test_a_deleted_checkpoint_is_named_when_loading(tmp_path):
    run = RunDirectory(tmp_path)
    unit = Unit("ad-imaging", 0, 0, 1)
    _finished(run, unit)
    assert run.verified_checkpoint(unit) == run.checkpoint(unit)
    run.checkpoint(unit).write_bytes(b"other weights")
    with pytest.raises(RunDirectoryError, match="is not the checkpoint its record"):
        run.verified_checkpoint(unit)
    run.checkpoint(unit).unlink()
    with pytest.raises(
        FileNotFoundError, match=r"s0_v0_f1\.pt is missing, although its record .* \(deleted\?\)"
    ):
        run.verified_checkpoint(unit)


def test_a_record_deleted_from_a_made_run_is_not_remade(tmp_path):
    run, digest = _fingerprinted(tmp_path)
    run.check_models({"ad-film": {"init_std": 0.01}})
    run.save_config(CONFIG, "spec")
    for path in (run.fingerprint_path, run.models_path, run.plugins_path):
        saved = path.read_bytes()
        path.unlink()
        with pytest.raises(RunDirectoryError, match=rf"{path.name} is missing although .* was made with it"):
            run.check_fingerprint(fingerprint_cohort(_frame(), digest))
            run.check_models({"ad-film": {"init_std": 0.01}})
            run.recorded_plugins()
        path.write_bytes(saved)
