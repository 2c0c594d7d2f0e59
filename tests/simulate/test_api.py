"""End to end: written cohorts (phantom template, 4 mm) — layout, determinism, resume, and the data layer."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.simulate import simulate_ad, simulate_brain_age
from hyperfusion.simulate.api import output_grid
from hyperfusion.simulate.writer import PROGRESS_FILE

KW = dict(voxel_size=4.0, template="phantom", progress=False)


@pytest.fixture(scope="module")
def ad_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ad")
    simulate_ad(out, n=8, seed=3, interaction=2.0, **KW)
    return out


@pytest.fixture(scope="module")
def age_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("age")
    simulate_brain_age(out, n=5, seed=3, **KW)
    return out


def test_ad_layout(ad_dir):
    assert yaml.safe_load((ad_dir / "cohort.yaml").read_text()) == {
        "preset": "adnimerge",
        "table": "ADNIMERGE.csv",
        "image": {"column": "image"},
    }
    t = pd.read_csv(ad_dir / "ADNIMERGE.csv")
    assert len(t) == 8 and (t.image == "images/" + t.PTID + ".nii.gz").all()
    lat = pd.read_csv(ad_dir / "latents.csv")
    assert list(lat.PTID) == list(t.PTID)
    assert {"severity", "amyloid_positive", "biological_age", "volume_ml_hippocampus_left"} <= set(
        lat.columns
    )
    assert lat.filter(like="volume_ml_").notna().all().all()
    assert not (ad_dir / PROGRESS_FILE).exists()
    img = nib.load(ad_dir / t.image[0])
    grid = output_grid(4.0)
    assert img.shape == grid.shape and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, grid.affine)
    assert int(img.header["sform_code"]) == 4
    data = np.asarray(img.dataobj)
    assert data[0].max() == 0 and (data >= 0).all() and (data > 0).mean() > 0.2


def test_bids_layout(age_dir):
    assert yaml.safe_load((age_dir / "cohort.yaml").read_text())["preset"] == "bids"
    t = pd.read_csv(age_dir / "participants.tsv", sep="\t")
    assert list(t.columns) == ["participant_id", "age", "sex"]
    for sub in t.participant_id:
        assert (age_dir / sub / "anat" / f"{sub}_T1w.nii.gz").is_file()
    assert len(pd.read_csv(age_dir / "latents.tsv", sep="\t")) == 5
    assert json.loads((age_dir / "dataset_description.json").read_text())["BIDSVersion"]


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_identical_files_and_resume(ad_dir, tmp_path):
    again = tmp_path / "again"
    simulate_ad(again, n=8, seed=3, interaction=2.0, **KW)
    assert _files(again) == _files(ad_dir)
    # interrupted run: an image and the end of the progress log lost, table not yet written
    first = sorted((again / "images").iterdir())[0]
    first.unlink()
    (again / "ADNIMERGE.csv").unlink()
    simulate_ad(again, n=8, seed=3, interaction=2.0, **KW)
    assert _files(again) == _files(ad_dir)


def test_resume_refuses_other_arguments(ad_dir):
    with pytest.raises(ValueError, match="other arguments"):
        simulate_ad(ad_dir, n=8, seed=4, interaction=2.0, **KW)


def test_other_seed_differs(ad_dir, tmp_path):
    simulate_ad(tmp_path, n=8, seed=4, interaction=2.0, **KW)
    assert (tmp_path / "ADNIMERGE.csv").read_bytes() != (ad_dir / "ADNIMERGE.csv").read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"region": "slab"}, "region"), ({"voxel_size": 0.1}, "voxel"), ({"template": "colin"}, "template")],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_ad(tmp_path, n=4, **{**KW, **kwargs})


def test_hippocampus_box_region(tmp_path):
    simulate_ad(tmp_path, n=3, region="box", **KW)
    img = nib.load(next((tmp_path / "images").iterdir()))
    assert img.shape == output_grid(4.0, "box").shape == (34, 26, 18)


def test_realised_volumes_track_targets(ad_dir):
    lat = pd.read_csv(ad_dir / "latents.csv")
    for name in ("hippocampus_left", "hippocampus_right", "lateral_ventricle_left"):
        realised, target = lat[f"realised_logf_{name}"], lat[f"target_logf_{name}"]
        # nuisance (individual anatomy, residual scale) adds a few per cent of noise around the target
        assert np.corrcoef(realised, target)[0, 1] > 0.8
        assert (realised - target).abs().median() < 0.08


def test_a_finished_cohort_is_not_rendered_again(tmp_path, monkeypatch):
    from hyperfusion.simulate import simulate_ad, writer

    first = simulate_ad(tmp_path / "c", n=3, voxel_size=8.0, seed=0, template="phantom", progress=False)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "c").rglob("*") if p.is_file()}
    monkeypatch.setattr(
        writer, "nifti_gz_bytes", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rendered"))
    )
    assert (
        simulate_ad(tmp_path / "c", n=3, voxel_size=8.0, seed=0, template="phantom", progress=False) == first
    )
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "c").rglob("*") if p.is_file()} == before
