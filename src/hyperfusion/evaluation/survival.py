"""Survival metrics on arrays of risks: Harrell's and Uno's C, time-dependent AUC, Brier scores, Breslow's baseline.

A survival model scores each subject with one log-risk (higher = earlier event). Times are months to the event
or to censoring; ``event`` is 1 when the event was seen. Everything that needs the censoring distribution (Uno's
C, the time-dependent AUC, the Brier score) or a baseline hazard (survival probabilities) estimates it from the
**training rows**, never from the rows it scores.

Conventions, as scikit-survival's ``sksurv.metrics`` (they agree to 1e-6 on random inputs, tested):

- A pair (i, j) is comparable when i has the event and j outlives it (t_j > t_i), or is censored at the same
  time (t_j == t_i); risks within ``tied_tol`` count one half.
- The censoring survival G is the reverse Kaplan–Meier of the training rows (censorings at a time happen after
  its events); beyond the last training time it stays at its last value. A scored event where G is 0 has no
  inverse weight: that is an error naming the time (choose horizons / ``tau`` inside the follow-up).
- Uno's C weighs an event by 1/G(t_i)^2 and leaves out events at or after ``tau``; the cumulative/dynamic AUC at
  horizon t takes cases t_i <= t with the event (weight 1/G(t_i)) against controls t_j > t; the Brier score at t
  weighs cases by 1/G(t_i) and controls by 1/G(t); the integrated Brier score is its trapezoid over the horizons
  divided by their span.

No skill: a constant risk has C = 0.5, and the Kaplan–Meier curve of the training rows, given to everyone, is the
no-skill survival whose Brier score a model must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "HORIZONS",
    "BreslowBaseline",
    "brier_scores",
    "calibration_at",
    "censoring_survival",
    "check_survival",
    "cumulative_dynamic_auc",
    "harrell_c",
    "integrated_brier_score",
    "kaplan_meier",
    "noskill_survival",
    "pair_scores",
    "step_at",
    "uno_c",
]

TIED_TOL = 1e-8
#: months at which the report and ``predict`` give survival probabilities: the visits every ADNI phase has
HORIZONS = (12.0, 24.0, 36.0)


def check_survival(
    time: np.ndarray, event: np.ndarray, what: str = "survival targets"
) -> tuple[np.ndarray, np.ndarray]:
    """``time`` (finite, >= 0) and ``event`` (0/1) as float64 / bool arrays of one length; ValueError naming the row."""
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=np.float64)
    if t.ndim != 1 or e.shape != t.shape or t.size == 0:
        raise ValueError(f"{what}: time and event must be non-empty [N] arrays, got {t.shape} and {e.shape}")
    bad = np.flatnonzero(~np.isfinite(t) | (t < 0))
    if bad.size:
        raise ValueError(f"{what}: time on row {bad[0]} is {float(t[bad[0]])!r}; times are months >= 0")
    bad = np.flatnonzero((e != 0) & (e != 1))
    if bad.size:
        raise ValueError(
            f"{what}: event on row {bad[0]} is {float(e[bad[0]])!r}; 1 = event seen, 0 = censored"
        )
    return t, e.astype(bool)


def _counts(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct times with their events, censorings and the number at risk (time >= t)."""
    times, inverse = np.unique(time, return_inverse=True)
    events = np.bincount(inverse, weights=event.astype(float), minlength=times.size)
    total = np.bincount(inverse, minlength=times.size).astype(float)
    at_risk = total[::-1].cumsum()[::-1]
    return times, events, total - events, at_risk


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan–Meier survival: distinct times and S just after each."""
    t, e = check_survival(time, event)
    times, events, _, at_risk = _counts(t, e)
    return times, np.cumprod(1.0 - events / at_risk)


def censoring_survival(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reverse Kaplan–Meier G (censoring as the event; the events at a time leave the risk set first)."""
    t, e = check_survival(time, event)
    times, events, censored, at_risk = _counts(t, e)
    remaining = at_risk - events
    ratio = np.divide(censored, remaining, out=np.zeros_like(censored), where=censored > 0)
    return times, np.cumprod(1.0 - ratio)


def step_at(times: np.ndarray, values: np.ndarray, at: np.ndarray | float) -> np.ndarray:
    """A right-continuous step function (1 before its first time) evaluated ``at`` the given times."""
    idx = np.searchsorted(times, np.asarray(at, dtype=np.float64), side="right")
    return np.r_[1.0, values][idx]


def _inverse_weights(g_times: np.ndarray, g: np.ndarray, at: np.ndarray) -> np.ndarray:
    probability = step_at(g_times, g, at)
    if np.any(probability <= 0):
        first = at[np.flatnonzero(probability <= 0)[0]]
        raise ValueError(
            f"the training rows' censoring survival is 0 at month {first:g}: no subject followed that long "
            "carries a weight (choose horizons or tau inside the follow-up)"
        )
    return 1.0 / probability


