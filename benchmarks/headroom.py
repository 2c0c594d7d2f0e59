"""Headroom of the simulated cohorts: how much can reading the image through the tabular record gain?

An oracle sees the image's noise-free effects (the simulator's target log-volume factors and cortical thinning
fractions of the regions inside the 64×96×64 mm hippocampal crops, or of the whole brain for brain age) and the
table exactly as written (NaN where missing).  It is fitted twice on a training part of a large cohort and
scored on a held-out part:

* additive: image and table enter separately (gradient boosting with the interaction constraint
  {image}, {table}; logistic regression on both);
* interaction: image × table terms allowed (unconstrained gradient boosting; logistic regression with every
  image × table product).

The gap between the two is the most any fusion method can gain from conditioning the image on the record.  The
``4 mm read-out`` rows give the oracle only what 4 mm voxels show: the structure volumes (cortical thinning is too
faint at 4 mm) with the realised-volume spread and a CNN's read-out error added.  A second part refits the
logistic oracles on study-sized cohorts (75 % train / 25 % test) to show whether the gap is detectable with the
data a study has: additive, + image × sex (the location mode's true form, which knows the gating variable) and
+ image × every table value (a generic interaction learner that must find it; L2 C = 0.03).

    python benchmarks/headroom.py [--n 20000] [--study-n 200 400 800] [--repeats 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# one thread per process: on a shared machine oversubscribed OpenMP makes gradient boosting several times slower
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error  # noqa: E402
from sklearn.preprocessing import PolynomialFeatures, StandardScaler  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hyperfusion.simulate.ad import make_ad_cohort  # noqa: E402
from hyperfusion.simulate.anatomy import LOBE_NAMES  # noqa: E402
from hyperfusion.simulate.brain_age import make_brain_age_cohort  # noqa: E402
from hyperfusion.simulate.grid import whole_brain_grid  # noqa: E402
from hyperfusion.simulate.render import build_renderer  # noqa: E402
from signal_check import ad_tabular  # noqa: E402

CLASSES = ["CN", "MCI", "AD"]
IN_CROP_LOBES = ("temporal", "mtl")  # cortical regions mostly inside the hippocampal crops (67 %, 85 %)
# settings: (mode, λ, 4 mm read-out).  The 4 mm read-out keeps only the structure volumes (cortical thinning
# lives in a 1-2 mm grey-matter rim and is too faint to read at 4 mm) and adds N(0, 0.09²) to each log-volume
# factor: the realised-minus-target spread of rendered subjects (≈ 0.066) and a CNN's read-out error (0.06), as in
# signal_check.py.
AD_SETTINGS = (
    ("graded", 0.0, False), ("graded", 1.0, False), ("graded", 2.0, False),
    ("location", 0.0, False), ("location", 1.0, False), ("location", 0.0, True), ("location", 1.0, True),
)  # fmt: skip
STUDY_SETTINGS = (
    ("graded", 2.0, False), ("location", 0.0, False), ("location", 1.0, False),
    ("location", 0.0, True), ("location", 1.0, True),
)  # fmt: skip
NOISE_LOGF = 0.09
GENERIC_C = 0.03  # L2 for the image × table products on study-sized samples (see Linear)


def ad_image(cohort, renderer) -> np.ndarray:
    """Noise-free image effects inside the crops: every structure's clipped target log-volume factor (the
    lateral ventricles are 62 % inside), temporal and MTL cortical thinning, grey/white contrast loss."""
    logf = np.array([renderer.clip(r) for r in cohort.log_f])
    lobes = [LOBE_NAMES.index(j) for j in IN_CROP_LOBES]
    return np.hstack([logf, cohort.cortical[:, lobes], cohort.wm_contrast[:, None]])


def read_out(cohort, renderer, four_mm: bool, seed: int) -> np.ndarray:
    """The oracle's image: noise-free in-crop effects, or what 4 mm voxels show (volumes + read-out noise)."""
    img = ad_image(cohort, renderer)
    if four_mm:
        img = img[:, : cohort.log_f.shape[1]]
        img = img + np.random.default_rng([seed, 2]).normal(0, NOISE_LOGF, img.shape)
    return img


def setting_name(mode: str, lam: float, four_mm: bool) -> str:
    return f"{mode} {lam:g}" + (", 4 mm read-out" if four_mm else "")


