"""The simulated cohort's oracles: additive vs volume × sex, fitted on non-test rows, scored on the test partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.study.oracle import (
    has_oracle,
    headroom_share,
    headroom_shares,
    interaction_oracles,
    oracle_predictions,
)


def write_cohort(folder, n: int = 900, seed: int = 0, gated: bool = True):
    """A cohort in the simulator's layout whose diagnosis shows in the left hippocampus of women and the third
    ventricle of men (gated) or in both for everyone (not gated)."""
    rng = np.random.default_rng(seed)
    male = rng.integers(0, 2, n)
    severity = rng.uniform(0, 1, n)
    diagnosis = np.take(["CN", "MCI", "AD"], np.digitize(severity, [1 / 3, 2 / 3]))
    noise = rng.normal(0, 0.05, (n, 2))
    shows_left = (male == 0) if gated else np.ones(n, bool)
    shows_third = (male == 1) if gated else np.ones(n, bool)
    lookalike = rng.uniform(0, 1, n)
    hip = -0.4 * np.where(shows_left, severity, lookalike) + noise[:, 0]
    ven = 0.4 * np.where(shows_third, severity, lookalike) + noise[:, 1]
    ids = [f"S{i:04d}" for i in range(n)]
    pd.DataFrame(
        {"PTID": ids, "diagnosis": diagnosis, "realised_logf_hippocampus_left": hip,
         "realised_logf_third_ventricle": ven}
    ).to_csv(folder / "latents.csv", index=False)  # fmt: skip
    table = pd.DataFrame({"PTID": ids, "PTGENDER": np.where(male == 1, "Male", "Female")})
    for column in ("AGE", "PTEDUCAT", "APOE4", "ABETA", "PTAU", "TAU", "FDG", "AV45"):
        table[column] = rng.normal(size=n).round(3).astype(str)
    table.loc[:5, "ABETA"] = ">1700"  # censored strings are read at their bound
    table.loc[6:40, "FDG"] = np.nan
    table.to_csv(folder / "ADNIMERGE.csv", index=False)
    return pd.DataFrame({"subject_id": ids, "partition": np.arange(n) % 5})


def test_the_interaction_oracle_finds_the_gated_signal(tmp_path):
    partitions = write_cohort(tmp_path)
    assert has_oracle(tmp_path)
    out = interaction_oracles(tmp_path, partitions, test_partition=4)
    assert out["interaction"] > out["additive"] + 0.05
    assert out["headroom"] == pytest.approx(out["interaction"] - out["additive"])


def test_the_oracles_predictions_are_the_test_subjects_classes(tmp_path):
    """Per test subject: its true class and each oracle's, in class names; every other row is left out."""
    partitions = write_cohort(tmp_path)
    predicted = oracle_predictions(tmp_path, partitions, test_partition=4)
    test_ids = partitions.loc[partitions["partition"] == 4, "subject_id"]
    assert list(predicted.index) == list(test_ids)
    diagnosis = pd.read_csv(tmp_path / "latents.csv").set_index("PTID")["diagnosis"]
    assert list(predicted["target"]) == list(diagnosis.loc[test_ids])
    assert set(predicted["additive"]) | set(predicted["interaction"]) <= {"CN", "MCI", "AD"}
    # the interaction oracle reads the gated signal: right more often than the additive one
    assert (predicted["interaction"] == predicted["target"]).mean() > (
        predicted["additive"] == predicted["target"]
    ).mean()


def test_without_gating_there_is_no_headroom(tmp_path):
    out = interaction_oracles(tmp_path, write_cohort(tmp_path, gated=False), test_partition=4)
    assert abs(out["headroom"]) < 0.03


def test_partitions_must_cover_the_cohort(tmp_path):
    partitions = write_cohort(tmp_path)
    with pytest.raises(ValueError, match="do not cover subject 'S0899'"):
        interaction_oracles(tmp_path, partitions.iloc[:-1], test_partition=4)


def test_a_folder_without_latents_has_no_oracle(tmp_path):
    assert not has_oracle(tmp_path)


def test_headroom_share_by_hand():
    assert headroom_share(0.70, 0.60, 0.80) == pytest.approx(0.5)
    assert headroom_share(0.55, 0.60, 0.80) == pytest.approx(-0.25)
    assert np.isnan(headroom_share(0.70, 0.60, 0.60))


def test_the_oracles_read_the_record_the_methods_read(tmp_path):
    partitions = write_cohort(tmp_path)
    short = interaction_oracles(tmp_path, partitions, test_partition=4, continuous=("AGE",))
    assert short["interaction"] > short["additive"] + 0.05  # sex alone is enough to gate
    ungated = interaction_oracles(tmp_path, partitions, test_partition=4, continuous=("AGE",), gate=None)
    assert ungated["headroom"] == 0.0  # without sex in the record nothing can gate


def test_headroom_shares_per_run_use_their_split_seeds_oracles():
    results = pd.DataFrame(
        [("m", 0, "0", "ensemble", "BA", 0.70), ("m", 1, "0", "ensemble", "BA", 0.62),
         ("m", 0, "0", "0", "BA", 0.99), ("no-skill", 0, "0", "ensemble", "BA", 1 / 3),
         ("m", 0, "0", "ensemble", "AUC", 0.9)],
        columns=["method", "split_seed", "version", "fold", "metric", "value"],
    )  # fmt: skip
    oracles = pd.DataFrame({"split_seed": [0, 1], "additive": [0.60, 0.60], "interaction": [0.80, 0.70]})
    shares = headroom_shares(results, oracles)
    assert list(shares["method"]) == ["m", "m"]  # ensembles only, no-skill left out
    np.testing.assert_allclose(shares["share"], [0.5, 0.2])
