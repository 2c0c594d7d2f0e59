"""Do ``hyperfusion explain``'s answers agree with what the simulator built in?

Trains small models on simulated cohorts (whose latent variables are known), explains them, and compares:

* AD (ADNI-like cohort, 4 mm hippocampus crops, ``ad-hyperfusion``):
  - tabular permutation importance: the amyloid markers ABETA and AV45, which the simulator derives from amyloid
    status and disease severity, should rank above education (PTEDUCAT), whose group means differ by one year
    against a spread of 2.8;
  - image attribution (occlusion): the mean |attribution| per voxel inside the hippocampus and amygdala (the
    template's CerebrA labels, sampled on each crop's voxels with the crop's affine) should exceed the mean outside
    them — those are the structures the simulator shrinks with severity.
* Brain age (UK Biobank-like cohort, 4 mm whole brains, λ_sex = 2, ``brainage-hyperfusion``): the counterfactual sex
  flip should move each prediction the way an oracle does. The oracle knows the image features the simulator
  drew (realised structure volumes, cortical thinning, white-matter contrast), fits age on them separately per sex
  on the training rows (linear), and reads each test subject's features as the other sex. The per-subject
  correlation of the network's flip with the oracle's, and their sign agreement, are reported.

Every step resumes (simulations and runs are reused in --work). One thread per process is fastest on a shared CPU:

    OMP_NUM_THREADS=1 python benchmarks/explain_truth.py --work /tmp/explain-truth [--ad-n 600] [--ba-n 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LinearRegression

from hyperfusion.config import load_config
from hyperfusion.explain import ExplainSettings, explain_run, labels_in_crop, load_context
from hyperfusion.explain.images import safe_name
from hyperfusion.explain.nifti import sides
from hyperfusion.simulate import simulate_ad, simulate_brain_age
from hyperfusion.simulate.anatomy import STRUCTURE_NAMES
from hyperfusion.simulate.api import _phantom_mm
from hyperfusion.simulate.template import LOBES, load_template
from hyperfusion.training.runner import run_protocol
from hyperfusion.training.setup import image_spec

RESULTS = Path(__file__).resolve().parent / "results" / "explain_truth.json"


def train(config: dict, work: Path, name: str) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    run_protocol(load_config(path), work / name, echo=lambda line: print(f"  {line}", flush=True))
    return work / name


def region_masks(run: Path, names: dict[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Per view, the union of the named template regions on the crop's voxels (the view's own affine)."""
    context = load_context(run)
    settings = json.loads((Path(context.config.cohort).parent / "simulation.json").read_text())
    template = load_template(settings["template"], phantom_mm=_phantom_mm(settings["voxel_size"]))
    spec = image_spec(context.config)
    out = {}
    for side in sides(spec):
        mask = np.zeros(template.labels.shape, dtype=np.uint8)
        for region in names[side]:
            mask |= template.region_mask(region).astype(np.uint8)
        out[side] = labels_in_crop(mask, template.affine, spec, side).astype(bool)
    return out


def attribution_mass(run: Path, out: Path, records: pd.DataFrame, names: dict[str, tuple[str, ...]]) -> dict:
    """Mean |attribution| per voxel inside the regions over the mean outside them, and over the mean of the whole
    brain in the crop (non-zero input voxels); medians over the attributed views, and how many exceed 1."""
    masks = region_masks(run, names)
    outside, brain = [], []
    for subject in records["subject_id"].unique():
        for side, mask in masks.items():
            stem = out / "images" / f"{safe_name(subject)}_{side}"
            attribution = np.abs(np.asarray(nib.load(f"{stem}.nii.gz").dataobj))
            image = np.asarray(nib.load(f"{stem}_input.nii.gz").dataobj)
            inside = attribution[mask].mean()
            outside.append(inside / attribution[~mask].mean())
            brain.append(inside / attribution[image != 0].mean())
    return {
        "voxels_per_view": int(masks["left"].sum()),
        "over_outside_median": round(float(np.median(outside)), 3),
        "over_outside_views_above_1": f"{int(np.sum(np.asarray(outside) > 1))}/{len(outside)}",
        "over_brain_mean_median": round(float(np.median(brain)), 3),
        "over_brain_mean_views_above_1": f"{int(np.sum(np.asarray(brain) > 1))}/{len(brain)}",
    }