def pair_scores(
    risk: np.ndarray, time: np.ndarray, event: np.ndarray, tied_tol: float = TIED_TOL
) -> tuple[np.ndarray, np.ndarray]:
    """``[N, N]`` matrices: whether (i, j) is comparable, and its concordance (1, 1/2 for tied risks, 0)."""
    event = np.asarray(event, dtype=bool)
    comparable = event[:, None] & (
        (time[None, :] > time[:, None]) | ((time[None, :] == time[:, None]) & ~event[None, :])
    )
    diff = risk[:, None] - risk[None, :]
    return comparable, np.where(np.abs(diff) <= tied_tol, 0.5, (diff > 0).astype(float))


def _concordance(
    risk: np.ndarray, time: np.ndarray, event: np.ndarray, weight: np.ndarray, tied_tol: float
) -> float:
    comparable, score = pair_scores(risk, time, event, tied_tol)
    denominator = (weight[:, None] * comparable).sum()
    if denominator == 0:
        return float("nan")  # no comparable pair (e.g. no event): no concordance to estimate
    return float((weight[:, None] * comparable * score).sum() / denominator)


def _risks(risk: np.ndarray, n: int) -> np.ndarray:
    r = np.asarray(risk, dtype=np.float64)
    if r.shape != (n,) or not np.isfinite(r).all():
        raise ValueError(f"risks must be {n} finite numbers, got shape {r.shape}")
    return r


def harrell_c(risk: np.ndarray, time: np.ndarray, event: np.ndarray, *, tied_tol: float = TIED_TOL) -> float:
    """Harrell's concordance index (NaN without a comparable pair)."""
    t, e = check_survival(time, event)
    return _concordance(_risks(risk, t.size), t, e, np.ones_like(t), tied_tol)


def uno_c(
    risk: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    train_time: np.ndarray,
    train_event: np.ndarray,
    *,
    tau: float | None = None,
    tied_tol: float = TIED_TOL,
) -> float:
    """Uno's IPCW concordance (Uno et al. 2011), truncated at ``tau`` when given."""
    t, e = check_survival(time, event)
    r = _risks(risk, t.size)
    g_times, g = censoring_survival(train_time, train_event)
    weight = np.zeros_like(t)
    scored = e & (t < tau) if tau is not None else e
    weight[scored] = _inverse_weights(g_times, g, t[scored]) ** 2
    return _concordance(r, t, e, weight, tied_tol)


def cumulative_dynamic_auc(
    risk: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    train_time: np.ndarray,
    train_event: np.ndarray,
    horizons: Sequence[float],
    *,
    tied_tol: float = TIED_TOL,
) -> np.ndarray:
    """The cumulative/dynamic AUC at each horizon (Uno 2007; NaN where there are no cases or no controls)."""
    t, e = check_survival(time, event)
    r = _risks(risk, t.size)
    g_times, g = censoring_survival(train_time, train_event)
    weight = np.zeros_like(t)
    h = np.asarray(horizons, dtype=np.float64)
    # only events up to the last horizon are ever cases: a later event (followed past the training rows'
    # follow-up, where their censoring survival is 0) needs no weight and must not fail the score
    needed = e & (t <= h.max()) if h.size else np.zeros_like(e)
    weight[needed] = _inverse_weights(g_times, g, t[needed])
    diff = r[:, None] - r[None, :]
    score = np.where(np.abs(diff) <= tied_tol, 0.5, (diff > 0).astype(float))
    out = []
    for horizon in np.asarray(horizons, dtype=np.float64):
        case = e & (t <= horizon)
        control = t > horizon
        if not case.any() or not control.any():
            out.append(float("nan"))
            continue
        w = weight[case]
        out.append(float((w[:, None] * score[np.ix_(case, control)]).sum() / (w.sum() * control.sum())))
    return np.asarray(out)


def brier_scores(
    survival: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    train_time: np.ndarray,
    train_event: np.ndarray,
    horizons: Sequence[float],
) -> np.ndarray:
    """The IPCW Brier score (Graf et al. 1999) of survival probabilities ``[N, H]`` at each horizon."""
    t, e = check_survival(time, event)
    h = np.asarray(horizons, dtype=np.float64)
    s = np.asarray(survival, dtype=np.float64)
    if s.shape != (t.size, h.size):
        raise ValueError(f"survival probabilities must have shape [{t.size}, {h.size}], got {s.shape}")
    g_times, g = censoring_survival(train_time, train_event)
    g_at_horizon = step_at(g_times, g, h)
    g_at_time = step_at(g_times, g, t)
    out = np.empty(h.size)
    for k, horizon in enumerate(h):
        case = e & (t <= horizon)
        control = t > horizon
        if np.any(g_at_time[case] <= 0) or (control.any() and g_at_horizon[k] <= 0):
            raise ValueError(
                f"the training rows' censoring survival is 0 by month {horizon:g}; choose earlier horizons"
            )
        case_term = np.divide(s[:, k] ** 2, g_at_time, out=np.zeros(t.size), where=case)
        control_term = (1.0 - s[:, k]) ** 2 / g_at_horizon[k] * control if control.any() else 0.0
        out[k] = np.mean(case_term + control_term)
    return out


