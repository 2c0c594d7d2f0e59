"""Signal check of the simulated cohorts: does the design's ordering hold at the region level?

For each interaction λ, draw a large cohort table, build region-level image indices (the warp targets plus the
realised-minus-target spread measured on a rendered sample, plus N(0, 0.06²) standing in for a CNN's read-out
error) and fit simple models on a train split, scoring a held-out split:

* AD (3-class balanced accuracy, logistic regression): tabular only, image only, concat, concat + image×tabular
  products.  Expected: fusion beats either modality; products help only when λ > 0.
* Brain age (MAE in years, ridge): image only, image + sex, image × sex.  Expected: sex helps only through
  interactions, and only when λ > 0.

Tabular preprocessing (median imputation + missing indicators, standardisation) is fit on the train split only.

``--location N`` adds the ``location`` interaction mode read from *rendered* images: N subjects per λ ∈ {0, 1}
are rendered with nuisance on the 4 mm two-hippocampus box, and the image indices are the realised log-volume
factors of every structure (measured by warping the structures with the subject's full map, nuisance included).
Cortical thinning is left out: at 4 mm it is too faint to read (a template-weighted intensity read-out of the
MTL cortex correlated ≈ 0 with the thinning fraction).  Logistic regression, 5-fold stratified cross-validation:
concat vs concat + image × sex products (the interaction's true form) vs concat + every pairwise product.

    python benchmarks/signal_check.py [--n 20000] [--rendered 40] [--template auto] [--location 600]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler

from hyperfusion.simulate.ad import make_ad_cohort
from hyperfusion.simulate.anatomy import LOBE_NAMES, STRUCTURE_NAMES
from hyperfusion.simulate.brain_age import make_brain_age_cohort
from hyperfusion.simulate.effects import subject_rng
from hyperfusion.simulate.grid import hippocampus_box_grid, whole_brain_grid
from hyperfusion.simulate.render import Nuisance, build_renderer

READOUT_SD = 0.06


def realised_spread(cohort, renderer, n: int) -> np.ndarray:
    """SD of (realised − target) log-volume per structure over ``n`` rendered subjects (nuisance on)."""
    errs = []
    for i in range(n):
        _, vol = renderer.render(cohort.effects(i), subject_rng(cohort.seed, cohort.task, i), Nuisance())
        errs.append(np.log(vol / renderer.anatomy.baseline_ml) - renderer.clip(cohort.log_f[i]))
    return np.std(errs, axis=0)


def image_indices(cohort, renderer, spread: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Region-level image read-out: hippocampi, amygdalae, temporal horns, ventricles, cortical regions."""
    logf = np.array([renderer.clip(r) for r in cohort.log_f])
    logf = logf + rng.normal(size=logf.shape) * np.sqrt(spread**2 + READOUT_SD**2)
    s = {n: logf[:, i] for i, n in enumerate(STRUCTURE_NAMES)}
    cols = [
        s["hippocampus_left"],
        s["hippocampus_right"],
        (s["amygdala_left"] + s["amygdala_right"]) / 2,
        (s["temporal_horn_left"] + s["temporal_horn_right"]) / 2,
        (s["lateral_ventricle_left"] + s["lateral_ventricle_right"]) / 2,
    ]
    cols += [cohort.cortical[:, j] + rng.normal(0, READOUT_SD, len(logf)) for j in range(len(LOBE_NAMES))]
    return np.stack(cols, axis=1)


def ad_tabular(table: pd.DataFrame) -> np.ndarray:
    num = {c: pd.to_numeric(table[c].astype(str).str.lstrip("<>"), errors="coerce") for c in table.columns}
    cols = ["AGE", "PTEDUCAT", "APOE4", "ABETA", "PTAU", "TAU", "FDG", "AV45"]
    x = np.stack(
        [num[c].to_numpy(float) for c in cols] + [(table.PTGENDER == "Male").to_numpy(float)], axis=1
    )
    return x


def _prep():
    return [SimpleImputer(strategy="median", add_indicator=True), StandardScaler()]


def ad_check(lam: float, n: int, rendered: int, renderer, seed: int) -> dict[str, float]:
    cohort = make_ad_cohort(n, interaction=lam, seed=seed)
    spread = realised_spread(cohort, renderer, rendered)
    img = image_indices(cohort, renderer, spread, np.random.default_rng(seed))
    tab = ad_tabular(cohort.table)
    y = pd.Categorical(cohort.latents["diagnosis"], categories=["CN", "MCI", "AD"]).codes
    train = np.arange(n) < int(0.75 * n)
    out = {}

    def fit(name, x, extra=()):
        model = make_pipeline(*_prep(), *extra, LogisticRegression(max_iter=3000, C=1.0))
        model.fit(x[train], y[train])
        out[name] = balanced_accuracy_score(y[~train], model.predict(x[~train]))

    fit("tabular", tab)
    fit("image", img)
    fit("concat", np.hstack([tab, img]))
    fit(
        "concat+products",
        np.hstack([tab, img]),
        (PolynomialFeatures(2, interaction_only=True, include_bias=False),),
    )
    out["realised_sd_hippocampus"] = float(spread[:2].mean())
    return out


