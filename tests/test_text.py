"""hyperfusion.text: values and messages shortened for one-line errors; tables as text."""

from __future__ import annotations

from hyperfusion.text import LIMIT, format_table, one_line, shown


def test_short_values_are_quoted_whole() -> None:
    assert shown("AD") == "'AD'" and shown(3) == "3"


def test_long_values_keep_head_tail_and_length() -> None:
    text = shown("a" * 500 + "END")
    assert len(text) <= LIMIT + 20 and text.startswith("'aaa") and text.endswith("END'")
    assert "503 characters" in text


def test_one_line_collapses_and_bounds_a_message() -> None:
    message = "line 4:\n  value " + "x" * 10_000 + " is bad\n" + "word " * 2000
    line = one_line(message)
    assert "\n" not in line and len(line) <= 2100
    assert line.startswith("line 4: value xxx") and "10,000 characters" in line


def test_format_table_writes_markdown_and_plain_columns() -> None:
    rows = [["a|b", 1.5], ["c", 10]]
    assert (
        format_table(["name", "n"], rows, right=[1])
        == "| name | n |\n|---|---:|\n| a\\|b | 1.5 |\n| c | 10 |\n"
    )
    assert format_table(["name", "n"], rows, escape=False).splitlines()[2] == "| a|b | 1.5 |"
    assert format_table(["name", "n"], rows, right=[1], markdown=False) == "name    n\na|b   1.5\nc      10\n"