def ad_check(work: Path, n: int, epochs: int, image_subjects: int) -> dict:
    t0 = time.perf_counter()
    cohort = simulate_ad(work / "ad-cohort", n=n, voxel_size=4.0, interaction=1.0, seed=0, progress=False)
    config = {
        "cohort": str(cohort),
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 24, 16]},
        "methods": ["ad-hyperfusion"],
        "model": {"base_width": 4},
        "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 5, "folds": 4},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.001, "weight_decay": 1e-5, "device": "cpu",
                     "progress": False},
    }  # fmt: skip
    run = train(config, work, "ad-run")
    trained = time.perf_counter() - t0
    out = work / "ad-explain"
    settings = ExplainSettings(parts=("tabular", "images"), image_subjects=image_subjects, repeats=10)
    explain_run(run, out, settings=settings, echo=lambda line: print(f"  {line}", flush=True))
    importance = pd.read_csv(out / "tabular_attribution.csv").set_index("attribute")
    results = pd.read_csv(run / "results.csv")
    ba = results[
        (results["method"] == "ad-hyperfusion")
        & (results["fold"] == "ensemble")
        & (results["metric"] == "BA")
    ]
    records = pd.read_csv(out / "image_attribution.csv", dtype={"subject_id": str})

    def sided(*names: str) -> dict[str, tuple[str, ...]]:
        return {side: tuple(n if n in LOBES else f"{n}_{side}" for n in names) for side in ("left", "right")}

    # the regions the simulator changes with disease severity (inside the crops), and cortex it changes with age only
    regions = {
        "hippocampus_amygdala": sided("hippocampus", "amygdala"),
        "hippocampus": sided("hippocampus"),
        "amygdala": sided("amygdala"),
        "temporal_horn": sided("temporal_horn"),
        "mtl_cortex": sided("mtl"),
        "disease_regions": sided("hippocampus", "amygdala", "temporal_horn", "mtl"),
        "lateral_ventricle": sided("lateral_ventricle"),
        "temporal_cortex": sided("temporal"),
        "frontal_parietal_occipital_cortex": sided("frontal", "parietal", "occipital"),
    }
    mass = {name: attribution_mass(run, out, records, names) for name, names in regions.items()}
    return {
        "n": n,
        "epochs": epochs,
        "test_subjects": len(pd.read_csv(out / "subjects.csv")),
        "test_BA": float(ba["value"].mean()),
        "permutation_importance": {
            a: [float(importance.loc[a, "importance_mean"]), float(importance.loc[a, "importance_std"])]
            for a in importance.index
        },
        "amyloid_above_education": bool(
            min(importance.loc["ABETA", "importance_mean"], importance.loc["AV45", "importance_mean"])
            > importance.loc["PTEDUCAT", "importance_mean"]
        ),
        "image_attribution_mass": mass,
        "seconds_to_simulate_and_train": round(trained, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
    }


def oracle_flip(cohort_dir: Path, train_ids, test_ids) -> pd.Series:
    """Per test subject: an oracle's age estimate reading its true image features as male minus as female.

    The features are what the simulator put into each image (latents.tsv): realised log-volume factors of every
    structure, cortical thinning fractions, white-matter contrast loss. Age is fitted on them per sex (linear).
    """
    latents = pd.read_csv(cohort_dir / "latents.tsv", sep="\t").set_index("participant_id")
    table = pd.read_csv(cohort_dir / "participants.tsv", sep="\t").set_index("participant_id")
    columns = [f"realised_logf_{s}" for s in STRUCTURE_NAMES]
    columns += [c for c in latents.columns if c.startswith("cortical_atrophy_")] + ["wm_contrast_loss"]
    models = {}
    for sex in ("F", "M"):
        rows = [s for s in train_ids if table.loc[s, "sex"] == sex]
        models[sex] = LinearRegression().fit(latents.loc[rows, columns], table.loc[rows, "age"])
    x = latents.loc[list(test_ids), columns]
    return pd.Series(models["M"].predict(x) - models["F"].predict(x), index=list(test_ids))


def brain_age_check(work: Path, n: int, epochs: int) -> dict:
    t0 = time.perf_counter()
    interaction, seed = 2.0, 0
    cohort = simulate_brain_age(work / "ba-cohort", n=n, voxel_size=4.0, interaction=interaction, seed=seed,
                                progress=False)  # fmt: skip
    config = {
        "cohort": str(cohort),
        "image": {"mode": "box", "voxel_mm": 4.0, "shape": [40, 52, 44]},
        "methods": ["brainage-hyperfusion"],
        "model": {"base_width": 4},
        "protocol": {"split_seeds": [0], "versions": 2, "top_k": 2, "age_bins": "auto"},
        "training": {"epochs": epochs, "batch_size": 16, "lr": 0.001, "weight_decay": 0.0, "loss": "mse",
                     "device": "cpu", "progress": False},
    }  # fmt: skip
    run = train(config, work, "ba-run")
    trained = time.perf_counter() - t0
    out = work / "ba-explain"
    explain_run(
        run, out, settings=ExplainSettings(parts=("counterfactual",)), echo=lambda line: print(f"  {line}")
    )
    flip = pd.read_csv(out / "flip_sex.csv", dtype={"subject_id": str}).set_index("subject_id")
    partitions = pd.read_csv(run / "partitions_seed0.csv", dtype={"subject_id": str})
    train_ids = partitions.loc[partitions["partition"] == "train", "subject_id"].tolist()
    oracle = oracle_flip(cohort.parent, train_ids, flip.index.tolist())
    network = flip["difference"]
    results = pd.read_csv(run / "results.csv")
    mae = results[(results["method"] == "brainage-hyperfusion") & (results["fold"] == "ensemble")
                  & (results["metric"] == "MAE")]  # fmt: skip
    by_sex = {
        sex: {"network": float(network[flip["observed"] == sex].mean()),
              "oracle": float(oracle[flip.index[flip["observed"] == sex]].mean())}
        for sex in ("F", "M")
    }  # fmt: skip
    return {
        "n": n,
        "epochs": epochs,
        "interaction": interaction,
        "test_subjects": len(flip),
        "test_MAE_top2": float(mae["value"].mean()),
        "flip_as_M_minus_as_F_by_observed_sex": by_sex,
        "correlation_with_oracle": float(np.corrcoef(network, oracle[network.index])[0, 1]),
        "sign_agreement_with_oracle": float(np.mean(np.sign(network) == np.sign(oracle[network.index]))),
        "seconds_to_simulate_and_train": round(trained, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for cohorts, runs and explanations")
    parser.add_argument("--ad-n", type=int, default=600)
    parser.add_argument("--ad-epochs", type=int, default=20)
    parser.add_argument("--image-subjects", type=int, default=12)
    parser.add_argument("--ba-n", type=int, default=300)
    parser.add_argument("--ba-epochs", type=int, default=15)
    parser.add_argument("--skip", choices=["ad", "brain-age"], action="append", default=[])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report = json.loads(args.results.read_text()) if args.results.is_file() else {}
    if "ad" not in args.skip:
        print("AD cohort", flush=True)
        report["ad"] = ad_check(args.work, args.ad_n, args.ad_epochs, args.image_subjects)
        print(json.dumps(report["ad"], indent=1), flush=True)
    if "brain-age" not in args.skip:
        print("brain-age cohort", flush=True)
        report["brain_age"] = brain_age_check(args.work, args.ba_n, args.ba_epochs)
        print(json.dumps(report["brain_age"], indent=1), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
