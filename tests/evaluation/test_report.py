"""Report: Table 3 layout, the extra sections and their flags, plots written atomically as readable PNGs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from hyperfusion.evaluation import report, sections
from hyperfusion.evaluation.bootstrap import bootstrap_differences
from hyperfusion.evaluation.calibration import calibration_metrics
from hyperfusion.evaluation.frames import HISTORY_COLUMNS
from hyperfusion.evaluation.metrics import classification_metrics, regression_metrics
from hyperfusion.evaluation.noskill import noskill_probabilities
from hyperfusion.evaluation.sensitivity import sensitivity_flags
from hyperfusion.evaluation.stats import compare_to_reference
from tests.faults import fault

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


def _runs(context: report.ReportContext) -> str:
    """A new report section: one function from the report's context to markdown."""
    runs = len(context.results[["split_seed", "version"]].drop_duplicates())
    return f"\n## Runs\n\n{runs} runs of {context.results['method'].nunique()} methods.\n"


def test_a_new_section_is_one_function(tmp_path: Path) -> None:
    """Given in ``sections=`` a section comes last; placed with ``insert_section`` it comes where it was put;
    a section with nothing to say writes nothing."""
    df = _regression_results()
    runs = report.Section("runs", _runs)
    plain = report.write_report(df, tmp_path / "plain")["report"].read_text()
    last = report.write_report(df, tmp_path / "last", sections=[runs])["report"].read_text()
    assert last == plain + "\n## Runs\n\n3 runs of 2 methods.\n"
    layout = report.insert_section(runs, after="main table")
    assert [s.name for s in layout][:3] == ["main table", "runs", "figures"]
    placed = report.write_report(df, tmp_path / "placed", layout=layout)["report"].read_text()
    table, figures = plain.split("\n## Every metric per method")
    assert placed == table + "\n## Runs\n\n3 runs of 2 methods.\n" + "\n## Every metric per method" + figures
    silent = report.Section("silent", lambda context: "")
    assert report.write_report(df, tmp_path / "silent", sections=[silent])["report"].read_text() == plain


def test_insert_section_names_the_sections() -> None:
    runs = report.Section("runs", _runs)
    assert report.insert_section(runs, before="main table")[0] is runs
    assert report.insert_section(runs, after="learning curves")[-1] is runs
    with pytest.raises(
        ValueError, match=re.escape("no report section 'nope'; sections: ['main table', 'figures'")
    ):
        report.insert_section(runs, before="nope")
    with pytest.raises(ValueError, match="one of after= and before="):
        report.insert_section(runs)


def test_interrupted_plot_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = _classification_results()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report.Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        report.plot_metric_bars(df, tmp_path / "metrics.png")
    assert list(tmp_path.iterdir()) == []


@fault(
    "report", "a plot or table of metrics the results do not have", "ValueError naming the missing metrics"
)
def test_bad_requests() -> None:
    df = _classification_results()
    with pytest.raises(ValueError, match=r"metric\(s\) \['MAE'\]"):
        report.markdown_table(df, metrics=["MAE"])
    with pytest.raises(ValueError, match="no MAE-<group>"):
        report.plot_mae_by_group(df, "unused.png")
    with pytest.raises(ValueError, match="no confusion-matrix"):
        report.plot_confusion_matrices(_regression_results(), "unused.png")


# ----------------------------------------------------------------------------------------------------------
# the extended report: no-skill rows, skill, paired tests, input use, calibration, treatments, learning curves

SENS = {"Imaging": (0.0, 0.12), "Tabular": (0.20, 0.0), "Concat": (0.004, 0.10), "HyperFusion": (0.06, 0.09)}


