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

``simulate.target`` (AD only) names what the run predicts: ``diagnosis`` (CN/MCI/AD, the default) or
``conversion``, time to dementia of the subjects MCI at baseline: the simulator also writes their follow-up visits
(``visits``) and the manifest derives each one's time and event from them (``target.from_visits``), as it would
from a user's ADNIMERGE table.
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
#: what ``simulate.target: conversion`` reads from the simulated visits (the simulator's M and DX columns)
CONVERSION = {
    "task": "survival",
    "from_visits": {"months": "M", "diagnosis": "DX", "at_risk": ["MCI"], "event": ["Dementia"]},
}
TARGETS = ("diagnosis", "conversion")
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
    target = arguments.pop("target", "diagnosis")
    if task not in SIMULATORS:
        raise ConfigError(f"simulate.task: {task!r} is not allowed; choose one of {list(SIMULATORS)}")
    if target not in TARGETS:
        raise ConfigError(f"simulate.target: {target!r} is not allowed; choose one of {list(TARGETS)}")
    if target == "conversion":
        if task != "ad":
            raise ConfigError("simulate.target: only the ad cohort has conversion")
        if arguments.get("visits") is False:
            raise ConfigError("simulate.target: conversion is read from the visits; remove 'visits: false'")
        if classes is not None:
            raise ConfigError(
                "simulate.classes: a conversion target reads the MCI subjects; remove 'classes'"
            )
        arguments["visits"] = True
    simulator = simulate_ad if task == "ad" else simulate_brain_age
    try:
        spec_path = Path(simulator(Path(out) / "cohort", progress=config.training.progress, **arguments))
    except TypeError as err:
        raise ConfigError(f"simulate: {err}") from None
    if classes is not None or record != "full" or target != "diagnosis":
        spec_path = _derived_manifest(spec_path, task, classes, record, target)
    return dataclasses.replace(config, cohort=str(spec_path.resolve()))


def _derived_manifest(
    spec_path: Path, task: str, classes: object, record: object, target: str = "diagnosis"
) -> Path:
    """A manifest beside ``spec_path`` that keeps only ``classes`` (in that order) of the simulated diagnoses,
    reads the ``record``'s columns and predicts the ``target``."""
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
        labels = dict(spec.get("target") or {})
        labels["classes"] = list(classes)
        labels["exclude"] = [c for c in AD_CLASSES if c not in classes]
        spec["target"] = labels
        parts.append("-".join(classes))
    if record != "full":
        if record not in RECORDS:
            raise ConfigError(f"simulate.record: {record!r} is not allowed; choose one of {list(RECORDS)}")
        spec["tabular"] = RECORDS[record]
        parts.append(str(record))
    if target == "conversion":
        spec["target"] = CONVERSION
        parts.append("conversion")
    derived = spec_path.with_name(f"cohort-{'-'.join(parts)}.yaml")
    write_text_atomic(derived, yaml.safe_dump(spec, sort_keys=False))
    return derived
