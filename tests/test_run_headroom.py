"""benchmarks/run_headroom.py pools headroom shares over split seeds: checked against a hand computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from tests.scripts import load_benchmark

CLASSES = np.array(["AD", "CN", "MCI"])


def fake_run(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, dict[int, pd.DataFrame], dict]:
    """Two splits with different test subjects, two methods with one version each, and random oracle labels."""
    rows, oracles, labels = [], {}, {}
    for split in (0, 1):
        ids = [f"s{split}_{i}" for i in range(60)]
        truth = rng.choice(CLASSES, 60)
        oracles[split] = pd.DataFrame(
            {"additive": rng.choice(CLASSES, 60), "interaction": np.where(rng.random(60) < 0.6, truth,
                                                                         rng.choice(CLASSES, 60))},
            index=pd.Index(ids, name="subject_id"),
        )  # fmt: skip
        for method in ("ad-hyperfusion", "ad-concat"):
            p = rng.dirichlet(np.ones(3), 60)
            labels[split, method] = CLASSES[p.argmax(1)]
            for i, subject in enumerate(ids):
                rows.append({"subject_id": subject, "version": "0", "split_seed": split, "method": method,
                             "target": truth[i], **{f"p_{c}": p[i, k] for k, c in enumerate(CLASSES)}})  # fmt: skip
        labels[split, "truth"] = truth
    pd.DataFrame(rows).to_csv(tmp_path / "predictions.csv", index=False)
    return tmp_path, oracles, labels


def test_pooled_shares_and_differences_are_the_means_over_splits(tmp_path):
    module = load_benchmark("run_headroom")
    run, oracles, labels = fake_run(tmp_path, np.random.default_rng(0))
    result = module.pooled(
        run, oracles, ["ad-hyperfusion", "ad-concat"], "ad-hyperfusion", resamples=50, seed=0
    )
    by_method = {r["method"]: r for r in result["rows"]}

    def ba(split, predicted):
        return balanced_accuracy_score(labels[split, "truth"], predicted)

    for method in ("ad-hyperfusion", "ad-concat"):
        mean = np.mean([ba(s, labels[s, method]) for s in (0, 1)])
        additive = np.mean([ba(s, oracles[s]["additive"].to_numpy()) for s in (0, 1)])
        interaction = np.mean([ba(s, oracles[s]["interaction"].to_numpy()) for s in (0, 1)])
        row = by_method[method]
        assert np.isclose(row["BA"], mean) and np.isclose(row["additive"], additive)
        assert np.isclose(row["share"], (mean - additive) / (interaction - additive))
        assert row["share_low"] <= row["share"] <= row["share_high"]
    difference = np.mean([ba(s, labels[s, "ad-hyperfusion"]) - ba(s, labels[s, "ad-concat"]) for s in (0, 1)])
    assert np.isclose(by_method["ad-concat"]["difference_to_reference"], difference)
    assert by_method["ad-hyperfusion"]["difference_to_reference"] == 0.0


def test_one_split_pooled_equals_that_splits_share(tmp_path):
    module = load_benchmark("run_headroom")
    run, oracles, _ = fake_run(tmp_path, np.random.default_rng(1))
    pooled = module.pooled(
        run, {1: oracles[1]}, ["ad-hyperfusion", "ad-concat"], "ad-hyperfusion", 20, seed=0
    )
    alone = [
        r for r in module.shares(run, oracles[1], 20, seed=0, split_seed=1) if r["method"] == "ad-concat"
    ]
    assert np.isclose(pooled["rows"][1]["share"], alone[0]["share"])
