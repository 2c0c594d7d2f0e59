"""Survival targets (time to conversion, event) derived from a longitudinal visits table.

A survival cohort such as "baseline MCI, time to dementia" is not a column of ADNIMERGE: it is read off the
visits of each subject. `derive_conversion` does that with one rule per awkward case, so the same table always
gives the same targets and nothing is guessed silently:

* the **baseline** is the visit at months 0 (ADNIMERGE's ``M`` counts months since baseline); a subject whose
  month-0 visit is absent or has no diagnosis is excluded and counted — its at-risk status at the time origin
  is unknown, and shifting the origin to a later visit would mix two time scales;
* visits are taken in **month order**, whatever their row order;
* two rows of one subject at the **same month** with different diagnoses are an error naming the subject, the
  month and the lines; rows that agree (or where only one has a diagnosis) are one visit;
* a visit with a **missing diagnosis** is skipped: neither an event nor the last follow-up;
* a baseline **already in an event class** is not at risk and is excluded (counted); so is a baseline whose
  diagnosis is in neither list (e.g. CN for an MCI cohort);
* the **event** is the first later visit whose diagnosis is an event class; ``time`` is its month (the
  conversion happened in the interval since the previous visit; the visit is when it was seen). A later
  reversion does not undo it: a dementia diagnosis that is later revised is still the first time the disease
  was judged to have crossed the threshold, and dropping or censoring such subjects would bias the cohort
  towards slow converters. Reversions are counted;
* otherwise the subject is **censored** at the last visit with a diagnosis (any diagnosis — a visit judged CN
  is still a visit without conversion);
* a subject with **no follow-up** diagnosis after baseline is excluded (counted): time 0 carries no information;
* **months** that are missing, not numbers or negative are errors naming the row and column.

Pure function: pandas in, pandas out, no file I/O; rows are indexed by file line − 2 as
`hyperfusion.data.tables` reads them, so messages name the file's lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hyperfusion.data.censor import parse_numeric
from hyperfusion.data.tables import lines, present
from hyperfusion.text import closest, shown

#: The `ConversionSummary` fields counted while reading the visits.
_COUNTED = (
    "no_baseline", "baseline_event", "baseline_not_at_risk", "no_follow_up", "reverted",
    "visits_without_diagnosis", "duplicate_visits",
)  # fmt: skip


@dataclass(frozen=True)
class ConversionSummary:
    """How many subjects each rule kept, censored or excluded, for ``validate`` to print.

    ``subjects`` counts every subject in the table; ``no_baseline`` … ``no_follow_up`` the excluded ones by rule;
    ``reverted`` the events whose later visits were not all in an event class; ``visits_without_diagnosis`` and
    ``duplicate_visits`` count visits; ``other_diagnoses`` counts the follow-up visits of kept subjects whose
    diagnosis is in neither list, by diagnosis.
    """

    subjects: int
    events: int
    censored: int
    no_baseline: int
    baseline_event: int
    baseline_not_at_risk: int
    no_follow_up: int
    reverted: int
    visits_without_diagnosis: int
    duplicate_visits: int
    other_diagnoses: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        """Subjects with a survival target (events + censored)."""
        return self.events + self.censored

    def describe(self) -> str:
        """One line: what was kept and why the others were not."""
        other = ", ".join(f"{k} {v}" for k, v in sorted(self.other_diagnoses.items()))
        return (
            f"{self.kept} of {self.subjects} subjects at risk ({self.events} events, {self.censored} censored); "
            f"excluded: {self.no_baseline} without a month-0 diagnosis, {self.baseline_event} already converted "
            f"at baseline, {self.baseline_not_at_risk} not at risk at baseline, {self.no_follow_up} without "
            f"follow-up; {self.reverted} reverted after converting (kept as events); "
            f"{self.visits_without_diagnosis} visits without a diagnosis skipped, {self.duplicate_visits} "
            f"duplicate visits merged" + (f"; other diagnoses at follow-up: {other}" if other else "")
        )


def derive_conversion(
    visits: pd.DataFrame,
    *,
    subject: str,
    months: str,
    diagnosis: str,
    at_risk: Sequence[str],
    event: Sequence[str],
    source: str,
) -> tuple[pd.DataFrame, ConversionSummary]:
    """Per-subject ``time`` (float months) and ``event`` (int 1/0), indexed by subject in first-seen order.

    Args:
        visits: one row per visit, indexed by file line − 2 (as `hyperfusion.data.tables` reads a table).
        subject, months, diagnosis: the columns holding the subject id, the months since baseline and the
            diagnosis at that visit.
        at_risk: diagnoses that make a baseline at risk (e.g. ``["MCI"]``).
        event: diagnoses that are the event (e.g. ``["Dementia"]``).
        source: the table's file, for messages.

    Raises:
        ValueError: a missing column; empty or overlapping ``at_risk`` / ``event``; a label in them that no visit
            has but that resembles one that does (a typo), or a list none of whose labels occurs; a missing
            subject id; months missing, not a number or negative; one subject's visits at the same month with
            different diagnoses. Each names the file and the row, column, subject or value.
    """
    at_risk_set, event_set = _checked_labels(at_risk, event, source)
    for key, column in (("subject", subject), ("months", months), ("diagnosis", diagnosis)):
        if column not in visits.columns:
            hint = closest(column, [str(c) for c in visits.columns])
            raise ValueError(
                f"{source}: from_visits.{key} names column {shown(column)}, which the table does not have"
                + (f" (did you mean {shown(hint)}?)" if hint else "")
            )
    ids = _checked_subjects(visits[subject], subject, source)
    month = _checked_months(visits[months], months, source)
    dx = pd.Series([_diagnosis(v) for v in visits[diagnosis]], index=visits.index, dtype=object)
    _check_labels_occur(dx, {"at_risk": at_risk_set, "event": event_set}, diagnosis, source)

    frame = pd.DataFrame(
        {"subject": ids.to_numpy(), "month": month.to_numpy(), "dx": dx.to_numpy(), "row": visits.index}
    )
    order = pd.unique(frame["subject"])
    counts: Counter[str] = Counter()
    other: Counter[str] = Counter()
    times, events, kept = [], [], []
    for sid, rows in frame.groupby("subject", sort=False):
        timeline = _timeline(rows, str(sid), source, counts)
        base = timeline.get(0.0)
        if base is None:
            counts["no_baseline"] += 1
            continue
        if base in event_set:
            counts["baseline_event"] += 1
            continue
        if base not in at_risk_set:
            counts["baseline_not_at_risk"] += 1
            continue
        later = [(m, d) for m, d in sorted(timeline.items()) if m > 0]
        hit = next((i for i, (_, d) in enumerate(later) if d in event_set), None)
        if hit is not None:
            time, happened = later[hit][0], 1
            if any(d not in event_set for _, d in later[hit + 1 :]):
                counts["reverted"] += 1
        elif later:
            time, happened = later[-1][0], 0
        else:
            counts["no_follow_up"] += 1
            continue
        other.update(d for _, d in later if d not in at_risk_set | event_set)
        times.append(time)
        events.append(happened)
        kept.append(sid)
    out = pd.DataFrame(
        {"time": np.asarray(times, dtype=np.float64), "event": np.asarray(events, dtype=np.int64)},
        index=pd.Index(kept, name=subject, dtype=object),
    )
    summary = ConversionSummary(
        subjects=len(order),
        events=int(out["event"].sum()),
        censored=int((out["event"] == 0).sum()),
        other_diagnoses=dict(other),
        **{name: counts[name] for name in _COUNTED},
    )
    return out, summary


def _checked_labels(at_risk: Sequence[str], event: Sequence[str], source: str) -> tuple[set[str], set[str]]:
    if isinstance(at_risk, str) or isinstance(event, str):
        raise ValueError(f"{source}: from_visits.at_risk and from_visits.event are lists of diagnoses")
    at_risk_set, event_set = {str(v).strip() for v in at_risk}, {str(v).strip() for v in event}
    for key, labels in (("at_risk", at_risk_set), ("event", event_set)):
        if not labels or "" in labels:
            raise ValueError(f"{source}: from_visits.{key} must list at least one non-empty diagnosis")
    both = sorted(at_risk_set & event_set)
    if both:
        raise ValueError(
            f"{source}: diagnosis {shown(both[0])} is in both from_visits.at_risk and from_visits.event"
        )
    return at_risk_set, event_set


def _check_labels_occur(dx: pd.Series, groups: dict[str, set[str]], column: str, source: str) -> None:
    """A list none of whose diagnoses occurs, or a missing label close to one that does, is a misconfiguration.

    A label that is absent but resembles a value in the table is a typo or another release's spelling
    (``AD`` vs ``Dementia``); a list with no label present at all would give no subject at risk or no event.
    """
    seen = {d for d in dx if d is not None}
    for key, labels in groups.items():
        for label in sorted(labels - seen):
            hint = closest(label, seen - labels)
            if hint is not None:
                raise ValueError(
                    f"{source}: column {shown(column)}: no visit has diagnosis {shown(label)} of from_visits.{key}"
                    f" (did you mean {shown(hint)}?)"
                )
        if not labels & seen:
            raise ValueError(
                f"{source}: column {shown(column)}: no visit has any diagnosis of from_visits.{key} "
                f"{sorted(labels)}; the values are {sorted(seen)[:10]}"
            )


def _diagnosis(value: object) -> str | None:
    """A cell's diagnosis, or None when it is missing or blank."""
    text = str(value).strip() if present(value) else ""
    return text or None