def _full_inputs(n_runs: int = 4) -> dict[str, pd.DataFrame]:
    """Everything a protocol run would hand over, for four methods and the no-skill baseline."""
    rng = np.random.default_rng(2)
    rows, skill, preds, hist = [], [], [], []
    for k, method in enumerate([*SENS, "no-skill"]):
        for run in range(n_runs):
            seed, version = run // 2, run % 2
            y = np.arange(60) % 3
            if method == "no-skill":
                p = noskill_probabilities(rng.integers(0, 3, 100), 60, 3)
            else:
                logits = rng.normal(size=(60, 3))
                logits[np.arange(60), y] += 0.3 + 0.6 * k
                p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            metrics = classification_metrics(p, y, NAMES) | calibration_metrics(p, y)
            if method != "no-skill":
                metrics |= dict(zip(("tabular_sensitivity", "image_sensitivity"), SENS[method]))
            rows += [(method, seed, version, "ensemble", m, v) for m, v in metrics.items()]
            frame = pd.DataFrame(p, columns=[f"p_{n}" for n in NAMES])
            frame.insert(0, "method", method)
            frame.insert(1, "split_seed", seed)
            frame.insert(2, "version", str(version))
            frame.insert(3, "subject_id", [f"s{i}" for i in range(60)])
            frame["target"] = np.array(NAMES)[y]
            preds.append(frame)
            if method != "no-skill":
                base = noskill_probabilities(y, 60, 3)
                diff = bootstrap_differences(p, base, y, ["BA", "AUC"], n_resamples=200, seed=run)
                skill.append(diff.assign(method=method, split_seed=seed, version=version))
                for fold in range(2):
                    for epoch in range(5):
                        loss = 1.2 / (epoch + 1)
                        hist.append(
                            (method, seed, version, fold, epoch, loss, loss + 0.1, 0.4 + 0.02 * epoch, "BA")
                        )
    return {
        "results": pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"]),
        "skill": pd.concat(skill, ignore_index=True),
        "predictions": pd.concat(preds, ignore_index=True),
        "histories": pd.DataFrame(hist, columns=list(HISTORY_COLUMNS)),
        "treatments": pd.DataFrame(
            {
                "method": list(SENS),
                "parameters": [1000, 50, 1100, 1300],
                "warm start": ["–", "–", "–", "Tabular"],
                "epochs": [5, 5, 5, 5],
                "learning rate": [1e-4] * 4,
            }
        ),
    }


@pytest.fixture(scope="module")
def full_report(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Path], str, dict[str, pd.DataFrame]]:
    """One full report, written once for the (slow-marked) checks below: its four figures take ~5–10 s."""
    data = _full_inputs()
    inputs = {k: v for k, v in data.items() if k != "results"}
    out = tmp_path_factory.mktemp("full")
    paths = report.write_report(data["results"], out, title="Full", test_train_ratio=1 / 3, **inputs)
    return paths, paths["report"].read_text(), data


def _section(md: str, heading: str) -> str:
    return md.split(heading)[1].split("\n## ")[0]


@pytest.mark.slow
def test_full_report_has_every_section_and_figure(full_report) -> None:
    paths, md, _ = full_report
    assert set(paths) == {"metrics", "confusion", "reliability", "learning_curves", "report"}
    for name in ("metrics", "confusion", "reliability", "learning_curves"):
        image = imread(paths[name])
        assert image.shape[0] > 200 and image[..., :3].std() > 0.05
        assert f"]({paths[name].name})" in md
    for heading in (
        "## Better than no skill?",
        "## Paired comparison with HyperFusion",
        "## Does each method use both inputs?",
        "## Calibration",
        "## How each method was trained",
        "## Learning curves",
    ):
        assert md.count(heading) == 1, heading
    assert "| HyperFusion | 1300 | Tabular | 5 | 0.0001 |" in md
    assert "n_test/n_train = 0.333" in md and "Wilcoxon signed-rank" in md
    calibration = _section(md, "## Calibration")
    assert "| method | runs | ECE | Brier |" in calibration and "true MCI" in calibration
    folder = paths["report"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths.values())


@pytest.mark.slow
def test_no_skill_row_has_no_p_value(full_report) -> None:
    _, md, _ = full_report
    main = md.split("\n## ")[0]
    no_skill = next(line for line in main.splitlines() if line.startswith("| no-skill |"))
    assert "(p" not in no_skill and "0.333" in no_skill  # BA = 1/3 in every run
    imaging = next(line for line in main.splitlines() if line.startswith("| Imaging |"))
    assert "(p = " in imaging or "(p < " in imaging
    assert "no-skill: no p-value (a baseline)" in main
    # the sensitivity and calibration metrics have their own sections, not the main table
    header = next(line for line in main.splitlines() if line.startswith("| method |"))
    assert "sensitivity" not in header and "ECE" not in header and "| BA |" in header
    paired = _section(md, "## Paired comparison")
    assert "no-skill" not in paired and "| BA | Imaging |" in paired and "| ECE | Imaging |" in paired


