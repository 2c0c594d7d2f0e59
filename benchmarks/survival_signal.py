"""How much the simulated AD cohort's record and image say about the time to conversion (``simulate ad --visits``).

Draws the cohort's table, latents and follow-up visits (no rendering), writes the visit rows as ``ADNIMERGE.csv``
and derives each baseline-MCI subject's (time, event) through `hyperfusion.data.conversion` exactly as a run would.
Then fits a Cox model (Breslow partial likelihood, small ridge) on a random half and scores Harrell's C on the
other half, for several random splits, from:

* ``demographics``: age, sex, education, APOE4;
* ``record``: the paper's nine attributes (CSF Aβ42, p-tau, t-tau read at their censoring bound, FDG, AV45);
* ``image``: the warp targets of the hippocampi, amygdalae and temporal horns (what the image is rendered to
  show) plus N(0, 0.06²) for a CNN's read-out error, as ``signal_check.py`` does; with ``--rendered`` the cohort
  is written (4 mm two-hippocampus box, nuisance on) and the volumes the rendered images realise are read instead,
  and the targets come from the written ``ADNIMERGE.csv``;
* ``image + record``, and ``truth``: the simulator's own log hazard ratio η (the ceiling).

Missing values: median imputation and missing indicators, fitted with the standardisation on the training half.

    python benchmarks/survival_signal.py [--n 400 2120] [--splits 5] [--seed 0] [--interaction-mode location
        --effect-scale 2] [--rendered]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from hyperfusion.data.censor import parse_numeric
from hyperfusion.data.conversion import derive_conversion
from hyperfusion.data.tables import read_table
from hyperfusion.simulate import simulate_ad
from hyperfusion.simulate.ad import make_ad_cohort
from hyperfusion.simulate.anatomy import STRUCTURE_NAMES
from hyperfusion.simulate.visits import add_visits, visit_table

DEMOGRAPHICS = ("AGE", "PTEDUCAT", "APOE4", "male")
RECORD = (*DEMOGRAPHICS, "ABETA", "PTAU", "TAU", "FDG", "AV45")
IMAGE = tuple(s for s in STRUCTURE_NAMES if s.startswith(("hippocampus", "amygdala", "temporal_horn")))


def cox_fit(x: np.ndarray, time: np.ndarray, event: np.ndarray, ridge: float = 0.01) -> np.ndarray:
    """Coefficients maximising the Breslow partial likelihood minus ``ridge``·|β|²/2."""
    at_risk = time[None, :] >= time[:, None]  # row i: who is still at risk at subject i's time

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = x @ beta
        w = np.exp(eta - eta.max())
        denom = at_risk @ w
        mean_x = (at_risk * w[None, :]) @ x / denom[:, None]
        ll = np.sum(event * (eta - eta.max() - np.log(denom)))
        grad = np.sum(event[:, None] * (x - mean_x), axis=0)
        return -ll + ridge * beta @ beta / 2, -grad + ridge * beta

    return optimize.minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x


def harrell_c(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C: of pairs where the earlier time is an event (or tied with a censored one), the share where the
    earlier subject has the higher risk (risk ties count one half)."""
    earlier = (time[:, None] < time[None, :]) | ((time[:, None] == time[None, :]) & (event[None, :] == 0))
    comparable = earlier & (event[:, None] == 1)
    np.fill_diagonal(comparable, False)
    diff = risk[:, None] - risk[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0))[comparable].sum() / comparable.sum())


def features(cohort, rng: np.random.Generator) -> pd.DataFrame:
    """The candidate inputs per subject (indexed by PTID), biomarkers parsed as the data layer parses them."""
    table = cohort.table.set_index("PTID")
    out = pd.DataFrame(index=table.index)
    for column in ("AGE", "PTEDUCAT", "APOE4", "ABETA", "PTAU", "TAU", "FDG", "AV45"):
        out[column] = parse_numeric(table[column], column=column, source="simulated")[0]
    out["male"] = (table["PTGENDER"] == "Male").astype(float)
    for s, name in enumerate(STRUCTURE_NAMES):
        if name in IMAGE:
            out[name] = cohort.log_f[:, s] + rng.normal(0, 0.06, len(out))
    out["truth"] = cohort.latents.set_index("PTID")["conversion_risk"]
    return out


