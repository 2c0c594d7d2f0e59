"""Tiny finished runs for the explain tests, made in seconds without training.

A synthetic cohort (24 subjects, 4 mm NIfTIs of an ellipsoid "brain" in MNI-like millimetres) with one attribute of
each kind: continuous AGE and EDU (EDU with missing values), binary SEX, categorical SITE. The run directory is
prepared by the runner itself (configuration, partitions, each fold's preprocessing, image cache), and every unit
gets an untrained, seeded model's checkpoint and a record: exactly what ``explain`` reads, with no training time.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import yaml

from hyperfusion.config import load_config
from hyperfusion.data import TabularPreprocessor
from hyperfusion.run.runner import Run
from hyperfusion.run.setup import build_model

VOXEL = 4.0
GRID = (24, 26, 20)
CENTER = np.array([0.0, -20.0, -10.0])
SEMI = np.array([30.0, 34.0, 24.0])


def affine() -> np.ndarray:
    a = np.diag([VOXEL, VOXEL, VOXEL, 1.0])
    a[:3, 3] = CENTER - (np.asarray(GRID) - 1) / 2 * VOXEL
    return a


def brain(rng: np.random.Generator) -> np.ndarray:
    """An ellipsoid of smoothly varying positive intensity, zero outside."""
    ijk = np.indices(GRID).reshape(3, -1).T
    world = ijk * VOXEL + affine()[:3, 3]
    inside = (((world - CENTER) / SEMI) ** 2).sum(axis=1) <= 1
    values = 60 + 20 * np.sin(world @ rng.normal(0, 0.08, 3)) + rng.normal(0, 2, len(world))
    return np.where(inside, values, 0).reshape(GRID).astype(np.float32)


def write_cohort(folder: Path, n: int = 24, seed: int = 0) -> Path:
    """A cohort table, its NIfTIs, and two manifests: ``classification.yaml`` (DX) and ``regression.yaml`` (AGE)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / "images" / f"s{i:02d}.nii.gz"
        nib.save(nib.Nifti1Image(brain(rng), affine()), path)
        rows.append(
            {
                "subject": f"S{i:02d}",
                "DX": "AD" if i % 2 else "CN",
                "AGE": round(float(rng.uniform(55, 85)), 1),
                "EDU": np.nan if i % 7 == 3 else float(rng.integers(8, 20)),
                "SEX": "M" if (i // 2) % 2 else "F",
                "SITE": "ABC"[i % 3],
                "image": f"images/s{i:02d}.nii.gz",
            }
        )
    pd.DataFrame(rows).to_csv(folder / "table.csv", index=False)
    common = {"table": "table.csv", "subject": "subject", "image": {"column": "image"}}
    classification = common | {
        "target": {"column": "DX", "task": "classification", "classes": ["CN", "AD"]},
        "tabular": {"continuous": ["AGE", "EDU"], "binary": ["SEX"], "categorical": ["SITE"]},
        "stratify": ["SEX"],
    }
    regression = common | {
        "target": {"column": "AGE", "task": "regression"},
        "tabular": {"continuous": ["EDU"], "binary": [], "categorical": ["SEX"]},
        "stratify": ["SEX"],
    }
    (folder / "classification.yaml").write_text(yaml.safe_dump(classification))
    (folder / "regression.yaml").write_text(yaml.safe_dump(regression))
    return folder


def classification_config(cohort: Path, method: str = "ad-hyperfusion") -> dict:
    return {
        "cohort": str(cohort / "classification.yaml"),
        "image": {"mode": "hippocampus", "voxel_mm": VOXEL, "shape": [8, 8, 8], "check_extent": False},
        "methods": [method],
        "reference_method": method,
        "model": {"base_width": 2},
        "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 2},
        "training": {"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False, "warm_start": "none"},
    }


def regression_config(cohort: Path) -> dict:
    return {
        "cohort": str(cohort / "regression.yaml"),
        "image": {"mode": "box", "voxel_mm": VOXEL, "shape": [16, 18, 16], "check_extent": False},
        "methods": ["brainage-hyperfusion"],
        "model": {"base_width": 2, "depth": 2},
        "protocol": {"split_seeds": [0], "versions": 2, "top_k": 1, "age_bins": 2},
        "training": {
            "epochs": 1,
            "batch_size": 4,
            "loss": "mse",
            "device": "cpu",
            "progress": False,
            "warm_start": "none",
        },
    }


def make_run(config: dict, out: Path) -> Path:
    """Prepare ``out`` as the runner does, then give every unit an untrained seeded model and a record."""
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    run = Run(load_config(path), out, echo=lambda _: None)
    planned = run.plan()
    with run.run.lock():
        run.prepare(planned)
    classes = tuple(run.cohort.classes)
    for p in planned:
        unit = p.unit
        preprocessor = TabularPreprocessor.load(run.run.preprocessor(unit.split_seed, unit.fold))
        torch.manual_seed(unit.seed)
        targets = None if run.task == "classification" else run.cohort.targets
        model = build_model(
            run.config,
            unit.method,
            n_tabular=len(preprocessor.feature_names_out),
            classes=classes,
            train_targets=targets,
        )
        run.run.checkpoint(unit).parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), run.run.checkpoint(unit))
        record = {
            "unit": unit.key,
            "classes": list(classes),
            "history": [],
            "validation": {},
            "test": {},
            "best_metric": 1.0 + unit.version,
        }
        run.run.write_record(unit, record)
    return out
