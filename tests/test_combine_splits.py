"""benchmarks/combine_splits.py: splits measured apart, combined; checked against hand computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.scripts import load_benchmark


def test_the_difference_and_its_two_intervals_by_hand():
    script = load_benchmark("combine_splits")
    z = script.Z
    out = script.combined_difference(
        [0.1, 0.0, 0.05], [0.1 - 2 * z * 0.03, -2 * z * 0.04, 0.05], [0.1, 0.0, 0.05]
    )
    # SEs 0.03, 0.04, 0 (each interval is 2z SE wide) -> pooled SE = sqrt(0.03² + 0.04²) / 3 = 0.05 / 3
    assert out["difference"] == pytest.approx(0.05)
    assert out["subjects_high"] - out["difference"] == pytest.approx(z * 0.05 / 3)
    # over splits: sd 0.05, t(2) 4.3027 -> half width 4.3027 * 0.05 / sqrt(3)
    assert out["splits_high"] - out["difference"] == pytest.approx(4.302652729911275 * 0.05 / np.sqrt(3))


def test_combine_reads_each_split_from_its_file_and_the_oracles(tmp_path):
    script = load_benchmark("combine_splits")

    def split(ba_ref, ba_other, difference):
        return {"rows": [{"method": "ref", "BA": ba_ref}, {"method": "other", "BA": ba_other}],
                "paired": [{"method": "other", "difference": difference, "low": difference - 0.1,
                            "high": difference + 0.1}]}  # fmt: skip

    (tmp_path / "a.json").write_text(
        json.dumps({"per_split": {"0": split(0.6, 0.5, 0.1), "1": split(0.7, 0.7, 0)}})
    )
    (tmp_path / "b.json").write_text(json.dumps({"per_split": {"2": split(0.5, 0.45, 0.05)}}))
    splits = script.per_split([f"{tmp_path / 'a.json'}:0,1", f"{tmp_path / 'b.json'}:2"])
    oracles = pd.DataFrame({"split_seed": [0, 1, 2], "additive": [0.5, 0.5, 0.5],
                            "interaction": [0.7, 0.8, 0.9], "cell": ["interaction=1.0"] * 3})  # fmt: skip
    result = script.combine(1.0, splits, oracles, "ref")
    ref, other = result["rows"]
    assert ref["BA"] == pytest.approx(0.6) and ref["share"] == pytest.approx((0.6 - 0.5) / (0.8 - 0.5))
    assert other["difference"] == pytest.approx(0.05) and other["difference_per_split"] == [0.1, 0, 0.05]
    with pytest.raises(ValueError, match="no split seed 3"):
        script.per_split([f"{tmp_path / 'b.json'}:3"])
