"""Shared pieces of the cohort models: stratified truncated-normal draws, exact allocation of counts, and the
per-subject random streams."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hyperfusion.simulate.anatomy import LOBE_NAMES, STRUCTURE_NAMES
from hyperfusion.simulate.render import SubjectEffects

TASK_CODES = {"ad": 1, "brain_age": 2}


def table_rng(seed: int, task: str) -> np.random.Generator:
    """Stream for the whole table of a cohort (drawn once, vectorised)."""
    return np.random.default_rng([int(seed), TASK_CODES[task], 0])


def subject_rng(seed: int, task: str, index: int) -> np.random.Generator:
    """Independent stream for subject ``index``'s image: the same subject renders identically on any re-run."""
    return np.random.default_rng([int(seed), TASK_CODES[task], 1, int(index)])


def allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` proportional to ``weights`` (largest remainder; exact when
    ``total == weights.sum()`` for integer weights)."""
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    w = np.asarray(weights, dtype=float)
    quota = total * w / w.sum()
    counts = np.floor(quota).astype(int)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


@functools.lru_cache(maxsize=64)
def truncnorm_matching(mean: float, sd: float, lo: float, hi: float) -> tuple[float, float]:
    """Parameters (μ, σ) of the parent normal whose truncation to [lo, hi] has the given mean and SD.

    Published group ages are means and SDs of the *observed* (truncated) ages, so we solve for the parent.
    """

    def residual(p):
        m, log_s = p
        s = np.exp(log_s)
        d = stats.truncnorm((lo - m) / s, (hi - m) / s, loc=m, scale=s)
        return [d.mean() - mean, d.std() - sd]

    m, log_s = optimize.fsolve(residual, [mean, np.log(sd)], xtol=1e-10)
    return float(m), float(np.exp(log_s))


def stratified_truncnorm(rng: np.random.Generator, n: int, mean: float, sd: float, lo: float, hi: float):
    """``n`` draws with mean ``mean`` and SD ``sd`` from a normal truncated to [lo, hi], one draw per
    equal-probability stratum, shuffled.

    Stratifying makes the sample mean and SD match closely even for small groups, so the table reproduces
    published group statistics.
    """
    mean, sd = truncnorm_matching(float(mean), float(sd), float(lo), float(hi))
    a, b = (lo - mean) / sd, (hi - mean) / sd
    q = (np.arange(n) + rng.uniform(size=n)) / max(n, 1)
    return rng.permutation(stats.truncnorm.ppf(q, a, b, loc=mean, scale=sd))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Cohort:
    """A simulated cohort before rendering.

    Attributes:
        task: ``ad`` or ``brain_age``.
        seed: the seed it was drawn from.
        table: the participants table exactly as written (user-facing columns).
        latents: true hidden variables per subject (never a model input), one row per table row.
        log_f: target log-volume factors (n, structures); cortical: (n, regions); wm_contrast: (n,).
        visits: every visit (PTID, VISCODE, M, DX) when follow-up is simulated (:mod:`hyperfusion.simulate.visits`),
            else None.
    """

    task: str
    seed: int
    table: pd.DataFrame
    latents: pd.DataFrame
    log_f: np.ndarray
    cortical: np.ndarray
    wm_contrast: np.ndarray
    visits: pd.DataFrame | None = None

    def effects(self, i: int) -> SubjectEffects:
        return SubjectEffects(self.log_f[i], self.cortical[i], float(self.wm_contrast[i]))

    def targets_frame(self) -> pd.DataFrame:
        """Target log-volume factors and atrophy fractions as columns (for the latents file)."""
        cols = {f"target_logf_{n}": self.log_f[:, s] for s, n in enumerate(STRUCTURE_NAMES)}
        cols |= {f"cortical_atrophy_{n}": self.cortical[:, j] for j, n in enumerate(LOBE_NAMES)}
        cols["wm_contrast_loss"] = self.wm_contrast
        return pd.DataFrame(cols)


def checked_cohort_args(n: int, interaction: float, *, minimum: int) -> tuple[int, float]:
    """``(n, λ)`` as int and float, after checking ``n >= minimum`` and a finite ``λ >= 0``.

    Raises:
        ValueError: naming the offending value.
    """
    if int(n) != n or n < minimum:
        raise ValueError(f"n must be an integer >= {minimum}, got {n!r}")
    if not (interaction >= 0 and np.isfinite(interaction)):
        raise ValueError(f"interaction must be a finite number >= 0, got {interaction!r}")
    return int(n), float(interaction)
