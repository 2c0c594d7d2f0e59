"""Tests for hyperfusion.data.conversion: survival targets from a visits table, one rule per test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.data.conversion import ConversionSummary, derive_conversion
from tests.faults import fault

KEYS = {"subject": "PTID", "months": "M", "diagnosis": "DX", "at_risk": ["MCI"], "event": ["Dementia"]}


def _visits(rows: list[tuple[object, object, object]]) -> pd.DataFrame:
    """Rows (PTID, M, DX) indexed as the table reader indexes them (file line − 2)."""
    return pd.DataFrame(rows, columns=["PTID", "M", "DX"], dtype=object)


def _derive(
    rows: list[tuple[object, object, object]], **overrides: object
) -> tuple[pd.DataFrame, ConversionSummary]:
    return derive_conversion(_visits(rows), **(KEYS | overrides), source="v.csv")  # type: ignore[arg-type]


def test_event_at_first_dementia_visit_and_censoring_at_last_visit() -> None:
    out, summary = _derive(
        [
            ("a", 0, "MCI"),
            ("a", 6, "MCI"),
            ("a", 12, "Dementia"),
            ("b", 0, "MCI"),
            ("b", 6, "MCI"),
            ("b", 24, "CN"),
            ("c", 0, "CN"),
            ("c", 6, "CN"),
        ]
    )
    assert list(out.index) == ["a", "b"] and out.index.name == "PTID"
    assert out["time"].tolist() == [12.0, 24.0] and out["event"].tolist() == [1, 0]
    assert out["time"].dtype == np.float64 and out["event"].dtype == np.int64
    assert (summary.subjects, summary.events, summary.censored, summary.kept) == (3, 1, 1, 2)
    assert summary.baseline_not_at_risk == 1 and summary.other_diagnoses == {"CN": 1}
    assert "2 of 3 subjects at risk (1 events, 1 censored)" in summary.describe()


def test_visits_out_of_row_order_are_sorted_by_months() -> None:
    out, _ = _derive([("a", 24, "Dementia"), ("a", 12, "Dementia"), ("a", 6, "MCI"), ("a", 0, "MCI")])
    assert out.loc["a"].tolist() == [12.0, 1]


def test_months_written_as_text_are_read_as_numbers() -> None:
    out, _ = _derive([("a", "0", "MCI"), ("a", " 6 ", "MCI"), ("a", "10.5", "MCI"), ("b", "0", "Dementia")])
    assert out.loc["a"].tolist() == [10.5, 0]


def test_missing_baseline_excludes_the_subject() -> None:
    out, summary = _derive([("a", 6, "MCI"), ("a", 12, "Dementia"), ("b", 0, "MCI"), ("b", 6, "MCI")])
    assert list(out.index) == ["b"] and summary.no_baseline == 1


def test_baseline_without_diagnosis_counts_as_missing_baseline() -> None:
    out, summary = _derive(
        [("a", 0, None), ("a", 6, "MCI"), ("b", 0, "MCI"), ("b", 6, "MCI"), ("z", 0, "Dementia")]
    )
    assert list(out.index) == ["b"] and summary.no_baseline == 1


@fault(
    "visits table",
    "one subject with two visits at the same month and different diagnoses",
    "ValueError naming the file, subject, month, both diagnoses and lines",
)
def test_conflicting_duplicate_month_names_subject_month_and_lines() -> None:
    with pytest.raises(
        ValueError, match=r"v\.csv: subject 'a' has two visits at month 6 .*'MCI' and 'Dementia', lines 3, 4"
    ):
        _derive([("a", 0, "MCI"), ("a", 6, "MCI"), ("a", 6, "Dementia")])


def test_agreeing_duplicate_month_is_one_visit() -> None:
    out, summary = _derive(
        [("a", 0, "MCI"), ("a", 6, "MCI"), ("a", 6, "MCI"), ("a", 6, None), ("z", 0, "Dementia")]
    )
    assert out.loc["a"].tolist() == [6.0, 0] and summary.duplicate_visits == 1


def test_missing_diagnosis_is_neither_event_nor_last_follow_up() -> None:
    out, summary = _derive([("a", 0, "MCI"), ("a", 6, "MCI"), ("a", 12, ""), ("a", 18, np.nan), ("b", 0, "MCI"),
                            ("b", 6, None), ("b", 12, "Dementia")])  # fmt: skip
    assert out.loc["a"].tolist() == [6.0, 0] and out.loc["b"].tolist() == [12.0, 1]
    assert summary.visits_without_diagnosis == 3


def test_reversion_keeps_the_first_conversion() -> None:
    out, summary = _derive([("a", 0, "MCI"), ("a", 6, "Dementia"), ("a", 12, "MCI"), ("a", 24, "Dementia")])
    assert out.loc["a"].tolist() == [6.0, 1] and summary.reverted == 1


def test_baseline_already_converted_is_excluded_and_counted() -> None:
    out, summary = _derive([("a", 0, "Dementia"), ("a", 6, "Dementia"), ("b", 0, "MCI"), ("b", 6, "MCI")])
    assert list(out.index) == ["b"] and summary.baseline_event == 1


def test_baseline_not_at_risk_is_excluded_and_counted() -> None:
    out, summary = _derive([("a", 0, "CN"), ("a", 6, "Dementia"), ("b", 0, "MCI"), ("b", 6, "MCI")])
    assert list(out.index) == ["b"] and summary.baseline_not_at_risk == 1


def test_no_follow_up_is_excluded_and_counted() -> None:
    out, summary = _derive(
        [("a", 0, "MCI"), ("a", 6, None), ("b", 0, "MCI"), ("b", 6, "MCI"), ("z", 0, "Dementia")]
    )
    assert list(out.index) == ["b"] and summary.no_follow_up == 1


def test_several_at_risk_and_event_labels() -> None:
    out, _ = _derive(
        [
            ("a", 0, "EMCI"),
            ("a", 12, "AD"),
            ("b", 0, "LMCI"),
            ("b", 6, "LMCI"),
            ("c", 0, "AD"),
            ("c", 6, "AD"),
        ],
        at_risk=["EMCI", "LMCI"],
        event=["AD"],
    )
    assert out.to_dict("index") == {"a": {"time": 12.0, "event": 1}, "b": {"time": 6.0, "event": 0}}


@fault(
    "visits table",
    "months since baseline that are not a number",
    "ValueError naming the file, column, line and value",
)
@pytest.mark.parametrize("bad", ["six", "6 months", ">6"])
def test_non_numeric_months_name_row_and_column(bad: str) -> None:
    with pytest.raises(ValueError, match=rf"v\.csv: column 'M', line 3: value '{bad}' is not a number$"):
        _derive([("a", 0, "MCI"), ("a", bad, "MCI")])


@fault("visits table", "negative months since baseline", "ValueError naming the file, column, line and value")
def test_negative_months_name_row_and_column() -> None:
    with pytest.raises(ValueError, match=r"v\.csv: column 'M', line 4: months since baseline -6 is negative"):
        _derive([("a", 0, "MCI"), ("a", 6, "MCI"), ("a", -6, "MCI")])


@fault("visits table", "a visit without months since baseline", "ValueError naming the file, column and line")
def test_missing_months_name_row_and_column() -> None:
    with pytest.raises(ValueError, match=r"v\.csv: column 'M', line 3: months since baseline missing"):
        _derive([("a", 0, "MCI"), ("a", None, "MCI")])


@fault("visits table", "a visit without a subject id", "ValueError naming the file, column and line")
def test_missing_subject_id_names_row() -> None:
    with pytest.raises(ValueError, match=r"v\.csv: column 'PTID', line 3: the subject id is missing"):
        _derive([("a", 0, "MCI"), ("  ", 6, "MCI")])


@fault(
    "visits table",
    "from_visits naming a column the table lacks",
    "ValueError naming the key and column, with the closest column",
)
def test_absent_column_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match=r"from_visits\.diagnosis names column 'DXX'.*did you mean 'DX'\?"):
        _derive([("a", 0, "MCI")], diagnosis="DXX")


@fault(
    "visits table",
    "an at_risk or event diagnosis misspelt (no visit has it)",
    "ValueError naming the column and label: did you mean ...",
)
def test_label_no_visit_has_suggests_the_closest() -> None:
    with pytest.raises(
        ValueError,
        match=r"column 'DX': no visit has diagnosis 'Dementai' of from_visits\.event \(did you mean 'Dementia'\?\)",
    ):
        _derive([("a", 0, "MCI"), ("a", 6, "Dementia")], event=["Dementai"])


@fault(
    "visits table",
    "no visit has any of the event (or at_risk) diagnoses",
    "ValueError naming the column, the labels and the values present",
)
def test_no_event_label_in_the_table_is_an_error() -> None:
    with pytest.raises(
        ValueError,
        match=r"no visit has any diagnosis of from_visits\.event \['AD'\]; the values are \['CN', 'MCI'\]",
    ):
        _derive([("a", 0, "MCI"), ("a", 6, "CN")], event=["AD"])


@pytest.mark.parametrize(
    ("at_risk", "event", "message"),
    [([], ["Dementia"], "at_risk must list"), (["MCI"], [""], "event must list"),
     (["MCI"], ["MCI"], "'MCI' is in both"), ("MCI", ["Dementia"], "are lists")],
)  # fmt: skip
def test_bad_label_lists(at_risk: object, event: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _derive([("a", 0, "MCI"), ("a", 6, "Dementia")], at_risk=at_risk, event=event)


def _slow_reference(rows: list[tuple[str, float, str | None]]) -> dict[str, tuple[float, int]]:
    """Per subject, the rules read literally: sort by month, drop missing diagnoses, look at month 0 first."""
    out: dict[str, tuple[float, int]] = {}
    for sid in dict.fromkeys(r[0] for r in rows):
        visits = sorted((m, d) for s, m, d in rows if s == sid and d is not None)
        baseline = [d for m, d in visits if m == 0]
        if not baseline or baseline[0] != "MCI":
            continue
        follow = [(m, d) for m, d in visits if m > 0]
        converted = [m for m, d in follow if d == "Dementia"]
        if converted:
            out[sid] = (converted[0], 1)
        elif follow:
            out[sid] = (follow[-1][0], 0)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_random_tables_match_a_per_subject_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, float, str | None]] = []
    for i in range(60):
        schedule = [0, 6, 12, 18, 24, 36, 48][: rng.integers(0, 8)]
        if rng.uniform() < 0.1:
            schedule = schedule[1:]
        for m in schedule:
            d = rng.choice(["CN", "MCI", "MCI", "Dementia", None])
            rows.append((f"s{i}", float(m), None if d is None else str(d)))
    order = rng.permutation(len(rows))
    shuffled = [rows[k] for k in order]
    out, summary = _derive(shuffled)
    expected = _slow_reference(shuffled)
    got = {sid: (float(r["time"]), int(r["event"])) for sid, r in out.iterrows()}
    assert got == expected and list(out.index) == list(expected)
    assert summary.kept == len(expected) and summary.events == sum(e for _, e in expected.values())


def test_rows_of_two_concatenated_tables_keep_their_subjects() -> None:
    first, second = (
        _visits([("a", 0, "MCI"), ("a", 6, "MCI")]),
        _visits([("b", 0, "MCI"), ("b", 12, "Dementia")]),
    )
    out, _ = derive_conversion(pd.concat([first, second]), **KEYS, source="v.csv")
    assert out.to_dict("index") == {"a": {"time": 6.0, "event": 0}, "b": {"time": 12.0, "event": 1}}