def brain_age_image(cohort, renderer) -> np.ndarray:
    """Noise-free whole-brain image effects: all structures, all cortical regions, contrast loss."""
    logf = np.array([renderer.clip(r) for r in cohort.log_f])
    return np.hstack([logf, cohort.cortical, cohort.wm_contrast[:, None]])


def labels(cohort) -> np.ndarray:
    return pd.Categorical(cohort.latents["diagnosis"], categories=CLASSES).codes.astype(int)


class Linear:
    """Logistic-regression oracle: table imputed (median + missing indicators) and standardised, image
    standardised, optionally every image × table product; preprocessing fit on the training rows only.

    ``C`` is the inverse L2 strength: 1 on large samples; on study-sized samples the 117 image × table products
    need 0.03 (the best of 0.03, 0.1, 0.3 at 300-800 subjects), or they overfit."""

    def __init__(self, products: str = "none", C: float = 1.0):
        self.products = products  # "none", "all" (image × every table value) or "sex" (image × sex)
        self.C = C

    def _design(self, tab: np.ndarray, img: np.ndarray, fit: bool) -> np.ndarray:
        if fit:
            self.imp = SimpleImputer(strategy="median", add_indicator=True).fit(tab)
            self.st = StandardScaler().fit(self.imp.transform(tab))
            self.si = StandardScaler().fit(img)
        t, i = self.st.transform(self.imp.transform(tab)), self.si.transform(img)
        cols = [t, i]
        if self.products == "all":
            values = t[:, : tab.shape[1]]  # not the missing indicators
            cols.append((i[:, :, None] * values[:, None, :]).reshape(len(i), -1))
        elif self.products == "sex":
            cols.append(i * t[:, [tab.shape[1] - 1]])  # sex is the last table column
        return np.hstack(cols)

    def fit(self, tab, img, y):
        self.m = LogisticRegression(max_iter=3000, C=self.C, class_weight="balanced")
        self.m.fit(self._design(tab, img, True), y)
        return self

    def predict(self, tab, img):
        return self.m.predict(self._design(tab, img, False))


def boosted(x_tr, y_tr, x_te, constraint=None) -> np.ndarray:
    model = HistGradientBoostingClassifier(
        max_iter=600, learning_rate=0.1, early_stopping=True, class_weight="balanced",
        interaction_cst=constraint, random_state=0,
    )  # fmt: skip
    return model.fit(x_tr, y_tr).predict(x_te)


def ad_headroom(n: int, seed: int, renderer) -> dict:
    """Large-sample oracles for every AD setting; tabular-only and the latent ceiling are shared (the table
    does not depend on the interaction)."""
    train = np.arange(n) < int(0.75 * n)
    out: dict = {}
    base = make_ad_cohort(n, interaction=0.0, seed=seed)
    y = labels(base)
    tab = ad_tabular(base.table)
    ba = lambda pred: float(balanced_accuracy_score(y[~train], pred))  # noqa: E731
    out["tabular"] = ba(boosted(tab[train], y[train], tab[~train]))
    lat = base.latents
    latent = np.column_stack(
        [lat.severity, lat.amyloid_positive, base.table.AGE, base.table.PTGENDER == "Male", lat.apoe4]
    ).astype(float)
    out["latent_ceiling"] = ba(boosted(latent[train], y[train], latent[~train]))
    for mode, lam, four_mm in AD_SETTINGS:
        t0 = time.time()
        cohort = make_ad_cohort(n, interaction=lam, seed=seed, interaction_mode=mode)
        assert (labels(cohort) == y).all()
        img = read_out(cohort, renderer, four_mm, seed)
        x = np.hstack([img, tab])
        groups = [list(range(img.shape[1])), list(range(img.shape[1], x.shape[1]))]
        r = {
            "image": ba(boosted(img[train], y[train], img[~train])),
            "gbm_additive": ba(boosted(x[train], y[train], x[~train], groups)),
            "gbm_interaction": ba(boosted(x[train], y[train], x[~train])),
            "lr_additive": ba(Linear("none").fit(tab[train], img[train], y[train]).predict(tab[~train], img[~train])),
            "lr_interaction": ba(
                Linear("all").fit(tab[train], img[train], y[train]).predict(tab[~train], img[~train])
            ),
        }  # fmt: skip
        r["additive"] = max(r["gbm_additive"], r["lr_additive"])
        r["interaction"] = max(r["gbm_interaction"], r["lr_interaction"])
        r["gap"] = r["interaction"] - r["additive"]
        r["seconds"] = time.time() - t0
        out[setting_name(mode, lam, four_mm)] = r
    return out


