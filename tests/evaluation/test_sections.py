"""Report sections from hand-made tables: the flags appear exactly where the intervals and thresholds say."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hyperfusion.evaluation import sections
from hyperfusion.evaluation.frames import HISTORY_COLUMNS


def _skill() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("HyperFusion", 0, 0, "BA", 0.20, 0.10, 0.30),
            ("HyperFusion", 0, 1, "BA", 0.15, 0.05, 0.25),
            ("Imaging", 0, 0, "BA", 0.03, -0.02, 0.08),  # includes zero
            ("Imaging", 0, 1, "BA", 0.06, 0.01, 0.11),
            ("Tabular", 0, 0, "MAE", -0.5, -0.9, -0.1),  # below zero
        ],
        columns=["method", "split_seed", "version", "metric", "difference", "low", "high"],
    )


def _rows(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


def test_skill_flags_exactly_the_runs_whose_interval_includes_zero() -> None:
    text = sections.skill_section(_skill())
    assert "## Better than no skill?" in text
    hf = _rows(text, "| HyperFusion |")
    assert hf[0].endswith("| better in every run |")
    assert all("not better" not in line and "worse" not in line for line in hf)
    imaging = _rows(text, "| Imaging |")
    assert imaging[0].endswith("| **not better than no skill** in 1 of 2 runs |")
    assert imaging[1] == "| Imaging | 0 | 0 | BA | +0.030 [-0.020, +0.080] | **not better than no skill** |"
    assert imaging[2].endswith("| better than no skill |")
    assert _rows(text, "| Tabular | 0 | 0 | MAE |")[0].endswith("| **worse than no skill** |")
    assert _rows(text, "| Tabular | MAE |")[0].endswith("| **not better than no skill** in 1 of 1 runs |")
    assert text.count("**not better than no skill**") == 4  # legend, two summaries, one run
    assert "95 % interval" in text


def test_skill_section_reads_bootstrap_output() -> None:
    from hyperfusion.evaluation.bootstrap import bootstrap_differences

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    p = np.c_[1 - y * 0.8 - 0.1, y * 0.8 + 0.1]
    base = np.tile([0.5, 0.5], (40, 1))
    out = bootstrap_differences(p, base, y, ["BA", "AUC"], n_resamples=200, seed=int(rng.integers(10)))
    skill = out.assign(method="A", split_seed=0, version=0, confidence=0.9)
    text = sections.skill_section(skill)
    assert "90 % interval" in text
    assert text.count("**not better") == 1  # the legend only


def test_treatments_table_shows_every_column() -> None:
    t = pd.DataFrame(
        {
            "method": ["Tabular", "HyperFusion"],
            "parameters": [1234, 56789],
            "warm start": ["–", "Tabular"],
            "epochs": [100, 250],
            "learning rate": [1e-3, np.nan],
        }
    )
    text = sections.treatments_section(t)
    assert "## How each method was trained" in text
    assert "| method | parameters | warm start | epochs | learning rate |" in text
    assert "| HyperFusion | 56789 | Tabular | 250 | – |" in text
    assert "| Tabular | 1234 | – | 100 | 0.001 |" in text


def test_learning_section_best_epoch_by_metric_direction() -> None:
    rows = []
    for method, name, values in (("A", "BA", [0.5, 0.7, 0.6]), ("B", "MAE", [5.0, 4.0, 4.5])):
        for epoch, v in enumerate(values):
            rows.append((method, 0, 0, 0, epoch, 1.0, 1.0, v, name))
    text = sections.learning_section(pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)), "curves.png")
    assert "![Learning curves](curves.png)" in text
    assert "| A | BA | 2 | 1 | 0.700 | 0.600 |" in text  # higher is better
    assert "| B | MAE | 2 | 1 | 4.000 | 4.500 |" in text  # lower is better


def test_entropy_section_by_hand() -> None:
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]])
    df = pd.DataFrame(
        {
            "method": "A",
            "split_seed": 0,
            "version": "0",
            "subject_id": ["a", "b", "c"],
            "p_CN": p[:, 0],
            "p_AD": p[:, 1],
            "target": ["CN", "CN", "AD"],
        }
    )
    text = sections.entropy_section(df)
    ln2 = np.log(2)
    # true CN: ln 2 and 0; true AD: ln 2; correct (argmax 0 on ties): a, b; incorrect: c
    assert (
        f"| A | 3 | {2 * ln2 / 3:.3f} | {ln2 / 2:.3f} (n = 2) | {ln2:.3f} (n = 1) | {ln2 / 2:.3f} (n = 2) |"
        in text
    )
    assert "ln 2 = 0.693" in text


def test_p_formatting() -> None:
    assert sections.format_p(0.0004) == "p < 0.001"
    assert sections.format_p(0.0286) == "p = 0.029"
    assert sections.format_p(float("nan")) == "–"


def test_paired_section_prints_a_note_shared_by_every_row_once() -> None:
    from hyperfusion.evaluation.stats import compare_paired

    rows = []
    for method, shift in (("HF", 0.0), ("A", -0.05), ("B", 0.02)):
        for run, v in enumerate([0.70, 0.72, 0.69, 0.75]):
            rows.append(
                (method, run // 2, run % 2, "ensemble", "BA", v + shift + 0.001 * run * (method == "B"))
            )
    df = pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"])
    paired = compare_paired(df, "HF")
    text = sections.paired_section(paired, "HF", test_train_ratio=None, fold="ensemble")
    assert text.count("Wilcoxon cannot reach p < 0.05 with 4 non-zero difference(s)") == 1
    assert text.count("corrected t-test not run") == 1
    assert "Every row: " in text and "not run: no n_test/n_train was given" in text
    assert "| BA | A | 4 | -0.050 [-0.050, -0.050] |" in text


def _members() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("HyperFusion", "Imaging", 0, "0", "BA", -0.05, -0.12, 0.02),
            ("HyperFusion", "Imaging", 0, "1", "BA", -0.08, -0.15, -0.01),  # the whole interval below zero
            ("HyperFusion", "Tabular", 0, "0", "BA", 0.04, -0.03, 0.11),
            ("HyperFusion", "Tabular", 0, "1", "BA", -0.01, -0.08, 0.06),
        ],
        columns=["method", "baseline", "split_seed", "version", "metric", "difference", "low", "high"],
    )


def test_members_flags_a_fusion_below_one_of_its_single_modality_models() -> None:
    text = sections.members_section(_members())
    assert "## Better than its own single-modality models?" in text
    assert "Flagged: HyperFusion < Imaging (BA -0.065)." in text
    imaging = _rows(text, "| HyperFusion | Imaging |")[0]
    assert imaging.endswith("| **below Imaging** (in 2 of 2 runs; interval below zero in 1) |")
    assert "| -0.065 |" in imaging
    tabular = _rows(text, "| HyperFusion | Tabular |")[0]
    assert tabular.endswith("| not below (below in 1 of 2 runs) |")
    assert sections.members_section(_members().iloc[0:0]) == ""


def _results(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(m, 0, v, "ensemble", "BA", ba) for m, v, ba in rows],
        columns=["method", "split_seed", "version", "fold", "metric", "value"],
    )


def test_reader_share_is_the_image_models_skill_over_the_readers_per_run() -> None:
    results = _results(
        [("Imaging", 0, 0.43), ("Imaging", 1, 0.38), ("Reader", 0, 0.53), ("Reader", 1, 0.43),
         ("no-skill", 0, 1 / 3), ("no-skill", 1, 1 / 3)]
    )  # fmt: skip
    text = sections.reader_section(results, image_methods=["Imaging"], reader="Reader", no_skill="no-skill")
    # by hand: (0.43 − 1/3) / (0.53 − 1/3) = 0.4915, (0.38 − 1/3) / (0.43 − 1/3) = 0.4828 → 49 %
    row = _rows(text, "| Imaging |")[0]
    assert row == "| Imaging | 2 | 0.405 | 0.480 | 0.333 | 49 % |"
    assert "Imaging reaches 49 % of the crop reader's skill above chance." in text


def test_a_reader_at_chance_gives_no_share() -> None:
    results = _results([("Imaging", 0, 0.40), ("Reader", 0, 0.30), ("no-skill", 0, 1 / 3)])
    text = sections.reader_section(results, image_methods=["Imaging"], reader="Reader", no_skill="no-skill")
    assert _rows(text, "| Imaging |")[0].endswith("| – (1 runs: reader not above no skill) |")
    assert (
        sections.reader_section(results, image_methods=["Imaging"], reader="Other", no_skill="no-skill") == ""
    )


def test_rows_without_any_number_are_folded_into_one_line() -> None:
    from hyperfusion.evaluation.stats import compare_paired

    rows = [(m, 0, 0, "ensemble", "BA", v) for m, v in (("HF", 0.7), ("A", 0.6))]
    rows += [(m, 0, 0, "ensemble", "AUC", np.nan) for m in ("HF", "A")]  # undefined on this test set
    df = pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"])
    paired = compare_paired(df, "HF")
    text = sections.paired_section(paired, "HF", test_train_ratio=None, fold="ensemble")
    assert "– [–, –]" not in text
    dashes = paired[paired["metric"] == "AUC"]
    assert len(dashes) == 1 and "No paired value (too few pairs or runs) for 1: A AUC (" in text
    kept = paired[paired["metric"] == "BA"].iloc[0]
    assert np.isfinite(kept["mean_difference"]) and "| BA | A | 1 | -0.100 [" in text  # numbers unchanged
