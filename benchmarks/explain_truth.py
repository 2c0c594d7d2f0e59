"""Do ``hyperfusion explain``'s answers agree with what the simulator built in?

Trains small models on simulated cohorts (whose latent variables are known), explains them, and compares:

* AD (ADNI-like cohort, λ = 1, 4 mm hippocampus crops, ``ad-hyperfusion``):
  - tabular permutation importance: the amyloid markers ABETA and AV45, which the simulator derives from amyloid
    status and disease severity, should rank above education (PTEDUCAT), whose group means differ by one year
    against a spread of 2.8;
  - counterfactual conditioning: raising each biomarker from its 5th to its 95th training percentile should move
    P(AD) the way the simulator does (down for ABETA and FDG, up for PTAU, TAU and AV45);
  - image attribution (occlusion against the training rows' mean image): mean |attribution| per voxel in template
    regions (CerebrA labels sampled on each crop's voxels through the crop's affine), over the mean outside them
    and over the brain's mean. The simulator changes the hippocampus, amygdala and temporal horn (limbic
    pattern) and the medial temporal cortex (cortical pattern) with disease severity; the frontal, parietal and
    occipital cortex only with age.
* Brain age (the brain-age demo's cohort: λ_sex = 0.5, variability 0.15, 4 mm whole brains, trained with shifts
  and mirrors, ``brainage-hyperfusion``): the counterfactual
  sex flip (prediction as M − as F) against an oracle that inverts the simulator's sex-specific ageing from each
  test subject's true image features (see ``oracle_flip``): its direction per observed sex, and the per-subject
  correlation.

Every step resumes (simulations and runs are reused in --work); the explanations are recomputed. One thread per
process is fastest on a shared CPU:

    OMP_NUM_THREADS=1 python benchmarks/explain_truth.py --work /tmp/explain-truth [--ad-n 600] [--ba-n 240]

Results: ``benchmarks/results/explain_truth.json``; discussed in docs/explain.md.
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

from hyperfusion.config import load_config
from hyperfusion.explain import ExplainSettings, explain_run, labels_in_crop, load_context
from hyperfusion.explain.images import safe_name
from hyperfusion.explain.nifti import sides
from hyperfusion.run.runner import run_protocol
from hyperfusion.run.setup import image_spec
from hyperfusion.simulate import simulate_ad, simulate_brain_age
from hyperfusion.simulate.anatomy import STRUCTURE_NAMES
from hyperfusion.simulate.api import _phantom_mm
from hyperfusion.simulate.template import LOBES, load_template

RESULTS = Path(__file__).resolve().parent / "results" / "explain_truth.json"
#: How the simulator moves each biomarker with amyloid and severity (src/hyperfusion/simulate/ad.py): the sign of
#: the change of P(AD) from a low to a high value.
SIMULATED_DIRECTION = {"ABETA": -1, "PTAU": 1, "TAU": 1, "FDG": -1, "AV45": 1}


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
    settings = ExplainSettings(
        parts=("counterfactual", "tabular", "images"), image_subjects=image_subjects, repeats=10
    )
    explain_run(run, out, settings=settings, echo=lambda line: print(f"  {line}", flush=True))
    importance = pd.read_csv(out / "tabular_attribution.csv").set_index("attribute")
    counterfactual = pd.read_csv(out / "counterfactual.csv", dtype={"value": str})
    directions = {}
    for marker, sign in SIMULATED_DIRECTION.items():
        rows = counterfactual[(counterfactual["attribute"] == marker) & counterfactual["numeric"].notna()]
        curve = rows.groupby("numeric")["p_AD"].mean().sort_index()
        change = float(curve.iloc[-1] - curve.iloc[0])
        directions[marker] = {
            "p_AD_low_to_high": round(change, 3),
            "as_simulated": bool(np.sign(change) == sign),
        }
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
        "counterfactual_p_AD_from_the_5th_to_the_95th_percentile": directions,
        "amyloid_above_education": bool(
            min(importance.loc["ABETA", "importance_mean"], importance.loc["AV45", "importance_mean"])
            > importance.loc["PTEDUCAT", "importance_mean"]
        ),
        "image_attribution_mass": mass,
        "seconds_to_simulate_and_train": round(trained, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
    }


def oracle_flip(cohort_dir: Path, train_ids, test_ids) -> pd.DataFrame:
    """Per test subject, the age an oracle reads from its true image features as F and as M, and the flip.

    The features are what the simulator put into each image (latents.tsv): the realised log-volume factor of every
    structure, the cortical thinning fractions, the white-matter contrast loss. Per sex, each feature is fitted
    as a line in age on the training rows (``f_j = α_js + β_js·age``, residual variance σ²_js), and a subject's
    age as sex s is the weighted least-squares inversion ``Σ_j β_js (f_j − α_js)/σ²_js / Σ_j β²_js/σ²_js``.
    A feature that does not age in one sex carries no weight when reading as that sex, so this oracle follows
    the simulator's sex-specific ageing without extrapolating a regression outside its data.
    """
    latents = pd.read_csv(cohort_dir / "latents.tsv", sep="\t").set_index("participant_id")
    table = pd.read_csv(cohort_dir / "participants.tsv", sep="\t").set_index("participant_id")
    columns = [f"realised_logf_{s}" for s in STRUCTURE_NAMES]
    columns += [c for c in latents.columns if c.startswith("cortical_atrophy_")] + ["wm_contrast_loss"]
    features = latents.loc[list(test_ids), columns].to_numpy()
    out = pd.DataFrame(index=list(test_ids))
    for sex in ("F", "M"):
        rows = [s for s in train_ids if table.loc[s, "sex"] == sex]
        age = table.loc[rows, "age"].to_numpy()
        design = np.c_[np.ones_like(age), age]
        coef, *_ = np.linalg.lstsq(design, latents.loc[rows, columns].to_numpy(), rcond=None)
        variance = (latents.loc[rows, columns].to_numpy() - design @ coef).var(axis=0, ddof=2)
        alpha, beta = coef
        out[f"as_{sex}"] = ((features - alpha) * beta / variance).sum(axis=1) / (beta**2 / variance).sum()
    out["flip"] = out["as_M"] - out["as_F"]
    return out


def brain_age_check(work: Path, n: int, epochs: int) -> dict:
    """The brain-age demo's setting (λ = 0.5, variability 0.15, shifts and mirrors): a model that reads age well."""
    t0 = time.perf_counter()
    interaction, variability, seed = 0.5, 0.15, 0
    cohort = simulate_brain_age(work / "ba-cohort", n=n, voxel_size=4.0, interaction=interaction, seed=seed,
                                variability=variability, progress=False)  # fmt: skip
    config = {
        "cohort": str(cohort),
        "image": {"mode": "box", "voxel_mm": 4.0, "shape": [40, 52, 44]},
        "methods": ["brainage-hyperfusion"],
        "model": {"base_width": 4},
        "protocol": {"split_seeds": [0], "versions": 1, "top_k": 1, "age_bins": "auto"},
        "training": {"epochs": epochs, "batch_size": 8, "lr": 0.001, "weight_decay": 0.0, "loss": "mse",
                     "device": "cpu", "progress": False, "augment_shift": 2, "augment_flip": True},
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
    oracle = oracle_flip(cohort.parent, train_ids, flip.index.tolist())["flip"]
    network = flip["difference"]
    results = pd.read_csv(run / "results.csv")
    mae = results[(results["method"] == "brainage-hyperfusion") & (results["fold"] == "ensemble")
                  & (results["metric"] == "MAE")]  # fmt: skip
    by_sex = {}
    for sex in ("F", "M"):
        ids = flip.index[flip["observed"] == sex]
        by_sex[sex] = {
            "subjects": len(ids),
            "network_mean": round(float(network[ids].mean()), 3),
            "network_sd": round(float(network[ids].std()), 3),
            "oracle_mean": round(float(oracle[ids].mean()), 3),
            "same_direction": bool(np.sign(network[ids].mean()) == np.sign(oracle[ids].mean())),
        }
    return {
        "n": n,
        "epochs": epochs,
        "interaction": interaction,
        "variability": variability,
        "test_subjects": len(flip),
        "test_MAE": round(float(mae["value"].mean()), 3),
        "flip_as_M_minus_as_F_by_observed_sex": by_sex,
        "per_subject_correlation_with_oracle": round(
            float(np.corrcoef(network, oracle[network.index])[0, 1]), 3
        ),
        "per_subject_sign_agreement": round(
            float(np.mean(np.sign(network) == np.sign(oracle[network.index]))), 3
        ),
        "seconds_to_simulate_and_train": round(trained, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for cohorts, runs and explanations")
    parser.add_argument("--ad-n", type=int, default=600)
    parser.add_argument("--ad-epochs", type=int, default=20)
    parser.add_argument("--image-subjects", type=int, default=12)
    parser.add_argument("--ba-n", type=int, default=240)
    parser.add_argument("--ba-epochs", type=int, default=20)
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
