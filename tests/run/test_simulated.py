"""Configs that simulate their cohort: the derived manifests for a subset of classes and for a chosen record."""

from __future__ import annotations

import pandas as pd
import pytest

from hyperfusion.config import ConfigError, config_from_dict
from hyperfusion.data import load_manifest
from hyperfusion.run.simulated import ensure_simulated_cohort

BASE = {"task": "ad", "n": 12, "voxel_size": 4.0, "seed": 1, "template": "phantom"}


def config(**simulate):
    return config_from_dict(
        {"simulate": {**BASE, **simulate}, "methods": ["ad-tabular"], "training": {"progress": False}}
    )


def test_the_demographics_record_reads_age_sex_education_and_apoe4_only(tmp_path):
    resolved = ensure_simulated_cohort(config(record="demographics"), tmp_path)
    cohort = load_manifest(resolved.cohort)
    assert resolved.cohort.endswith("cohort-demographics.yaml")
    assert cohort.continuous == ("AGE", "PTEDUCAT", "APOE4") and cohort.categorical == ("PTGENDER",)
    full = load_manifest(ensure_simulated_cohort(config(), tmp_path).cohort)
    assert {"ABETA", "FDG", "AV45"} <= set(full.continuous)  # the same table, read in full by default
    assert list(cohort.frame["subject_id"]) == list(full.frame["subject_id"])


def test_classes_and_record_combine(tmp_path):
    resolved = ensure_simulated_cohort(config(classes=["CN", "AD"], record="demographics"), tmp_path)
    cohort = load_manifest(resolved.cohort)
    assert resolved.cohort.endswith("cohort-CN-AD-demographics.yaml")
    assert cohort.classes == ("CN", "AD") and cohort.continuous == ("AGE", "PTEDUCAT", "APOE4")


def test_an_unknown_record_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"simulate\.record: 'labs' is not allowed; choose one of"):
        ensure_simulated_cohort(config(record="labs"), tmp_path)


def test_a_conversion_target_reads_the_baseline_mci_subjects_time_to_dementia(tmp_path):
    resolved = ensure_simulated_cohort(config(n=60, target="conversion"), tmp_path)
    assert resolved.cohort.endswith("cohort-conversion.yaml")
    cohort = load_manifest(resolved.cohort)
    assert cohort.task == "survival"
    latents = pd.read_csv(tmp_path / "cohort" / "latents.csv").set_index("PTID")
    subjects = cohort.frame["subject_id"]
    assert (
        len(subjects) > 0 and (latents.loc[subjects, "diagnosis"] == "MCI").all()
    )  # at risk: MCI at baseline
    assert latents.loc[subjects, "conversion_months"].notna().all()


@pytest.mark.parametrize(
    ("simulate", "message"),
    [
        ({"target": "death"}, r"simulate\.target: 'death' is not allowed; choose one of"),
        ({"target": "conversion", "visits": False}, r"conversion is read from the visits"),
        ({"target": "conversion", "classes": ["CN", "AD"]}, r"simulate\.classes: a conversion target"),
    ],
)
def test_a_bad_conversion_target_is_refused(tmp_path, simulate, message):
    with pytest.raises(ConfigError, match=message):
        ensure_simulated_cohort(config(**simulate), tmp_path)