@pytest.mark.slow
def test_tabular_flag_appears_exactly_for_the_fusion_method_that_ignores_it(full_report) -> None:
    _, md, data = full_report
    section = _section(md, "## Does each method use both inputs?")
    flagged = [line for line in section.splitlines() if "does not use the tabular data" in line]
    assert len(flagged) == 1 and flagged[0].startswith("| Concat |")
    assert "does not use the images" not in section
    for single in ("Imaging", "Tabular"):
        line = next(line for line in section.splitlines() if line.startswith(f"| {single} |"))
        assert line.endswith("(not checked) |")
    # with Concat using the tabular data, no flag at all
    res = data["results"].copy()
    res.loc[(res["method"] == "Concat") & (res["metric"] == "tabular_sensitivity"), "value"] = 0.05
    text = sections.sensitivity_section(
        sensitivity_flags(res), tabular_method="Tabular", image_method="Imaging", fraction=0.1, floor=1e-3
    )
    assert "Concat" in text and "does not use the" not in text


@pytest.mark.slow
def test_skill_flags_follow_the_intervals(full_report) -> None:
    _, md, data = full_report
    section = _section(md, "## Better than no skill?")
    skill = data["skill"]
    not_better = skill[~(skill["low"] > 0)]
    runs = [line for line in section.splitlines() if "| **not better than no skill** |" in line]
    assert len(runs) == len(not_better) > 0  # the weakest method is near chance
    assert all(line.startswith("| Imaging |") for line in runs)


def test_regression_report_skips_calibration(tmp_path: Path) -> None:
    df = _regression_results()
    preds = pd.DataFrame(
        {"method": "Imaging", "split_seed": 0, "version": "top3", "subject_id": ["a", "b"]}
    ).assign(predicted=[60.0, 61.0], target=[59.0, 66.0])
    paths = report.write_report(df, tmp_path, predictions=preds, test_train_ratio=0.25)
    md = paths["report"].read_text()
    assert "reliability" not in paths and "## Calibration" not in md
    assert "## Paired comparison with HyperFusion" in md


def test_min_p_footnote_at_three_runs() -> None:
    df = _classification_results(n_runs=3)
    text = report.markdown_table(df, metrics=["BA"])
    assert "cannot reach p < 0.05 for Imaging (smallest exact p = 0.100)" in text
    assert "cannot reach" not in report.markdown_table(_classification_results(n_runs=4), metrics=["BA"])


def test_metric_bars_show_whole_error_bars() -> None:
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    report._fit_error_bars(ax, np.array([[0.95, 0.5]]), np.array([[0.1, 0.2]]), bounded=True)
    low, high = ax.get_ylim()
    assert low == 0.0 and high >= 1.05
    ax = Figure().subplots()
    report._fit_error_bars(ax, np.array([[0.1]]), np.array([[0.3]]), bounded=True)
    assert ax.get_ylim()[0] <= -0.2


@fault(
    "report",
    "a malformed optional table (e.g. a treatments table with a method twice)",
    "ValueError before any file is written",
)
def test_bad_optional_table_writes_nothing(tmp_path: Path) -> None:
    data = _full_inputs()
    bad = pd.concat([data["treatments"], data["treatments"].iloc[[0]]])
    with pytest.raises(
        ValueError, match=re.escape("treatments table has duplicate rows for {'method': 'Imaging'}")
    ):
        report.write_report(data["results"], tmp_path / "out", treatments=bad)
    assert not (tmp_path / "out").exists()


@fault(
    "results table",
    "the same (method, split seed, version, fold, metric) twice",
    "ValueError naming the duplicated row",
)
def test_duplicated_result_row(tmp_path: Path) -> None:
    df = _classification_results()
    with pytest.raises(
        ValueError, match=re.escape("duplicate rows for {'method': 'Imaging', 'split_seed': 0")
    ):
        report.write_report(pd.concat([df, df.iloc[:1]]), tmp_path)


def test_the_crop_reader_is_not_flagged_for_ignoring_the_record(tmp_path: Path) -> None:
    """The reader reads the image only, as imaging only does: its input use is shown, not checked."""
    results = _full_inputs(n_runs=2)["results"]
    reader = results[results["method"] == "Imaging"].assign(method="Reader")
    paths = report.write_report(
        pd.concat([results, reader], ignore_index=True), tmp_path, reader_method="Reader", title="Reader"
    )
    section = _section(paths["report"].read_text(), "## Does each method use both inputs?")
    line = next(line for line in section.splitlines() if line.startswith("| Reader |"))
    assert line.endswith("(not checked) |")
    assert [line.split(" |")[0] for line in section.splitlines() if "does not use the tabular" in line] == [
        "| Concat"
    ]