def integrated_brier_score(
    survival: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    train_time: np.ndarray,
    train_event: np.ndarray,
    horizons: Sequence[float],
) -> float:
    """The Brier score integrated over the horizons (trapezoid) and divided by their span."""
    h = np.asarray(horizons, dtype=np.float64)
    if h.size < 2 or np.any(np.diff(h) <= 0):
        raise ValueError(
            f"the integrated Brier score needs at least two increasing horizons, got {h.tolist()}"
        )
    scores = brier_scores(survival, time, event, train_time, train_event, h)
    return float(np.trapezoid(scores, h) / (h[-1] - h[0]))


class BreslowBaseline:
    """Breslow's cumulative baseline hazard, fitted on the training rows' risks: S(t | r) = exp(-H0(t) e^r)."""

    def __init__(self, risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        t, e = check_survival(time, event, "training rows")
        r = _risks(risk, t.size)
        times, events, _, _ = _counts(t, e)
        weight = np.exp(r - r.max())
        at_risk = np.array([weight[t >= u].sum() for u in times]) * np.exp(r.max())
        self.times = times
        self.cumulative_hazard = np.cumsum(events / at_risk)

    @classmethod
    def from_arrays(
        cls, times: Sequence[float], cumulative_hazard: Sequence[float], what: str = "baseline hazard"
    ) -> BreslowBaseline:
        """A baseline stored as its event times and cumulative hazard (a unit record's), checked.

        Raises:
            ValueError: naming ``what``: lengths that differ, no time, times not increasing or negative, or a
                hazard that is not finite, negative or decreasing.
        """
        t = np.asarray(times, dtype=np.float64)
        h = np.asarray(cumulative_hazard, dtype=np.float64)
        if t.ndim != 1 or t.size == 0 or h.shape != t.shape:
            raise ValueError(f"{what}: times and cumulative hazard must be two non-empty lists of one length")
        if not np.isfinite(t).all() or t[0] < 0 or np.any(np.diff(t) <= 0):
            raise ValueError(f"{what}: times must be finite, >= 0 and strictly increasing")
        if not np.isfinite(h).all() or h[0] < 0 or np.any(np.diff(h) < 0):
            raise ValueError(f"{what}: the cumulative hazard must be finite, >= 0 and non-decreasing")
        baseline = cls.__new__(cls)
        baseline.times, baseline.cumulative_hazard = t, h
        return baseline

    def survival(self, risk: np.ndarray, horizons: Sequence[float]) -> np.ndarray:
        """Survival probabilities ``[N, H]`` of subjects with log-risks ``risk`` at the horizons."""
        r = np.asarray(risk, dtype=np.float64)
        idx = np.searchsorted(self.times, np.asarray(horizons, dtype=np.float64), side="right")
        hazard = np.r_[0.0, self.cumulative_hazard][idx]
        return np.exp(-np.exp(r)[:, None] * hazard[None, :])


def noskill_survival(
    train_time: np.ndarray, train_event: np.ndarray, n: int, horizons: Sequence[float]
) -> np.ndarray:
    """The training rows' Kaplan–Meier survival at the horizons, the same for each of ``n`` subjects."""
    times, surv = kaplan_meier(train_time, train_event)
    return np.tile(step_at(times, surv, horizons), (n, 1))


def calibration_at(
    survival: np.ndarray, time: np.ndarray, event: np.ndarray, groups: np.ndarray, horizon: float
) -> list[tuple[int, int, float, float]]:
    """Calibration at one horizon: per group (sorted), its subjects, their mean predicted S(horizon) and the
    Kaplan–Meier estimate of their S(horizon) — NaN when none of them is followed to it and the curve has not
    reached 0 (the estimate is undefined past the last follow-up)."""
    t, e = check_survival(time, event, "calibration subjects")
    s = np.asarray(survival, dtype=np.float64)
    g = np.asarray(groups)
    if s.shape != t.shape or g.shape != t.shape:
        raise ValueError(f"survival {s.shape} and groups {g.shape} must be one per subject ({t.size})")
    out = []
    for group in np.unique(g):
        rows = g == group
        times, km = kaplan_meier(t[rows], e[rows])
        observed = float(step_at(times, km, horizon)) if times[-1] >= horizon or km[-1] == 0 else float("nan")
        out.append((group.item(), int(rows.sum()), float(s[rows].mean()), observed))
    return out
