"""The real-cohort recipes in docs/manifest.md load as written: here a UK Biobank-shaped extract, end to end."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from hyperfusion.config import config_from_dict
from hyperfusion.data import load_manifest
from hyperfusion.run.runner import run_protocol
from tests.faults import fault

UKB_SPEC = """
preset: generic
table: ukb_extract.csv
subject: eid
target: {column: 21003-2.0, task: regression}
image: {glob: "imaging/{subject}_20252_2_0/T1/T1_brain_to_MNI.nii.gz"}
tabular: {categorical: [31-0.0]}
values: {31-0.0: {0: F, 1: M}}
stratify: [31-0.0]
"""


def write_ukb_extract(root, n: int = 20) -> None:
    rng = np.random.default_rng(0)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]  # an MNI field of view at 4 mm
    rows = []
    for i in range(n):
        eid = 1_000_001 + i
        folder = root / "imaging" / f"{eid}_20252_2_0" / "T1"
        folder.mkdir(parents=True)
        volume = np.zeros((46, 55, 46), np.float32)
        volume[8:38, 8:48, 8:38] = 1 + rng.random((30, 40, 30))
        nib.save(nib.Nifti1Image(volume, affine), folder / "T1_brain_to_MNI.nii.gz")
        rows.append({"eid": eid, "31-0.0": i % 2, "21003-2.0": 50 + i, "54-2.0": 11025})
    pd.DataFrame(rows).to_csv(root / "ukb_extract.csv", index=False)
    (root / "cohort.yaml").write_text(UKB_SPEC)


def test_uk_biobank_recipe_loads_and_reports_mae_by_sex(tmp_path):
    write_ukb_extract(tmp_path)
    cohort = load_manifest(tmp_path / "cohort.yaml")
    assert cohort.task == "regression"
    assert cohort.frame["31-0.0"].tolist()[:2] == ["F", "M"]
    assert cohort.frame["image"].iloc[0].endswith("1000001_20252_2_0/T1/T1_brain_to_MNI.nii.gz")

    config = config_from_dict(
        yaml.safe_load(
            f"""
cohort: {tmp_path / "cohort.yaml"}
image: {{mode: box, voxel_mm: 4.0, shape: [40, 52, 44]}}
methods: [brainage-imaging]
model: {{base_width: 2}}
protocol: {{versions: 1, top_k: 1, age_bins: 2, group_by: 31-0.0}}
training: {{epochs: 1, batch_size: 4, loss: mse, progress: false}}
"""
        )
    )
    results = run_protocol(config, tmp_path / "run", echo=lambda _: None)
    assert {"MAE", "MAE-F", "MAE-M"} <= set(results["metric"])


@fault(
    "run config",
    "protocol.group_by names a column the cohort lacks",
    "ValueError naming the key and the column",
)
def test_a_group_by_column_the_cohort_lacks_is_named(tmp_path):
    import pytest

    write_ukb_extract(tmp_path, n=4)
    config = config_from_dict(
        {
            "cohort": str(tmp_path / "cohort.yaml"),
            "methods": ["brainage-imaging"],
            "protocol": {"group_by": "sex"},
            "training": {"loss": "mse"},
        }
    )
    with pytest.raises(ValueError, match=r"protocol\.group_by: the cohort has no column 'sex'"):
        run_protocol(config, tmp_path / "run")


def test_the_ukbiobank_preset_is_the_recipe_plus_plausible_ages(tmp_path):
    write_ukb_extract(tmp_path, n=4)
    (tmp_path / "preset.yaml").write_text("preset: ukbiobank\n")
    spelled = load_manifest(tmp_path / "cohort.yaml").spec
    preset = load_manifest(tmp_path / "preset.yaml").spec
    fields = ("table", "subject", "target_column", "task", "image_glob", "categorical", "values", "stratify")
    assert all(getattr(spelled, f) == getattr(preset, f) for f in fields)
    assert preset.ranges == {"21003-2.0": (40.0, 100.0)} and spelled.ranges == {}