def design(frame: pd.DataFrame, columns: tuple[str, ...], train: np.ndarray) -> np.ndarray:
    """Median-imputed, standardised columns plus missing indicators, every statistic from the training rows."""
    parts = []
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        missing = np.isnan(values)
        filled = np.where(missing, np.nanmedian(values[train]), values)
        sd = filled[train].std() or 1.0
        parts.append((filled - filled[train].mean()) / sd)
        if missing[train].any() and not missing[train].all():
            parts.append(missing - missing[train].mean())
    return np.stack(parts, axis=1)


def measure(
    n: int, splits: int, seed: int, mode: str, effect_scale: float, rendered: bool
) -> dict[str, list[float]]:
    cohort = add_visits(make_ad_cohort(n, seed=seed, interaction_mode=mode, effect_scale=effect_scale))
    with tempfile.TemporaryDirectory() as tmp:
        if rendered:  # the files a run reads: 4 mm box, nuisance on; the volumes the images realise
            spec = simulate_ad(
                Path(tmp) / "cohort", n=n, seed=seed, voxel_size=4.0, region="box", visits=True,
                interaction_mode=mode, effect_scale=effect_scale, progress=False,
            )  # fmt: skip
            path = spec.parent / "ADNIMERGE.csv"
            realised = pd.read_csv(spec.parent / "latents.csv")
            log_f = realised[[f"realised_logf_{s}" for s in STRUCTURE_NAMES]].to_numpy()
            cohort = dataclasses.replace(cohort, log_f=log_f)
        else:
            path = Path(tmp) / "ADNIMERGE.csv"
            path.write_text(visit_table(cohort.table, cohort.visits).to_csv(index=False))
        targets, summary = derive_conversion(
            read_table(path, ["", "NA"]),
            subject="PTID", months="M", diagnosis="DX", at_risk=["MCI"], event=["Dementia"], source=str(path),
        )  # fmt: skip
    print(f"n = {n}: {summary.describe()}")
    frame = features(cohort, np.random.default_rng([seed, 99])).loc[targets.index]
    time_, event = targets["time"].to_numpy(), targets["event"].to_numpy()
    inputs = {
        "demographics": DEMOGRAPHICS, "record": RECORD, "image": IMAGE, "image + record": IMAGE + RECORD,
        "truth": ("truth",),
    }  # fmt: skip
    scores: dict[str, list[float]] = {name: [] for name in inputs}
    for split in range(splits):
        train = np.random.default_rng([seed, split]).permutation(len(frame)) < len(frame) // 2
        for name, columns in inputs.items():
            x = design(frame, columns, train)
            beta = cox_fit(x[train], time_[train], event[train])
            scores[name].append(harrell_c(x[~train] @ beta, time_[~train], event[~train]))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[400, 2120])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interaction-mode", choices=["graded", "location"], default="graded")
    parser.add_argument(
        "--effect-scale",
        type=float,
        default=1.0,
        help="multiplies the disease's image effects (the demos use 2)",
    )
    parser.add_argument(
        "--rendered", action="store_true", help="render the cohort (4 mm box) and read the realised volumes"
    )
    args = parser.parse_args()
    for n in args.n:
        start = time.perf_counter()
        scores = measure(n, args.splits, args.seed, args.interaction_mode, args.effect_scale, args.rendered)
        for name, values in scores.items():
            print(
                f"  {name:15s} held-out C {np.mean(values):.3f} ± {np.std(values):.3f} over {len(values)} splits"
            )
        print(f"  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
