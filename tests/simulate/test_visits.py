"""Tests for hyperfusion.simulate.visits: conversion times, the visit schedule, and the written visit rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hyperfusion.cli import main
from hyperfusion.data.conversion import derive_conversion
from hyperfusion.data.manifest import load_manifest
from hyperfusion.data.tables import read_table
from hyperfusion.simulate import simulate_ad
from hyperfusion.simulate.ad import make_ad_cohort
from hyperfusion.simulate.visits import (
    LAST_VISIT,
    SCHEDULE,
    WEIBULL_SCALE_MONTHS,
    WEIBULL_SHAPE,
    add_visits,
    conversion_months,
    visit_table,
)
from tests.faults import fault

KW = dict(voxel_size=8.0, template="phantom", progress=False, workers=1)
FROM_VISITS = dict(subject="PTID", months="M", diagnosis="DX", at_risk=["MCI"], event=["Dementia"])


def test_conversion_times_are_weibull_with_proportional_hazards() -> None:
    rng = np.random.default_rng(0)
    base = conversion_months(rng, np.zeros(20000))
    assert stats.kstest(base, stats.weibull_min(WEIBULL_SHAPE, scale=WEIBULL_SCALE_MONTHS).cdf).pvalue > 0.01
    # hazard ratio 2: S(t) = S0(t)^2, i.e. the scale shrinks by 2^(-1/k)
    doubled = conversion_months(rng, np.full(20000, np.log(2.0)))
    scale = WEIBULL_SCALE_MONTHS * 2 ** (-1 / WEIBULL_SHAPE)
    assert stats.kstest(doubled, stats.weibull_min(WEIBULL_SHAPE, scale=scale).cdf).pvalue > 0.01


def test_visits_leave_the_drawn_cohort_unchanged() -> None:
    cohort = make_ad_cohort(60, seed=2)
    with_visits = add_visits(cohort)
    pd.testing.assert_frame_equal(with_visits.table, cohort.table)
    pd.testing.assert_frame_equal(with_visits.latents[cohort.latents.columns], cohort.latents)
    np.testing.assert_array_equal(with_visits.log_f, cohort.log_f)
    assert cohort.visits is None and with_visits.visits is not None


def test_schedule_diagnoses_and_latents() -> None:
    cohort = add_visits(make_ad_cohort(300, seed=1))
    visits, latents = cohort.visits, cohort.latents.set_index("PTID")
    assert set(visits["M"]) <= set(SCHEDULE) and (visits.groupby("PTID")["M"].min() == 0).all()
    last = visits.groupby("PTID")["M"].max()
    assert (last <= latents.loc[last.index, "phase"].map(LAST_VISIT)).all()
    np.testing.assert_array_equal(last.to_numpy(), latents.loc[last.index, "last_visit_months"].to_numpy())
    group = latents.loc[visits["PTID"], "diagnosis"].to_numpy()
    dx, known = visits["DX"].to_numpy(), visits["DX"].notna().to_numpy()
    assert set(dx[(group == "CN") & known]) == {"CN"} and set(dx[(group == "AD") & known]) == {"Dementia"}
    mci = group == "MCI"
    converted = visits["M"].to_numpy() >= latents.loc[visits["PTID"], "conversion_months"].to_numpy()
    assert (dx[mci & known] == np.where(converted[mci & known], "Dementia", "MCI")).all()
    assert latents.loc[latents["diagnosis"] != "MCI", "conversion_months"].isna().all()
    assert visits.loc[visits["M"] == 0, "DX"].notna().all()  # the baseline always has its diagnosis
    assert 0 < (~known).mean() < 0.05  # a few follow-up visits without a diagnosis, as in ADNIMERGE


def _derive_from_written(table: pd.DataFrame, tmp_path: Path) -> tuple[pd.DataFrame, object]:
    path = tmp_path / "ADNIMERGE.csv"
    path.write_text(table.to_csv(index=False))
    return derive_conversion(read_table(path, ["", "NA"]), **FROM_VISITS, source=str(path))


def test_written_visits_recover_the_interval_censored_times(tmp_path: Path) -> None:
    cohort = add_visits(make_ad_cohort(400, seed=3))
    table = visit_table(cohort.table, cohort.visits)
    targets, summary = _derive_from_written(table, tmp_path)
    latents = cohort.latents.set_index("PTID")
    mci = latents.index[latents["diagnosis"] == "MCI"]
    assert set(targets.index) <= set(mci) and summary.kept == len(targets)
    assert summary.baseline_not_at_risk == (latents["diagnosis"] == "CN").sum()
    assert summary.baseline_event == (latents["diagnosis"] == "AD").sum()
    assert summary.kept + summary.no_follow_up == len(mci)
    diagnosed = cohort.visits.dropna(subset=["DX"])
    for sid, row in targets.iterrows():
        t = latents.loc[sid, "conversion_months"]
        months = sorted(diagnosed.loc[diagnosed["PTID"] == sid, "M"])
        if row["event"] == 1:  # converted in (previous diagnosed visit, the visit it was seen]
            previous = max(m for m in months if m < row["time"])
            assert previous < t <= row["time"], sid
        else:  # censored at the last diagnosed visit, still MCI there
            assert row["time"] == months[-1] and t > row["time"], sid
    assert 0.15 < targets["event"].mean() < 0.6  # both events and censoring are common


def test_written_table_layout(tmp_path: Path) -> None:
    cohort = add_visits(make_ad_cohort(20, seed=4))
    table = visit_table(cohort.table.assign(image="x.nii.gz"), cohort.visits)
    assert list(table.columns) == [*cohort.table.columns, "image", "M", "DX"]
    assert len(table) == len(cohort.visits)
    baseline = table[table["VISCODE"] == "bl"].reset_index(drop=True)
    pd.testing.assert_frame_equal(baseline[list(cohort.table.columns)], cohort.table)
    follow = table[table["VISCODE"] != "bl"]
    assert follow[["ABETA", "FDG", "image"]].isna().all().all()
    assert (follow["VISCODE"] == follow["M"].map(lambda m: f"m{m:02d}")).all()
    ages = follow["PTID"].map(cohort.table.set_index("PTID")["AGE"])
    np.testing.assert_array_equal(follow["AGE"].to_numpy(), ages.to_numpy())
    first = table.groupby("PTID", sort=False).head(1)
    assert list(first["PTID"]) == list(cohort.table["PTID"]) and (first["M"] == 0).all()


def test_default_cohort_loads_the_same_with_visits(tmp_path: Path) -> None:
    plain = load_manifest(simulate_ad(tmp_path / "plain", n=6, seed=1, **KW))
    spec = simulate_ad(tmp_path / "visits", n=6, seed=1, visits=True, **KW)
    with_visits = load_manifest(spec)
    columns = [c for c in plain.frame.columns if c not in ("image", "line")]
    pd.testing.assert_frame_equal(plain.frame[columns], with_visits.frame[columns])
    assert "visits" not in json.loads((tmp_path / "plain" / "simulation.json").read_text())
    assert json.loads((tmp_path / "visits" / "simulation.json").read_text())["visits"] is True
    assert (spec.parent / "cohort.yaml").read_text() == (tmp_path / "plain" / "cohort.yaml").read_text()
    for image in ("images/" + p + ".nii.gz" for p in plain.frame["subject_id"]):
        assert (tmp_path / "plain" / image).read_bytes() == (tmp_path / "visits" / image).read_bytes()


def test_visits_argument_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="visits must be True or False"):
        simulate_ad(tmp_path, n=4, visits="yes", **KW)  # type: ignore[arg-type]


def test_cli_writes_visits(tmp_path: Path) -> None:
    args = ["simulate", "ad", "--n", "6", "--voxel-size", "8", "--template", "phantom", "--workers", "1"]
    assert main([*args, "--visits", "--no-progress", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "ADNIMERGE.csv")
    assert {"M", "DX"} <= set(table.columns) and (table["VISCODE"] == "bl").sum() == 6 and len(table) > 6


@fault("simulator", "--visits for the brain-age cohort", "exit status 2: for the ad cohort only")
def test_cli_visits_is_for_the_ad_cohort_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "brain-age", "--out", str(tmp_path), "--visits"]) == 2
    assert "--visits is for the ad cohort only" in capsys.readouterr().err