def brain_age_check(lam: float, n: int, rendered: int, renderer, seed: int) -> dict[str, float]:
    cohort = make_brain_age_cohort(n, interaction=lam, seed=seed)
    spread = realised_spread(cohort, renderer, rendered)
    img = image_indices(cohort, renderer, spread, np.random.default_rng(seed))
    sex = (cohort.table.sex == "M").to_numpy(float)[:, None]
    y = cohort.table.age.to_numpy()
    train = np.arange(n) < int(0.75 * n)
    poly = PolynomialFeatures(2, include_bias=False)
    img2 = poly.fit_transform(img)  # ageing effects are quadratic in age
    out = {}
    for name, x in (
        ("image", img2),
        ("image+sex", np.hstack([img2, sex])),
        ("image×sex", np.hstack([img2, sex, img2 * sex])),
    ):
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x[train], y[train])
        out[name] = mean_absolute_error(y[~train], model.predict(x[~train]))
    return out


def rendered_volumes(cohort, renderer, seed: int) -> np.ndarray:
    """Render every subject (nuisance on, exactly as the simulator writes it) and return the realised
    log-volume factor of every structure, (n, structures)."""
    rows = []
    for i in range(len(cohort.table)):
        _, vol = renderer.render(cohort.effects(i), subject_rng(seed, cohort.task, i), Nuisance())
        rows.append(np.log(vol / renderer.anatomy.baseline_ml))
    return np.array(rows)


def image_times_sex(n_tab: int, n_img: int) -> FunctionTransformer:
    """Append image × sex products to the scaled design ``[table values, image, missing indicators]`` (what
    median imputation with indicators makes of ``[table, image]``; sex is the last table value)."""

    def add(x: np.ndarray) -> np.ndarray:
        return np.hstack([x, x[:, n_tab : n_tab + n_img] * x[:, [n_tab - 1]]])

    return FunctionTransformer(add)


def location_check(lam: float, n: int, renderer, seed: int) -> dict[str, float]:
    """The ``location`` mode read from rendered images (5-fold stratified cross-validated logistic models)."""
    cohort = make_ad_cohort(n, interaction=lam, seed=seed, interaction_mode="location")
    img = rendered_volumes(cohort, renderer, seed)
    tab = ad_tabular(cohort.table)
    y = pd.Categorical(cohort.latents["diagnosis"], categories=["CN", "MCI", "AD"]).codes
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    x = np.hstack([tab, img])
    out = {}

    def cv(name, x_, *extra):
        model = make_pipeline(*_prep(), *extra, LogisticRegression(max_iter=3000, C=1.0))
        out[name] = balanced_accuracy_score(y, cross_val_predict(model, x_, y, cv=folds))

    cv("tabular", tab)
    cv("image", img)
    cv("concat", x)
    cv("concat+image×sex", x, image_times_sex(tab.shape[1], img.shape[1]))
    cv("concat+products", x, PolynomialFeatures(2, interaction_only=True, include_bias=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20000, help="subjects per cohort (75 %% train, 25 %% test)")
    parser.add_argument(
        "--rendered", type=int, default=40, help="subjects rendered to measure realised spread"
    )
    parser.add_argument("--template", default="auto", choices=["auto", "icbm09c", "phantom"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--location", type=int, default=0, help="subjects rendered per λ for the location mode (0: skip)"
    )
    parser.add_argument("--location-only", action="store_true", help="run only the location-mode check")
    args = parser.parse_args()
    t0 = time.time()
    renderer = build_renderer(whole_brain_grid(4.0), args.template, phantom_mm=2.0)
    results = {"template": renderer.anatomy.template.name, "n": args.n, "ad": {}, "brain_age": {}}
    if not args.location_only:
        default_checks(args, renderer, results)
    if args.location:
        box = build_renderer(hippocampus_box_grid(4.0), args.template, phantom_mm=2.0)
        results["location"] = {}
        print(
            f"\nlocation mode ({results['template']}), {args.location} subjects rendered per λ "
            "(4 mm box, nuisance on), 5-fold CV\n\n"
            "| λ | tabular | image | concat | concat + image×sex | concat + products |\n|---|---|---|---|---|---|"
        )
        for lam in (0.0, 1.0):
            r = location_check(lam, args.location, box, args.seed)
            results["location"][lam] = r
            print(
                f"| {lam:g} | {r['tabular']:.3f} | {r['image']:.3f} | {r['concat']:.3f} "
                f"| {r['concat+image×sex']:.3f} | {r['concat+products']:.3f} |",
                flush=True,
            )
    print(f"\n{time.time() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def default_checks(args: argparse.Namespace, renderer, results: dict) -> None:
    """The region-level checks of the default (graded) AD mode and of brain age, at λ = 0, 1, 2."""
    print(
        f"template {results['template']}, n = {args.n} per cohort, {args.rendered} rendered for the spread\n"
    )
    print(
        "| AD, λ | tabular | image | concat | concat + products | realised SD (hippocampus) |\n"
        "|---|---|---|---|---|---|"
    )
    for lam in (0.0, 1.0, 2.0):
        r = ad_check(lam, args.n, args.rendered, renderer, args.seed)
        results["ad"][lam] = r
        print(
            f"| {lam:g} | {r['tabular']:.3f} | {r['image']:.3f} | {r['concat']:.3f} | {r['concat+products']:.3f} "
            f"| {r['realised_sd_hippocampus']:.3f} |"
        )
    print("\n| brain age, λ_sex | image | image + sex | image × sex |\n|---|---|---|---|")
    for lam in (0.0, 1.0, 2.0):
        r = brain_age_check(lam, args.n, args.rendered, renderer, args.seed)
        results["brain_age"][lam] = r
        print(f"| {lam:g} | {r['image']:.2f} | {r['image+sex']:.2f} | {r['image×sex']:.2f} |")


if __name__ == "__main__":
    main()