def study_size(
    sizes: list[int], repeats: int, pool_n: int, seed: int, renderer, settings=STUDY_SETTINGS
) -> dict:
    """Logistic oracles refitted on study-sized cohorts: for each total size N, ``repeats`` draws of N subjects
    (75 % train, 25 % test) from a large pool.  Reports the expected BA gap (scored on a 10 000-subject
    held-out pool) and the gap a study would observe on its own 25 % test split (mean, SD, share > 0)."""
    out: dict = {}
    for mode, lam, four_mm in settings:
        cohort = make_ad_cohort(pool_n + 10000, interaction=lam, seed=seed + 1, interaction_mode=mode)
        y, tab, img = labels(cohort), ad_tabular(cohort.table), read_out(cohort, renderer, four_mm, seed)
        held = np.arange(pool_n, pool_n + 10000)
        res: dict = {}
        for size in sizes:
            rows = []
            for r in range(repeats):
                pick = np.random.default_rng([seed, size, r]).choice(pool_n, size, replace=False)
                tr, te = pick[: int(0.75 * size)], pick[int(0.75 * size) :]
                row = []
                for products in ("none", "sex", "all"):
                    m = Linear(products, C=GENERIC_C if products == "all" else 1.0).fit(
                        tab[tr], img[tr], y[tr]
                    )
                    row += [
                        balanced_accuracy_score(y[held], m.predict(tab[held], img[held])),
                        balanced_accuracy_score(y[te], m.predict(tab[te], img[te])),
                    ]
                rows.append(row)
            a = np.array(rows)  # columns: (none, sex, all) x (expected, observed)
            res[size] = {
                "additive": float(a[:, 0].mean()),
                "x_sex": float(a[:, 2].mean()),
                "x_all": float(a[:, 4].mean()),
                "gap_sex_expected": float((a[:, 2] - a[:, 0]).mean()),
                "gap_all_expected": float((a[:, 4] - a[:, 0]).mean()),
                "gap_sex_observed_mean": float((a[:, 3] - a[:, 1]).mean()),
                "gap_sex_observed_sd": float((a[:, 3] - a[:, 1]).std(ddof=1)),
                "gap_sex_observed_positive": float(((a[:, 3] - a[:, 1]) > 0).mean()),
                "gap_all_observed_mean": float((a[:, 5] - a[:, 1]).mean()),
                "gap_all_observed_sd": float((a[:, 5] - a[:, 1]).std(ddof=1)),
            }
        out[setting_name(mode, lam, four_mm)] = res
    return out


def _gbm_mae(x: np.ndarray, y: np.ndarray, train: np.ndarray, constraint=None) -> float:
    m = HistGradientBoostingRegressor(
        loss="absolute_error", max_iter=800, learning_rate=0.1, early_stopping=True,
        interaction_cst=constraint, random_state=0,
    )  # fmt: skip
    return float(mean_absolute_error(y[~train], m.fit(x[train], y[train]).predict(x[~train])))


