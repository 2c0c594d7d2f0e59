"""Configs that ask for a simulated cohort (``simulate:``) get it written into the run directory first.

This is how `make demo` runs on a fresh machine: the simulator writes NIfTI files, a table and a manifest exactly
as a user's cohort, and the protocol then reads them through the data layer like any other cohort.

``simulate.classes`` (AD only) keeps a subset of the diagnoses, e.g. ``[CN, AD]`` for the paper's binary comparison
(App. B): the same cohort is read through a manifest that leaves the other rows out (``target.exclude``).

``simulate.record`` (AD only) names the record the run reads: ``full`` (the paper's nine attributes, the default) or
``demographics`` (age, sex, education and APOE4: no CSF or PET biomarker). The simulated table is the same; the
manifest reads fewer of its columns. With the biomarkers the record alone is a strong predictor and the image adds
little; with demographics only, the record chiefly says *how to read* the image (in the location mode: sex decides
where the disease shows), which is the question the paper's claim is about.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import ConfigError, RunConfig
from hyperfusion.yamlio import load_yaml

SIMULATORS = ("ad", "brain-age")
AD_CLASSES = ("CN", "MCI", "AD")
#: the record's columns per ``simulate.record`` (the simulated ADNIMERGE table holds them all)
RECORDS = {
    "full": None,  # the manifest's own (the adnimerge preset's nine attributes)
    "demographics": {"continuous": ["AGE", "PTEDUCAT", "APOE4"], "categorical": ["PTGENDER"]},
}


def ensure_simulated_cohort(config: RunConfig, out: str | Path) -> RunConfig:
    """Simulate the config's cohort into ``out/cohort`` (resuming a partial one) and point the config at it."""
    if config.simulate is None:
        return config
    from hyperfusion.simulate import simulate_ad, simulate_brain_age

    arguments = dict(config.simulate)
    task = arguments.pop("task", None)
    classes = arguments.pop("classes", None)
    record = arguments.pop("record", "full")
    if task not in SIMULATORS:
        raise ConfigError(f"simulate.task: {task!r} is not allowed; choose one of {list(SIMULATORS)}")
    simulator = simulate_ad if task == "ad" else simulate_brain_age
    try:
        spec_path = Path(simulator(Path(out) / "cohort", progress=config.training.progress, **arguments))
    except TypeError as err:
        raise ConfigError(f"simulate: {err}") from None
    if classes is not None or record != "full":
        spec_path = _derived_manifest(spec_path, task, classes, record)
    return dataclasses.replace(config, cohort=str(spec_path.resolve()))


def _derived_manifest(spec_path: Path, task: str, classes: object, record: object) -> Path:
    """A manifest beside ``spec_path`` that keeps only ``classes`` (in that order) of the simulated diagnoses and
    reads the ``record``'s columns."""
    if task != "ad":
        key = "classes" if classes is not None else "record"
        raise ConfigError(f"simulate.{key}: only the ad cohort has it")
    spec = load_yaml(spec_path.read_text(), str(spec_path))
    parts = []
    if classes is not None:
        if not isinstance(classes, list) or len(classes) < 2 or any(c not in AD_CLASSES for c in classes):
            raise ConfigError(
                f"simulate.classes: expected two or three of {list(AD_CLASSES)}, got {classes!r}"
            )
        target = dict(spec.get("target") or {})
        target["classes"] = list(classes)
        target["exclude"] = [c for c in AD_CLASSES if c not in classes]
        spec["target"] = target
        parts.append("-".join(classes))
    if record != "full":
        if record not in RECORDS:
            raise ConfigError(f"simulate.record: {record!r} is not allowed; choose one of {list(RECORDS)}")
        spec["tabular"] = RECORDS[record]
        parts.append(str(record))
    derived = spec_path.with_name(f"cohort-{'-'.join(parts)}.yaml")
    write_text_atomic(derived, yaml.safe_dump(spec, sort_keys=False))
    return derived
