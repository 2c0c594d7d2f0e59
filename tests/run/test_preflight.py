"""`hyperfusion validate` and the preflight behind it, on a 40-subject phantom cohort at 4 mm; the run's progress.

Every number the report states is checked against the table file read independently with pandas (rows, classes,
missing and censored values), the image headers (grids) and a loop over the plan (the time estimate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hyperfusion.cli import main
from hyperfusion.commands.validate import duration, render
from hyperfusion.config import load_config
from hyperfusion.data.presets import ADNIMERGE
from hyperfusion.run import estimate as est
from hyperfusion.run import preflight as pf
from hyperfusion.run import runner
from hyperfusion.run.plan import PlannedUnit, Unit
from hyperfusion.run.runner import Progress, partitions_of
from hyperfusion.run.store import RunDirectory
from hyperfusion.run.units import UnitOutcome
from tests.faults import fault

SIMULATE = {"task": "ad", "n": 40, "voxel_size": 4.0, "interaction": 2.0, "seed": 3, "template": "phantom"}
METHODS = ["ad-imaging", "ad-late-fusion", "ad-hyperfusion"]  # late fusion brings ad-tabular as a helper


def settings(**top) -> dict:
    return {
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
        "methods": METHODS,
        "model": {"base_width": 2},
        "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 2},
        "training": {"epochs": 2, "batch_size": 8, "lr": 0.001, "device": "cpu", "progress": False},
        **top,
    }


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def validate(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["validate", *map(str, args)])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> tuple[Path, tuple[int, str, str]]:
    """`validate` on a config with `simulate:`: it simulates the cohort into --work (used by every test here)."""
    root = tmp_path_factory.mktemp("validate")
    config = write_yaml(root / "simulated.yaml", settings(simulate=SIMULATE))
    return root / "work", validate(config, "--work", root / "work", "--steps", "0")


@pytest.fixture(scope="module")
def cohort_yaml(simulated) -> Path:
    return simulated[0] / "cohort" / "cohort.yaml"


@pytest.fixture
def config(cohort_yaml, tmp_path):
    return load_config(write_yaml(tmp_path / "run.yaml", settings(cohort=str(cohort_yaml))))


def copy_cohort(cohort_yaml: Path, to: Path) -> Path:
    shutil.copytree(cohort_yaml.parent, to)
    return to / cohort_yaml.name


# ----------------------------------------------------------------------------------------------------------
# the command on a good cohort


@pytest.mark.slow  # builds the module's cohort: simulating 40 subjects takes ~30 s on a busy 2-core CPU
def test_validate_simulates_and_reports_every_section(simulated):
    work, (status, out, err) = simulated
    assert status == 0, err
    for heading in ("Cohort", "Rows", "Classes (column DX_bl)", "Tabular columns", "Images", "Partitions"):
        assert f"\n{heading}\n" in f"\n{out}", heading
    assert "10 models planned; not estimated (--steps 0)" in out  # the estimate: its own test
    assert "Problems" not in out
    assert (work / "cohort" / "cohort.yaml").is_file()
    assert len(list((work / "cache").rglob("*.npy"))) == 40  # the run with --out work reuses them
    assert re.search(r"\nrows read from the table +40\n", out) and "all 40 images pass" in out


def test_the_numbers_match_the_table_read_independently(config, cohort_yaml):
    found = pf.preflight(config, cohort_yaml.parent.parent, steps=0, echo=lambda _: None)
    table = pd.read_csv(cohort_yaml.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    assert found.rows.read == found.rows.kept == found.rows.subjects == len(table) == 40
    assert found.rows.dropped == {"VISCODE is not 'bl'": 0}

    mapping = ADNIMERGE["target"]["mapping"]
    classes = table["DX_bl"].map(lambda v: mapping.get(v, v))
    labels = found.labels.set_index("class")
    for name in ("CN", "MCI", "AD"):
        assert labels.loc[name, "subjects"] == (classes == name).sum()
        raw = table.loc[classes == name, "DX_bl"].value_counts()
        assert labels.loc[name, "raw labels"] == ", ".join(f"{k} {v}" for k, v in sorted(raw.items()))

    columns = {c.name: c for c in found.columns}
    assert list(columns) == [*ADNIMERGE["tabular"]["continuous"], "PTGENDER"]
    for name, column in columns.items():
        assert column.missing == (table[name] == "").sum(), name
        censored = table[name].str.match(r"^\s*[<>]").sum()
        assert column.censored == (censored if column.role == "continuous" else 0), name
    assert columns["ABETA"].censored > 0 and columns["ABETA"].censored_example == ">1700 read as 1700"
    ages = table["AGE"].astype(float)
    assert columns["AGE"].values == f"{ages.min():g} … {ages.max():g} (median {ages.median():.4g})"

    header = nib.load(str(cohort_yaml.parent / table["image"].iloc[0]))
    (grid,) = found.grids
    assert (grid.shape, grid.voxel_mm, grid.axes, grid.count) == (header.shape, (4.0, 4.0, 4.0), "RAS", 40)
    assert found.image_failures == [] and found.problems == []

    balance = found.balance
    assert list(balance.index) == [0, 1, 2] and balance["subjects"].sum() == 40
    assert balance["subjects"].max() - balance["subjects"].min() <= 1  # stratified: sizes within one
    for name in ("CN", "MCI", "AD"):
        assert balance[name].sum() == (classes == name).sum() and (balance[name] > 0).all()
    sexes = [c for c in balance.columns if c.startswith("PTGENDER=")]
    assert balance[sexes].sum(axis=1).tolist() == balance["subjects"].tolist()
    parts = partitions_of(config, found.cohort, 0).to_numpy()
    ages = found.cohort.frame["AGE"].to_numpy()
    assert balance["AGE mean"].tolist() == pytest.approx(
        [ages[parts == p].mean() for p in (0, 1, 2)], abs=0.051
    )


def test_row_accounting_names_each_reason(cohort_yaml, tmp_path):
    spec = copy_cohort(cohort_yaml, tmp_path / "cohort")
    table = pd.read_csv(spec.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    follow_up = table.iloc[:5].assign(VISCODE="m06")  # the same subjects at a later visit
    unlabelled = table.iloc[5:8].assign(DX_bl="")
    kept = pd.concat([table.iloc[:5], table.iloc[8:]])
    pd.concat([kept, follow_up, unlabelled]).to_csv(spec.parent / "ADNIMERGE.csv", index=False)
    write_yaml(spec, {**yaml.safe_load(spec.read_text()), "target": {"drop_missing": True}})

    from hyperfusion.data import load_manifest

    rows = pf.count_rows(load_manifest(spec))
    assert rows.read == 45 and rows.kept == rows.subjects == 37
    assert rows.dropped == {"VISCODE is not 'bl'": 5, "no target in 'DX_bl'": 3}


def test_a_manifest_is_checked_with_the_settings_given(cohort_yaml, tmp_path):
    run_config = write_yaml(tmp_path / "run.yaml", settings(cohort=str(cohort_yaml)))
    status, out, err = validate(cohort_yaml, "--settings", run_config, "--steps", "0")
    assert status == 0, err
    assert f"({run_config} settings)" in out and "not estimated (--steps 0)" in out
    assert "10 models planned" in out  # 3 methods, the crop reader and the tabular helper, 2 folds each


def test_a_regression_cohort_reports_its_target_and_roles(cohort_yaml, tmp_path):
    # the AD table read as a brain-age cohort: age is the target, sex the tabular input and the stratum
    spec = write_yaml(
        tmp_path / "age.yaml",
        {
            "table": str(cohort_yaml.parent / "ADNIMERGE.csv"),
            "subject": "PTID",
            "target": {"column": "AGE", "task": "regression"},
            "image": {"column": "image"},
            "tabular": {"categorical": ["PTGENDER"]},
            "stratify": ["PTGENDER"],
        },
    )
    data = settings(
        methods=["brainage-imaging"],
        image={"mode": "box", "voxel_mm": 4.0, "shape": [40, 52, 44]},
        training={**settings()["training"], "loss": "mse"},
    )
    status, out, err = validate(spec, "--settings", write_yaml(tmp_path / "run.yaml", data), "--steps", "0")
    assert status == 0, err
    ages = pd.read_csv(cohort_yaml.parent / "ADNIMERGE.csv")["AGE"]
    target = re.search(r"\nTarget \(column AGE, regression\)\n-+\n.*\n(.*)\n", out).group(1).split()
    assert target[:4] == ["40", f"{ages.mean():.2f}", f"{ages.std():.2f}", f"{ages.min():g}"]
    assert target[-1] == f"{ages.max():g}"
    roles = re.search(r"\nrole +subjects.*\n((?:.*\n){3})", out).group(1).split("\n")
    assert [r.split()[:2] for r in roles[:3]] == [["train", "32"], ["val", "4"], ["test", "4"]]  # 80/10/10
    assert "split seed 0: subjects per role (80/10/10)" in out and "PTGENDER=Female" in out


def test_a_survival_cohort_reports_events_censoring_and_follow_up(cohort_yaml, tmp_path):
    table = pd.read_csv(cohort_yaml.parent / "ADNIMERGE.csv")
    rng = np.random.default_rng(0)
    table["MONTHS"] = rng.integers(1, 13, len(table)) * 6.0
    table["CONVERTED"] = (np.arange(len(table)) % 3 == 0).astype(int)  # 14 of 40 events
    table.to_csv(tmp_path / "ADNIMERGE.csv", index=False)
    for name in table["image"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(cohort_yaml.parent / name, tmp_path / name)
    spec = write_yaml(
        tmp_path / "survival.yaml",
        {"preset": "adnimerge", "image": {"column": "image"},
         "target": {"task": "survival", "time": "MONTHS", "event": "CONVERTED"}},
    )  # fmt: skip
    data = settings(methods=["ad-tabular", "ad-imaging"], training={**settings()["training"], "loss": "cox"})
    status, out, err = validate(spec, "--settings", write_yaml(tmp_path / "run.yaml", data), "--steps", "0")
    assert status == 0, err
    section = re.search(
        r"\nTarget \(survival: time MONTHS, event CONVERTED\)\n-+\n.*\n((?:.*\n){3})", out
    ).group(1)
    events, censored, every = (row.split() for row in section.strip().split("\n"))
    seen = table["CONVERTED"] == 1
    assert events[:3] == ["events", "14", "(35%)"] and censored[:3] == ["censored", "26", "(65%)"]
    assert events[5] == f"{table.loc[seen, 'MONTHS'].median():.1f}"
    assert every[3] == f"{table['MONTHS'].min():.1f}" and every[-1] == f"{table['MONTHS'].max():.1f}"
    assert "median follow-up (reverse Kaplan–Meier): " in out


# ----------------------------------------------------------------------------------------------------------
# the time estimate


def test_a_method_timer_times_real_steps(config, cohort_yaml):
    from hyperfusion.data import build_dataset, load_manifest

    cohort = load_manifest(cohort_yaml)
    pre = cohort.preprocessor(impute="median").fit(cohort.frame)
    spec, cache = pf.image_spec(config), pf.ImageCache(cohort_yaml.parent.parent / "cache")
    dataset = build_dataset(cohort, np.arange(8), pre, spec, cache, train=True)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))
    timer = est.MethodTimer(
        config, "ad-imaging", cohort, pre, train_targets=dataset.targets, class_weights=None
    )
    before = [p.detach().clone() for p in timer.module.parameters()]
    assert timer.train_step(batch) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, timer.module.parameters()))  # Adam stepped
    evaluation = build_dataset(cohort, np.arange(8), pre, spec, cache, train=False)
    assert timer.eval_step(next(iter(torch.utils.data.DataLoader(evaluation, batch_size=8)))) > 0


@pytest.mark.slow  # times real training steps: about 5-15 s on a busy 2-core CPU
def test_the_estimate_adds_every_model_of_the_plan(cohort_yaml, tmp_path):
    # late fusion alone: two trained helpers (imaging-only, tabular-only) and one composed model per fold
    training = {**settings()["training"], "batch_size": 4}
    data = settings(cohort=str(cohort_yaml), methods=["ad-late-fusion"], training=training)
    config = load_config(write_yaml(tmp_path / "run.yaml", data))
    found = pf.preflight(config, cohort_yaml.parent.parent, steps=1, echo=lambda _: None)
    estimate = found.estimate
    methods = {m.method: m for m in estimate.methods}
    assert list(methods) == ["ad-imaging", "ad-tabular", "ad-late-fusion"]
    assert (
        methods["ad-tabular"].helper and methods["ad-imaging"].helper and not methods["ad-late-fusion"].helper
    )
    assert methods["ad-late-fusion"].kind == "compose" and methods["ad-late-fusion"].seconds == 0
    expected = estimate.prepare + sum(m.steps.first for m in estimate.methods if m.kind == "train")
    partitions = partitions_of(config, found.cohort, 0)
    for planned in found.planned:  # the slow obvious way: every unit, its own fold's rows
        if planned.kind != "train":
            continue
        roles = runner.fold_roles_of(config, "classification", partitions, planned.unit.fold)
        times = methods[planned.unit.method].steps
        batches = [int(np.ceil((roles == r).sum() / 4)) for r in ("train", "val", "test")]
        overhead = estimate.overhead
        rows = [int((roles == r).sum()) for r in ("train", "val", "test")]
        expected += overhead.start + times.build + overhead.per_row * (rows[0] + 2 * rows[1] + 4 * rows[2])
        expected += 2 * overhead.per_epoch  # 2 epochs
        expected += 2 * (batches[0] * times.train + batches[1] * times.evaluate)
        expected += (batches[1] + 3 * batches[2]) * times.evaluate
    assert estimate.seconds == pytest.approx(expected)
    assert all(m.models == 2 for m in estimate.methods) and estimate.finished == 0
    assert all(m.steps.train > 0 and m.steps.evaluate > 0 for m in estimate.methods if m.kind == "train")
    assert estimate.overhead.start > 0 and estimate.overhead.per_epoch >= 0 and estimate.overhead.per_row > 0
    assert estimate.prepare > 0
    text = render(found, target="run.yaml")
    assert f"\nEstimated time on this machine: about {duration(estimate.seconds)}\n" in text
    assert "from 1 timed training step and as many evaluation batches" in text
    assert re.search(r"\nad-late-fusion +2 +composed", text) and "\nad-imaging (helper) " in text


@pytest.mark.slow  # times real training steps
def test_the_estimate_leaves_out_models_a_resumed_run_has_finished(cohort_yaml, tmp_path):
    data = settings(cohort=str(cohort_yaml), methods=["ad-imaging", "ad-tabular"], training={
        **settings()["training"], "warm_start": "none"})  # fmt: skip
    config = load_config(write_yaml(tmp_path / "run.yaml", data))
    work = tmp_path / "run"
    run = RunDirectory(work)
    run.save_config(config.to_dict(), cohort_yaml.read_text())  # a run directory, as a run leaves it
    run.write_record(Unit("ad-imaging", 0, 0, 1), {"unit": {}, "history": [], "validation": {}, "test": {}})
    found = pf.preflight(config, work, steps=1, echo=lambda _: None)
    estimate = found.estimate
    assert estimate.finished == 1
    models = {m.method: m.models for m in estimate.methods}
    assert models == {"ad-imaging": 1, "ad-crop-reader": 2, "ad-tabular": 2}
    imaging = next(m for m in estimate.methods if m.method == "ad-imaging")
    roles = runner.fold_roles_of(config, "classification", partitions_of(config, found.cohort, 0), 0)
    rows = {r: int((roles == r).sum()) for r in ("train", "val", "test")}
    alone = est.unit_seconds(
        imaging.steps,
        epochs=2,
        batch_size=8,
        n_train=rows["train"],
        n_val=rows["val"],
        n_test=rows["test"],
        overhead=estimate.overhead,
    )
    assert imaging.seconds == pytest.approx(imaging.steps.first + alone)  # only fold 0 is left to train


# ----------------------------------------------------------------------------------------------------------
# broken cohorts


@fault(
    "validate",
    "a cohort whose smallest class has fewer subjects than partitions",
    "the report, a Problems section naming the class, and exit status 2 with a one-line error",
)
def test_a_class_too_small_is_reported_and_fails(cohort_yaml, tmp_path):
    spec = copy_cohort(cohort_yaml, tmp_path / "cohort")
    table = pd.read_csv(spec.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    ad = table.index[table["DX_bl"] == "AD"]
    table.loc[ad[2:], "DX_bl"] = "LMCI"  # two AD subjects left for three partitions
    table.to_csv(spec.parent / "ADNIMERGE.csv", index=False)
    config = write_yaml(tmp_path / "run.yaml", settings(cohort=str(spec)))
    status, out, err = validate(config)
    assert status == 2
    assert "Problems: 1 would stop the run before training" in out and "Images" in out
    assert "not estimated (fix the problems first)" in out
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith("hyperfusion validate: error: 1 problem(s) would stop the run before training:")
    assert "class 'AD' has only 2 subject(s)" in line


@fault(
    "validate",
    "an unreadable image and an image whose header doubles the voxel size",
    "each listed by subject, line and file; exit status 2",
)
def test_bad_images_are_reported_by_file(cohort_yaml, tmp_path):
    spec = copy_cohort(cohort_yaml, tmp_path / "cohort")
    table = pd.read_csv(spec.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    broken, doubled = (spec.parent / table["image"].iloc[i] for i in (3, 7))
    broken.write_bytes(b"not a nifti file")
    image = nib.load(str(doubled))
    affine = image.affine.copy()
    affine[:3, :3] *= 2
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine), str(doubled))
    config = write_yaml(tmp_path / "run.yaml", settings(cohort=str(spec)))
    status, out, err = validate(config, "--steps", "0")
    assert status == 2
    assert "38 of 40 images pass" in out
    assert f"line 5, subject {table['PTID'].iloc[3]}: cannot read NIfTI {broken}" in out
    assert f"line 9, subject {table['PTID'].iloc[7]}: {doubled}: the brain" in out
    assert "8×8×8" in out  # the doubled grid shows in the grid table
    assert "2 of 40 image(s) fail the image checks" in err and str(broken) in err


@fault(
    "validate",
    "a table with a label outside the manifest's classes",
    "exit status 2 with the data layer's one-line error naming the label and line; no report",
)
def test_an_unreadable_cohort_fails_at_once(cohort_yaml, tmp_path):
    spec = copy_cohort(cohort_yaml, tmp_path / "cohort")
    table = pd.read_csv(spec.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    table.loc[4, "DX_bl"] = "Dementia?"
    table.to_csv(spec.parent / "ADNIMERGE.csv", index=False)
    status, out, err = validate(spec, "--settings", write_yaml(tmp_path / "run.yaml", settings(cohort="x")))
    assert status == 2 and out == ""
    assert "unknown label 'Dementia?' in column 'DX_bl' on line 6" in err


# ----------------------------------------------------------------------------------------------------------
# the run's progress


def outcome(method: str, fold: int, seconds: float) -> UnitOutcome:
    return UnitOutcome(Unit(method, 0, 0, fold), seconds, f"{method} s0_v0_f{fold}: best validation BA 0.5")


def test_progress_gives_a_lower_bound_until_every_method_has_a_model(monkeypatch):
    clock = iter([0.0, 10.0, 40.0, 50.0])  # the wall clock at start and after each model: no parallelism
    monkeypatch.setattr(runner, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    todo = [PlannedUnit(Unit(m, 0, 0, f), "train") for f in range(3) for m in ("a", "b")]
    lines: list[str] = []
    progress = Progress(todo, lines.append)
    progress.done(outcome("a", 0, 10.0))
    # two more "a" models at 10 s each; "b" not timed yet
    assert lines[-1].endswith(
        "; at least 20 s left (a full estimate after the first model of each method: 1 of 2 so far)"
    )
    progress.done(outcome("b", 0, 30.0))
    assert lines[-1].endswith("; about 80 s left")  # 2 × 10 s + 2 × 30 s
    progress.done(outcome("a", 1, 10.0))
    assert lines[-1].startswith("[3/6] a s0_v0_f1") and lines[-1].endswith("; about 70 s left")


def test_image_preprocessing_shows_a_bar_only_when_progress_is_on(config, tmp_path, capsys):
    for progress in (True, False):
        shown = dataclasses.replace(config, training=dataclasses.replace(config.training, progress=progress))
        run = runner.Run(shown, tmp_path / f"run-{progress}", echo=lambda _: None)
        run.prepare(run.plan())
        err = capsys.readouterr().err
        assert ("preprocess images" in err and "40/40" in err) is progress


# ----------------------------------------------------------------------------------------------------------
# images that pass the checks but do not look like the cohort's T1s: warnings, not problems


@pytest.fixture(scope="module")
def unlike(cohort_yaml, tmp_path_factory) -> tuple[pd.DataFrame, int, str]:
    """`validate` on a copy of the cohort with an inverted, a mask, a rescaled copy and a negative-slope image."""
    root = tmp_path_factory.mktemp("unlike")
    spec = copy_cohort(cohort_yaml, root / "cohort")
    table = pd.read_csv(spec.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    files = [spec.parent / name for name in table["image"]]

    def load(i: int) -> tuple[np.ndarray, np.ndarray]:
        image = nib.load(str(files[i]))
        return np.asarray(image.dataobj, dtype=np.float32), image.affine

    data, affine = load(2)  # inverted contrast: bright background tissue, dark structures, same brain mask
    inside = data != 0
    nib.save(nib.Nifti1Image(np.where(inside, data.max() + data.min() - data, 0), affine), str(files[2]))
    data, affine = load(5)  # a binary brain mask saved in place of the scan
    nib.save(nib.Nifti1Image((data != 0).astype(np.float32), affine), str(files[5]))
    data, _ = load(8)  # subject 11's file replaced by subject 8's scan, intensities ×3 + 7 inside the brain
    _, affine = load(11)
    nib.save(nib.Nifti1Image(np.where(data != 0, 3 * data + 7, 0), affine), str(files[11]))
    _negative_slope(files[14])  # the scan stored as it was, its header's slope set to -1: read back inverted
    status, out, _ = validate(write_yaml(root / "run.yaml", settings(cohort=str(spec))), "--steps", "0")
    return table, status, out


def _negative_slope(path: Path) -> None:
    """Set scl_slope (bytes 112–115 of a NIfTI-1 header) to -1 in place, as some converters write it."""
    import gzip
    import struct

    raw = bytearray(gzip.decompress(path.read_bytes()))
    order = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    raw[112:120] = struct.pack(f"{order}ff", -1.0, 0.0)
    path.write_bytes(gzip.compress(bytes(raw)))


def _warning(out: str, table: pd.DataFrame, row: int) -> str:
    """The report's warning lines about one row's image, joined."""
    prefix = f"  line {row + 2}, subject {table['PTID'].iloc[row]}: "
    lines = [line for line in out.splitlines() if line.startswith(prefix)]
    assert lines, f"no warning about line {row + 2}"
    return "\n".join(lines)


def test_unlike_images_are_warnings_not_problems(unlike):
    _, status, out = unlike
    assert status == 0 and "Problems" not in out
    assert "all 40 images pass" in out
    assert "image(s) do not look like T1s of this cohort (warnings" in out
    warned = [line for line in out.splitlines() if line.startswith("  line ")]
    assert {int(w.split(",")[0].split()[1]) - 2 for w in warned} == {2, 5, 11, 14}  # no other image


@fault(
    "validate",
    "an inverted-contrast scan among T1s",
    "a warning naming the subject, line and file: it correlates with the cohort's mean image unlike the others",
)
def test_an_inverted_scan_is_named(unlike):
    table, _, out = unlike
    assert "correlate -" in _warning(out, table, 2) and "inverted or another contrast" in _warning(
        out, table, 2
    )


@fault(
    "validate",
    "a binary brain mask saved in place of a T1",
    "a warning naming the subject, line and file: most brain voxels share one value, a mask, not a T1",
)
def test_a_mask_instead_of_a_scan_is_named(unlike):
    table, _, out = unlike
    assert "a mask or label map, not a T1" in _warning(out, table, 5)


@fault(
    "validate",
    "another subject's scan under a new name with its intensities rescaled",
    "a warning naming both subjects and lines: the same scan up to an intensity scaling leaks between partitions",
)
def test_a_rescaled_copy_of_another_scan_is_named(unlike):
    table, _, out = unlike
    line = _warning(out, table, 11)
    assert f"it is the scan of subject '{table['PTID'].iloc[8]}' (line 10) up to an intensity scaling" in line


@fault(
    "validate",
    "a NIfTI header with a negative scl_slope",
    "a warning naming the subject, line and file: the slope inverts the stored intensities",
)
def test_a_negative_slope_is_named(unlike):
    table, _, out = unlike
    assert "its header's scl_slope is -1, which inverts the stored intensities" in _warning(out, table, 14)


# ----------------------------------------------------------------------------------------------------------
# warnings that do not stop the run, and sections shown as they are ready


@fault(
    "validate",
    "bf16 on a CPU and a categorical column spelled 'Male' and 'male'",
    "a Warnings section naming both; neither is a problem",
)
def test_bf16_on_a_cpu_and_case_variants_are_warned_about(cohort_yaml, tmp_path):
    spec = copy_cohort(cohort_yaml, tmp_path / "cohort")
    table = pd.read_csv(spec.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    males = table.index[table["PTGENDER"] == "Male"]
    table.loc[males[:1], "PTGENDER"] = "male"
    table.to_csv(spec.parent / "ADNIMERGE.csv", index=False)
    run = settings(cohort=str(spec))
    run["training"]["precision"] = "bf16"
    _, out, _ = validate(write_yaml(tmp_path / "run.yaml", run), "--steps", "0")
    section = out.split("\nWarnings: 2 (the run goes through, but check them)\n", 1)[1].split("\n\n")[0]
    assert "column 'PTGENDER' has categories that differ only by case or spaces: 'Male' (" in section
    assert "'male' (1 rows)" in section
    assert "training.precision is bf16 on a CPU" in section


@fault(
    "validate",
    "two images at 2 mm in a 4 mm cohort read with image.voxel_mm 4",
    "a Warnings section naming the 2 mm images' resampling and the mix of voxel sizes; neither is a problem",
)
def test_a_resolution_mismatch_and_mixed_grids_are_warned_about_by_the_command(cohort_yaml, tmp_path):
    spec = copy_cohort(cohort_yaml, tmp_path / "cohort")
    table = pd.read_csv(spec.parent / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    for row in (2, 5):  # the same brain on a 2 mm grid: every 4 mm voxel repeated 2× per axis, same extent
        path = spec.parent / table["image"].iloc[row]
        image = nib.load(str(path))
        data = np.asarray(image.dataobj)
        finer = np.repeat(np.repeat(np.repeat(data, 2, axis=0), 2, axis=1), 2, axis=2)
        affine = image.affine.copy()
        affine[:3, :3] /= 2
        affine[:3, 3] -= affine[:3, :3] @ np.full(3, 0.5)  # voxel centres a quarter of a 4 mm voxel inwards
        nib.save(nib.Nifti1Image(finer, affine), str(path))
    status, out, err = validate(write_yaml(tmp_path / "run.yaml", settings(cohort=str(spec))), "--steps", "0")
    assert status == 0, err
    section = out.split("\nWarnings: 2 (the run goes through, but check them)\n", 1)[1].split("\n\n")[0]
    assert (
        "2 image(s) have 2×2×2 mm voxels, but image.voxel_mm is 4: each is downsampled 2× per axis" in section
    )
    assert "the images come at 2 voxel sizes (38 at 4×4×4 mm, 2 at 2×2×2 mm)" in section
    assert "Problems" not in out


def test_sections_are_printed_before_the_timing_starts(cohort_yaml, tmp_path, monkeypatch):
    import sys

    seen: dict[str, str] = {}

    def estimate_time(*args, **kwargs):
        seen["stdout"] = sys.stdout.getvalue()
        raise KeyboardInterrupt  # stop here: only what was printed before the timing matters

    monkeypatch.setattr(pf, "estimate_time", estimate_time)
    status, _, _ = validate(write_yaml(tmp_path / "run.yaml", settings(cohort=str(cohort_yaml))))
    assert status != 0 and "stdout" in seen
    for heading in ("Cohort", "Rows", "Tabular columns", "Images", "Partitions"):
        assert f"\n{heading}\n" in f"\n{seen['stdout']}", heading
    assert "Estimated time" not in seen["stdout"]


def test_stages_are_reported_in_order_and_the_estimate_notes_a_busy_machine(config, cohort_yaml, monkeypatch):
    monkeypatch.setattr(pf, "load_note", lambda: "this machine is loaded (load average 9.0 on 2 core(s))")
    stages: list[str] = []
    lines: list[str] = []
    found = pf.preflight(
        config, cohort_yaml.parent.parent, steps=1, echo=lines.append, on_ready=lambda s, f: stages.append(s)
    )
    assert tuple(stages) == pf.STAGES
    assert lines[0].startswith("this machine is loaded")
    assert any(line.startswith("timing: step 1/1 of") for line in lines)
    assert "Note: this machine is loaded (load average 9.0 on 2 core(s))." in render(found, target="x")
