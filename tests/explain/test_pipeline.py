"""``explain_run`` end to end on tiny runs: every output, and the invariants that tie them to ``predict``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from hyperfusion.data import preprocess_image, read_volume
from hyperfusion.data.images import center_of_mass_mm
from hyperfusion.explain.context import load_context
from hyperfusion.explain.ensemble import Ensemble, load_views, mean_view
from hyperfusion.explain.nifti import crop_affine
from hyperfusion.explain.pipeline import ExplainSettings, explain_run
from hyperfusion.run.inference import score_subjects
from hyperfusion.run.setup import image_spec
from tests.explain.runs import classification_config, make_run
from tests.faults import fault

QUICK = {"points": 3, "repeats": 2, "ig_steps": 4, "permutations": 19, "plots": False}


@pytest.fixture(scope="module")
def explained(classification_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "out"
    settings = ExplainSettings(image_subjects=2, **(QUICK | {"plots": True}))
    result = explain_run(classification_run, out, settings=settings, echo=lambda _: None)
    return result


def test_every_part_is_written(explained):
    out = explained.out
    for name in ("subjects.csv", "counterfactual.csv", "counterfactual.png", "permutation_importance.csv",
                 "integrated_gradients.csv", "tabular_attribution.csv", "tabular_attribution.png",
                 "image_attribution.csv", "generated_spread.csv", "generated_separation.csv", "generated.png",
                 "summary.md", "explain.json"):  # fmt: skip
        assert (out / name).is_file(), name
    manifest = json.loads((out / "explain.json").read_text())
    assert sorted(manifest["files"]) == sorted(explained.files)
    assert all((out / f).is_file() for f in manifest["files"])
    summary = (out / "summary.md").read_text()
    for section in (
        "Counterfactual conditioning",
        "Tabular attribution",
        "Image attribution",
        "hypernetwork",
    ):
        assert section in summary


def test_factual_predictions_are_predicts(explained, classification_run):
    context = load_context(classification_run)
    subjects = pd.read_csv(explained.out / "subjects.csv", dtype={"subject_id": str})
    expected = score_subjects(classification_run, context.cohort)
    np.testing.assert_allclose(subjects[["p_CN", "p_AD"]], expected, atol=1e-6)
    assert subjects["target"].tolist() == context.cohort.frame["label"].tolist()


def test_a_subjects_own_level_reproduces_its_factual_prediction(explained):
    table = pd.read_csv(explained.out / "counterfactual.csv", dtype={"subject_id": str, "value": str})
    subjects = pd.read_csv(explained.out / "subjects.csv", dtype={"subject_id": str}).set_index("subject_id")
    own = table[table["observed"] & table["kind"].isin(["binary", "categorical"])]
    assert len(own) == 2 * len(subjects)  # SEX and SITE are known for every test subject
    np.testing.assert_allclose(
        own[["p_CN", "p_AD"]], subjects.loc[own["subject_id"], ["p_CN", "p_AD"]], atol=1e-6
    )
    assert set(table["attribute"]) == {"AGE", "EDU", "SEX", "SITE"}
    assert set(table.loc[table["attribute"] == "SITE", "value"]) == {"A", "B", "C", "(missing)"}


def test_grid_bounds_are_the_training_rows_percentiles(explained, classification_run):
    context = load_context(classification_run)
    table = pd.read_csv(explained.out / "counterfactual.csv", dtype={"value": str})
    age = np.sort(
        table.loc[(table["attribute"] == "AGE") & (table["value"] != "(missing)"), "numeric"].unique()
    )
    low, high = np.percentile(context.training_rows(0)["AGE"], [5, 95])
    np.testing.assert_allclose(age, [low, (low + high) / 2, high])


def test_maps_are_saved_with_their_crop_affines_and_averaged_per_predicted_class(
    explained, classification_run
):
    context = load_context(classification_run)
    spec = image_spec(context.config)
    records = pd.read_csv(explained.out / "image_attribution.csv", dtype={"subject_id": str})
    subjects = pd.read_csv(explained.out / "subjects.csv", dtype={"subject_id": str}).set_index("subject_id")
    assert records["subject_id"].nunique() == 2 and set(records["view"]) == {"left", "right"}
    for side in ("left", "right"):
        maps = {}
        for subject in records["subject_id"].unique():
            image = nib.load(explained.out / "images" / f"{subject}_{side}.nii.gz")
            np.testing.assert_allclose(image.affine, crop_affine(spec, side), atol=1e-5)
            maps[subject] = np.asarray(image.dataobj)
            row = records[(records["subject_id"] == subject) & (records["view"] == side)].iloc[0]
            assert row["sum_abs"] == pytest.approx(np.abs(maps[subject]).sum(), rel=1e-4)
            assert row["explained"] == subjects.loc[subject, "predicted"]
        for label in set(subjects.loc[list(maps), "predicted"]):
            members = [s for s in maps if subjects.loc[s, "predicted"] == label]
            mean = np.asarray(nib.load(explained.out / "images" / f"mean_{label}_{side}.nii.gz").dataobj)
            np.testing.assert_allclose(mean, np.mean([maps[s] for s in members], axis=0), atol=1e-6)
            magnitude = np.asarray(
                nib.load(explained.out / "images" / f"mean_{label}_{side}_abs.nii.gz").dataobj
            )
            np.testing.assert_allclose(
                magnitude, np.mean([np.abs(maps[s]) for s in members], axis=0), atol=1e-6
            )
            assert (explained.out / "images" / f"mean_{label}_{side}.png").is_file()


def test_generated_weights_are_saved_per_model_and_compared_by_subgroup(explained, classification_run):
    context = load_context(classification_run)
    n = len(context.subject_ids)
    for fold in (0, 1):
        with np.load(explained.out / "generated" / f"ad-hyperfusion_s0_v0_f{fold}.npz") as saved:
            assert saved["subject_ids"].tolist() == context.subject_ids
            weight = saved["block4.shortcut.conv/weight"]
            assert weight.shape[0] == n and saved["block4.shortcut.conv/embedding"].shape[0] == n
            np.testing.assert_allclose(
                saved["block4.shortcut.conv/weight_mean"], weight.mean(axis=0), atol=1e-6
            )
    table = pd.read_csv(explained.out / "generated_separation.csv")
    assert {"SEX", "target"} <= set(table["grouping"]) and "AGE" not in set(
        table["grouping"]
    )  # AGE: many values
    assert set(table["model"]) == {"s0_v0_f0", "s0_v0_f1"}
    assert ((table["p_value"] >= 1 / 20) & (table["p_value"] <= 1)).all()


@pytest.mark.parametrize("baseline", ["mean", "zero"])
def test_whole_view_occlusion_is_the_ensembles_loss_without_that_view(classification_run, tmp_path, baseline):
    """A patch as large as the crop replaces the whole view: every voxel then carries the same drop, which the
    loaded ensemble must reproduce by scoring the subject with that view replaced by the baseline view."""
    settings = ExplainSettings(
        parts=("images",), image_subjects=1, patch_mm=1000.0, image_baseline=baseline, **QUICK
    )
    result = explain_run(classification_run, tmp_path / "out", settings=settings, echo=lambda _: None)
    record = result.tables["image_attribution.csv"]
    context = load_context(classification_run)
    ensemble = Ensemble.load(context)
    subject = record["subject_id"].iloc[0]
    row = context.subject_ids.index(subject)
    views = load_views(context, np.array([row]))
    reference = mean_view(context) if baseline == "mean" else torch.zeros(views.shape[1:])
    tabular = [t[row : row + 1] for t in ensemble.tabular(context.cohort.frame)]
    full = ensemble.score(views, tabular)[0]
    explained_class = int(full.argmax())
    for s, side in enumerate(("left", "right")):
        replaced = views.clone()
        replaced[:, s] = reference[s]
        drop = full[explained_class] - ensemble.score(replaced, tabular)[0, explained_class]
        volume = np.asarray(nib.load(tmp_path / "out" / "images" / f"{subject}_{side}.nii.gz").dataobj)
        np.testing.assert_allclose(volume, drop, rtol=1e-4, atol=1e-6)
    assert ("images/baseline_left.nii.gz" in result.files) == (baseline == "mean")


def test_the_mean_view_is_the_training_rows_mean_image(classification_run):
    context = load_context(classification_run)
    spec = image_spec(context.config)
    arrays = [preprocess_image(path, spec) for path in context.training_rows(0)["image"]]
    np.testing.assert_allclose(mean_view(context)[:, 0].numpy(), np.mean(arrays, axis=0), atol=1e-5)


def test_image_integrated_gradients_add_up_to_each_members_change(classification_run, tmp_path):
    settings = ExplainSettings(parts=("images",), image_subjects=1, image_method="integrated-gradients",
                               **(QUICK | {"ig_steps": 48}))  # fmt: skip
    result = explain_run(classification_run, tmp_path / "out", settings=settings, echo=lambda _: None)
    context = load_context(classification_run)
    ensemble = Ensemble.load(context)
    subject = result.tables["image_attribution.csv"]["subject_id"].iloc[0]
    row = context.subject_ids.index(subject)
    views = load_views(context, np.array([row]))
    reference = mean_view(context)
    tabular = [t[row : row + 1] for t in ensemble.tabular(context.cohort.frame)]
    c = int(ensemble.score(views, tabular)[0].argmax())
    for s, side in enumerate(("left", "right")):
        replaced = views.clone()
        replaced[:, s] = reference[s]
        changes = [
            float(
                ensemble.member_values(m, views, t).mean(1)[0, c]
                - ensemble.member_values(m, replaced, t).mean(1)[0, c]
            )
            for m, t in zip(ensemble.members, tabular)
        ]
        volume = np.asarray(nib.load(tmp_path / "out" / "images" / f"{subject}_{side}.nii.gz").dataobj)
        assert volume.sum() == pytest.approx(np.mean(changes), abs=0.1 * max(abs(np.mean(changes)), 1e-3))


def test_regression_writes_the_flip_of_its_two_level_attribute(regression_run, tmp_path):
    settings = ExplainSettings(parts=("counterfactual",), **(QUICK | {"plots": True}))
    explain_run(regression_run, tmp_path / "out", settings=settings, echo=lambda _: None)
    flip = pd.read_csv(tmp_path / "out" / "flip_SEX.csv", dtype={"subject_id": str})
    table = pd.read_csv(tmp_path / "out" / "counterfactual.csv", dtype={"subject_id": str})
    sex = table[table["attribute"] == "SEX"].pivot(index="subject_id", columns="value", values="predicted")
    np.testing.assert_allclose(flip["pred_F"], sex.loc[flip["subject_id"], "F"])
    np.testing.assert_allclose(
        flip["difference"], sex.loc[flip["subject_id"], "M"] - sex.loc[flip["subject_id"], "F"]
    )
    assert (tmp_path / "out" / "flip_SEX.png").is_file()
    assert "SEX flip" in (tmp_path / "out" / "summary.md").read_text()


def test_box_maps_are_placed_on_each_images_centre_of_mass(regression_run, tmp_path):
    settings = ExplainSettings(parts=("images",), image_subjects=1, patch_mm=32.0, **QUICK)
    result = explain_run(regression_run, tmp_path / "out", settings=settings, echo=lambda _: None)
    context = load_context(regression_run)
    subject = result.tables["image_attribution.csv"]["subject_id"].iloc[0]
    data, affine = read_volume(context.cohort.frame.set_index("subject_id").loc[subject, "image"])
    centre = center_of_mass_mm(data, affine)
    image = nib.load(tmp_path / "out" / "images" / f"{subject}_box.nii.gz")
    expected = crop_affine(image_spec(context.config), "box", centre)
    np.testing.assert_allclose(image.affine, expected, atol=1e-4)
    assert image.shape == (16, 18, 16) and "images/baseline_box.nii.gz" in result.files
    assert (tmp_path / "out" / "images" / "mean_all_box.nii.gz").is_file()


def test_new_subjects_without_targets_skip_permutation_importance(classification_run, cohort, tmp_path):
    table = pd.read_csv(cohort / "table.csv").head(4)
    table["DX"] = np.nan
    table.to_csv(cohort / "unlabelled.csv", index=False)
    settings = ExplainSettings(parts=("tabular",), **QUICK)
    result = explain_run(classification_run, tmp_path / "out", manifest=cohort / "unlabelled.csv", settings=settings,
                         echo=lambda _: None)  # fmt: skip
    assert "permutation_importance.csv" not in result.files and "integrated_gradients.csv" in result.files
    assert any("permutation importance needs" in note for note in result.notes)


def test_a_method_without_hyper_layers_says_so(cohort, tmp_path):
    run = make_run(classification_config(cohort, "ad-concat"), tmp_path / "concat")
    result = explain_run(
        run,
        tmp_path / "out",
        settings=ExplainSettings(parts=("generated",), plots=False),
        echo=lambda _: None,
    )
    assert any("has no hyper layers" in note for note in result.notes)
    assert not (tmp_path / "out" / "generated").exists()


@fault("explain", "an unknown part, image method or a count out of range", "ValueError naming the setting")
def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="parts must be some of"):
        ExplainSettings(parts=("everything",))
    with pytest.raises(ValueError, match="image method must be one of"):
        ExplainSettings(image_method="gradcam")
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        ExplainSettings(repeats=0)
    with pytest.raises(ValueError, match="occlusion patch must be a positive size"):
        ExplainSettings(patch_mm=-2.0)


@fault("explain", "--out naming a file", "ValueError: a file, not a folder")
def test_out_must_not_be_a_file(classification_run, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        explain_run(classification_run, tmp_path / "taken", echo=lambda _: None)