def _checked_subjects(values: pd.Series, column: str, source: str) -> pd.Series:
    ids = values.map(lambda v: str(v).strip() if present(v) else "")
    blank = ids.index[ids == ""]
    if len(blank):
        raise ValueError(f"{source}: column {shown(column)}, {lines(blank[:1])}: the subject id is missing")
    return ids


def _checked_months(values: pd.Series, column: str, source: str) -> pd.Series:
    month, _ = parse_numeric(values, column=column, source=source, parse_censored=False)
    missing = month.index[month.isna()]
    if len(missing):
        raise ValueError(
            f"{source}: column {shown(column)}, {lines(missing[:1])}: months since baseline missing"
        )
    negative = month.index[month < 0]
    if len(negative):
        bad = values[negative[0]]
        raise ValueError(
            f"{source}: column {shown(column)}, {lines(negative[:1])}: months since baseline {shown(bad)} "
            "is negative"
        )
    return month


def _timeline(rows: pd.DataFrame, sid: str, source: str, counts: Counter[str]) -> dict[float, str]:
    """Month → diagnosis for one subject: visits without a diagnosis skipped, agreeing duplicates merged."""
    timeline: dict[float, str] = {}
    first_row: dict[float, object] = {}
    for month, dx, row in zip(rows["month"], rows["dx"], rows["row"]):
        if not present(dx):
            counts["visits_without_diagnosis"] += 1
            continue
        if month in timeline:
            if timeline[month] != dx:
                raise ValueError(
                    f"{source}: subject {shown(sid)} has two visits at month {month:g} with different diagnoses "
                    f"({shown(timeline[month])} and {shown(dx)}, {lines([first_row[month], row])})"
                )
            counts["duplicate_visits"] += 1
            continue
        timeline[month] = dx
        first_row[month] = row
    return timeline
