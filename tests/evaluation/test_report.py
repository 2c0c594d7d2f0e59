"""Report: Table 3 layout from a results table, plots written atomically as readable PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from hyperfusion.evaluation import report
from hyperfusion.evaluation.metrics import classification_metrics, regression_metrics
from hyperfusion.evaluation.stats import compare_to_reference

NAMES = ["CN", "MCI", "AD"]


def _classification_results(
    n_runs: int = 4, methods: tuple[str, ...] = ("Imaging", "HyperFusion")
) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for k, method in enumerate(methods):
        for run in range(n_runs):
            y = rng.integers(0, 3, 60)
            logits = rng.normal(size=(60, 3))
            logits[np.arange(60), y] += 0.5 + k
            p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            for metric, value in classification_metrics(p, y, NAMES).items():
                rows.append((method, run // 2, run % 2, "ensemble", metric, value))
            rows.append((method, run // 2, run % 2, "0", "BA", 0.0))  # a fold row: must be ignored
    return pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"])


def _regression_results() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for k, method in enumerate(("Imaging", "HyperFusion")):
        for version in range(3):
            t = rng.uniform(45, 80, 50)
            sex = rng.choice(["F", "M"], 50)
            q = t + rng.normal(scale=5 - 2 * k, size=50)
            for metric, value in regression_metrics(q, t, sex).items():
                rows.append((method, 0, version, "ensemble", metric, value))
    return pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"])


def test_summary_values_match_a_hand_computation() -> None:
    df = _classification_results()
    summary = report.summary_table(df).set_index(["method", "metric"])
    ens = df[(df["fold"] == "ensemble") & (df["method"] == "Imaging") & (df["metric"] == "BA")]["value"]
    assert summary.loc[("Imaging", "BA"), "mean"] == pytest.approx(ens.mean())
    assert summary.loc[("Imaging", "BA"), "std"] == pytest.approx(ens.std(ddof=1))
    tests = compare_to_reference(df, "HyperFusion").set_index(["method", "metric"])
    assert summary.loc[("Imaging", "AUC"), "p_value"] == pytest.approx(
        tests.loc[("Imaging", "AUC"), "p_value"]
    )
    assert np.isnan(summary.loc[("HyperFusion", "BA"), "p_value"])
    assert not any(m.startswith("cm/") for m in summary.index.get_level_values("metric"))


def test_markdown_table_layout() -> None:
    df = _classification_results()
    text = report.markdown_table(df)
    lines = text.splitlines()
    assert lines[0] == "| method | runs | BA | PRC | F1 | AUC | TP-CN | TP-MCI | TP-AD |"
    imaging = next(line for line in lines if line.startswith("| Imaging |"))
    hyper = next(line for line in lines if line.startswith("| HyperFusion |"))
    summary = report.summary_table(df).set_index(["method", "metric"])
    mean, std = summary.loc[("Imaging", "BA"), ["mean", "std"]]
    assert f"| 4 | {mean:.3f} ± {std:.3f} (p = 0.029)" in imaging  # 4 vs 4 separated runs: p = 2/70
    assert "(p" not in hyper
    assert "two-sided Mann–Whitney U" in text and "p n/a" not in text


def test_too_few_runs_prints_no_p_value() -> None:
    df = _classification_results(n_runs=2)
    text = report.markdown_table(df)
    assert "(p n/a)" in text and "p =" not in text and "p <" not in text
    assert "not available with fewer than 3 runs" in text


def test_write_report_classification(tmp_path: Path) -> None:
    df = _classification_results(methods=("Imaging", "Tabular", "Concat", "FiLM", "DAFT", "HyperFusion"))
    paths = report.write_report(df, tmp_path / "run", title="AD demo")
    assert set(paths) == {"metrics", "confusion", "report"}
    for name in ("metrics", "confusion"):
        image = imread(paths[name])
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
        assert image[..., :3].std() > 0.05  # not a blank canvas
    md = paths["report"].read_text()
    assert md.startswith("# AD demo\n") and "](metrics.png)" in md and "](confusion.png)" in md
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "confusion.png",
        "metrics.png",
        "report.md",
    ]


def test_write_report_regression_and_without_reference(tmp_path: Path) -> None:
    df = _regression_results()
    paths = report.write_report(df, tmp_path)
    assert set(paths) == {"metrics", "mae_by_group", "report"}
    assert imread(paths["mae_by_group"]).shape[0] > 200
    assert "| method | runs | MAE | MAE-F | MAE-M |" in paths["report"].read_text()
    paths = report.write_report(df[df["method"] == "Imaging"], tmp_path / "single")
    assert "Mann–Whitney" not in paths["report"].read_text()


def test_interrupted_plot_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = _classification_results()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report.Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        report.plot_metric_bars(df, tmp_path / "metrics.png")
    assert list(tmp_path.iterdir()) == []


def test_bad_requests() -> None:
    df = _classification_results()
    with pytest.raises(ValueError, match=r"metric\(s\) \['MAE'\]"):
        report.markdown_table(df, metrics=["MAE"])
    with pytest.raises(ValueError, match="no MAE-<group>"):
        report.plot_mae_by_group(df, "unused.png")
    with pytest.raises(ValueError, match="no confusion-matrix"):
        report.plot_confusion_matrices(_regression_results(), "unused.png")