def _ridge_mae(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> float:
    st = StandardScaler().fit(x[train])
    m = Ridge(alpha=1.0).fit(st.transform(x[train]), y[train])
    return float(mean_absolute_error(y[~train], m.predict(st.transform(x[~train]))))


def brain_age_headroom(n: int, seed: int, renderer) -> dict:
    train = np.arange(n) < int(0.75 * n)
    out: dict = {}
    for lam in (0.0, 1.0, 2.0):
        cohort = make_brain_age_cohort(n, interaction=lam, seed=seed)
        y = cohort.table.age.to_numpy()
        sex = (cohort.table.sex == "M").to_numpy(float)[:, None]
        img = brain_age_image(cohort, renderer)
        x = np.hstack([img, sex])
        quad = PolynomialFeatures(2, include_bias=False).fit_transform(img)  # ageing is quadratic in age
        bio = cohort.latents.biological_age.to_numpy()[:, None]
        r = {
            "gbm_image": _gbm_mae(img, y, train),
            "gbm_additive": _gbm_mae(x, y, train, [list(range(img.shape[1])), [img.shape[1]]]),
            "gbm_interaction": _gbm_mae(x, y, train),
            "ridge_image": _ridge_mae(quad, y, train),
            "ridge_additive": _ridge_mae(np.hstack([quad, sex]), y, train),
            "ridge_interaction": _ridge_mae(np.hstack([quad, sex, quad * sex]), y, train),
            "biological_age_ceiling": _gbm_mae(bio, y, train),
        }
        r["additive"] = min(r["gbm_additive"], r["ridge_additive"])
        r["interaction"] = min(r["gbm_interaction"], r["ridge_interaction"])
        r["gap"] = r["additive"] - r["interaction"]
        out[f"{lam:g}"] = r
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20000, help="subjects per large cohort (75 %% train)")
    parser.add_argument("--study-n", type=int, nargs="*", default=[200, 400, 800], help="study cohort sizes")
    parser.add_argument("--repeats", type=int, default=20, help="draws per study size")
    parser.add_argument("--template", default="auto", choices=["auto", "icbm09c", "phantom"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    t0 = time.time()
    renderer = build_renderer(whole_brain_grid(4.0), args.template, phantom_mm=2.0)
    results: dict = {"template": renderer.anatomy.template.name, "n": args.n}
    print(f"template {results['template']}, n = {args.n} per cohort (75 % train / 25 % test)\n")

    ad = results["ad"] = ad_headroom(args.n, args.seed, renderer)
    print(f"AD, 3-class balanced accuracy. Tabular only {ad['tabular']:.3f}; latent ceiling (severity, "
          f"amyloid, age, sex, APOE4) {ad['latent_ceiling']:.3f}.\n")  # fmt: skip
    print("| mode, λ | image | additive GBM | additive LR | interaction GBM | interaction LR | gap |")
    print("|---|---|---|---|---|---|---|")
    for key in (setting_name(*setting) for setting in AD_SETTINGS):
        r = ad[key]
        print(f"| {key} | {r['image']:.3f} | {r['gbm_additive']:.3f} | {r['lr_additive']:.3f} "
              f"| {r['gbm_interaction']:.3f} | {r['lr_interaction']:.3f} | **{100 * r['gap']:+.1f}** |")  # fmt: skip

    if args.study_n:
        study = results["study"] = study_size(args.study_n, args.repeats, 30000, args.seed, renderer)
        print(
            f"\nStudy-sized cohorts (logistic oracles, {args.repeats} draws per size, 75 % train / 25 % test)."
        )
        print("Expected: scored on 10 000 held-out subjects; observed: on the draw's own test split.\n")
        print("| mode, λ | N | additive | + image×sex | + image×table | expected gap ×sex | expected gap "
              "×table | observed gap ×sex (SD) | observed ×sex > 0 | observed gap ×table (SD) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
        for key, res in study.items():
            for size, r in res.items():
                sex = f"{100 * r['gap_sex_observed_mean']:+.1f} ({100 * r['gap_sex_observed_sd']:.1f})"
                generic = f"{100 * r['gap_all_observed_mean']:+.1f} ({100 * r['gap_all_observed_sd']:.1f})"
                print(f"| {key} | {size} | {r['additive']:.3f} | {r['x_sex']:.3f} | {r['x_all']:.3f} "
                      f"| {100 * r['gap_sex_expected']:+.1f} | {100 * r['gap_all_expected']:+.1f} "
                      f"| {sex} | {r['gap_sex_observed_positive']:.0%} | {generic} |")  # fmt: skip

    age = results["brain_age"] = brain_age_headroom(args.n, args.seed, renderer)
    print("\nBrain age, MAE in years (lower is better).\n")
    print("| λ_sex | image GBM | additive GBM | additive ridge | interaction GBM | interaction ridge | gap "
          "| biological-age ceiling |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for key, r in age.items():
        print(f"| {key} | {r['gbm_image']:.2f} | {r['gbm_additive']:.2f} | {r['ridge_additive']:.2f} "
              f"| {r['gbm_interaction']:.2f} | {r['ridge_interaction']:.2f} | **{r['gap']:+.2f}** "
              f"| {r['biological_age_ceiling']:.2f} |")  # fmt: skip
    print(f"\n{time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
