"""Follow-up visits for the AD cohort: MCI → dementia conversion times, censored by a visit schedule.

Opt-in (``simulate ad --visits``): without it nothing here runs and every file is the same bytes as before.

**Hazard.** An MCI subject converts at a Weibull time with proportional hazards,
``S(t) = exp(−(t/λ)^k · exp(η))``, ``η = 3.0 (s − 0.35) + 1.2 A + 0.03 (age − 72)`` in the latent severity ``s``
and amyloid status ``A`` that already drive both modalities: ``s`` shrinks the hippocampi and widens the
ventricles in the image and moves p-tau, t-tau and FDG in the record, ``A`` moves Aβ42 and AV45 (and follows
APOE4). So both the image and the record carry signal about the time, and neither alone holds all of it.
``k = 1.3`` (a hazard that grows slowly with time) and ``λ = 160`` months give 9 % of amyloid-negative and 49 % of
amyloid-positive MCI subjects (33 % of all) converted by 36 months at n = 2120, seed 0 — the range ADNI reports
for A− and A+ MCI.

**Censoring.** Visits at months 0, 6, 12, 18, 24, then yearly, up to the subject's phase's last visit (ADNI1 36,
ADNIGO/2 72, ADNI3 48 months); before each follow-up visit a subject drops out with probability 6 %,
independently of the disease (non-informative censoring). A visit's diagnosis is MCI before the conversion time
and Dementia from the first visit at or after it (no reversion); 2 % of follow-up visits have no diagnosis, as in
ADNIMERGE. CN subjects stay CN and AD subjects Dementia at every visit.

The visits are written as rows of ``ADNIMERGE.csv`` (``VISCODE`` m06, m12, ..., ``M`` months, ``DX``), the
follow-up rows repeating the baseline demographics (ADNIMERGE's ``AGE`` is the baseline age) with biomarkers and
image empty; the manifest's ``visit: {column: VISCODE, keep: bl}`` reads the baseline rows as before.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from hyperfusion.simulate.effects import TASK_CODES, Cohort

SCHEDULE = (0, 6, 12, 18, 24, 36, 48, 60, 72)
LAST_VISIT = {"ADNI1": 36, "ADNIGO/2": 72, "ADNI3": 48}
DROPOUT_PER_VISIT = 0.06
MISSING_DIAGNOSIS = 0.02
WEIBULL_SHAPE = 1.3
WEIBULL_SCALE_MONTHS = 160.0
RISK = {"severity": 3.0, "severity_centre": 0.35, "amyloid": 1.2, "age": 0.03, "age_centre": 72.0}
DIAGNOSIS = {"CN": "CN", "MCI": "MCI", "AD": "Dementia"}
#: Columns a follow-up row repeats from the baseline row; the others (biomarkers, image) are left empty.
REPEATED = ("PTID", "DX_bl", "AGE", "PTGENDER", "PTEDUCAT", "APOE4")


def risk_score(latents: pd.DataFrame, age: np.ndarray) -> np.ndarray:
    """The log hazard ratio η of each subject (used for MCI subjects only)."""
    s = latents["severity"].to_numpy(dtype=float)
    amyloid = latents["amyloid_positive"].to_numpy(dtype=float)
    return (
        RISK["severity"] * (s - RISK["severity_centre"])
        + RISK["amyloid"] * amyloid
        + RISK["age"] * (np.asarray(age, dtype=float) - RISK["age_centre"])
    )


def conversion_months(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    """Weibull proportional-hazards times: ``T = λ (E · exp(−η))^(1/k)`` with ``E ~ Exp(1)``."""
    return WEIBULL_SCALE_MONTHS * (rng.exponential(size=len(eta)) * np.exp(-eta)) ** (1 / WEIBULL_SHAPE)


def add_visits(cohort: Cohort) -> Cohort:
    """The cohort with its visits (``Cohort.visits``: PTID, VISCODE, M, DX for every visit, baseline included)
    and the latents ``conversion_months``, ``conversion_risk`` (MCI only, else NaN) and ``last_visit_months``.

    Drawn from its own stream, so the table, latents and images drawn before are unchanged.
    """
    if cohort.task != "ad":
        raise ValueError(f"visits are simulated for the ad cohort only, not {cohort.task!r}")
    rng = np.random.default_rng([cohort.seed, TASK_CODES["ad"], 2])
    n = len(cohort.table)
    group = cohort.latents["diagnosis"].to_numpy()
    mci = group == "MCI"
    eta = np.where(mci, risk_score(cohort.latents, cohort.table["AGE"].to_numpy()), np.nan)
    times = np.where(mci, conversion_months(rng, np.nan_to_num(eta)), np.nan)
    schedule = np.asarray(SCHEDULE, dtype=float)
    stays = rng.uniform(size=(n, len(SCHEDULE))) >= DROPOUT_PER_VISIT
    stays[:, 0] = True
    attended = np.cumprod(stays, axis=1).astype(bool)
    attended &= schedule[None, :] <= np.array([LAST_VISIT[p] for p in cohort.latents["phase"]])[:, None]
    blank = rng.uniform(size=(n, len(SCHEDULE))) < MISSING_DIAGNOSIS
    blank[:, 0] = False
    rows = []
    for i in range(n):
        for j in np.flatnonzero(attended[i]):
            month = schedule[j]
            dx = "Dementia" if mci[i] and month >= times[i] else DIAGNOSIS[group[i]]
            viscode = "bl" if month == 0 else f"m{int(month):02d}"
            rows.append((cohort.table["PTID"].iloc[i], viscode, int(month), None if blank[i, j] else dx))
    visits = pd.DataFrame(rows, columns=["PTID", "VISCODE", "M", "DX"])
    last = np.array([schedule[np.flatnonzero(a)[-1]] for a in attended])
    latents = cohort.latents.assign(conversion_months=times, conversion_risk=eta, last_visit_months=last)
    return dataclasses.replace(cohort, latents=latents, visits=visits)


def visit_table(table: pd.DataFrame, visits: pd.DataFrame) -> pd.DataFrame:
    """The written ADNIMERGE table: each subject's baseline row (with ``M`` 0 and its ``DX``), then its follow-up
    rows in month order; follow-up rows repeat `REPEATED` and leave the other columns empty."""
    baseline = visits[visits["VISCODE"] == "bl"].set_index("PTID")
    full = table.assign(M=0, DX=baseline.loc[table["PTID"], "DX"].to_numpy())
    follow = visits[visits["VISCODE"] != "bl"]
    repeated = table.loc[:, list(REPEATED)].set_index("PTID").loc[follow["PTID"]].reset_index()
    follow_rows = pd.concat([repeated, follow[["VISCODE", "M", "DX"]].reset_index(drop=True)], axis=1)
    out = pd.concat([full, follow_rows], ignore_index=True)[list(full.columns)]
    order = {pid: k for k, pid in enumerate(table["PTID"])}
    rank = np.lexsort((out["M"].to_numpy(dtype=float), out["PTID"].map(order).to_numpy()))
    return out.iloc[rank].reset_index(drop=True)
