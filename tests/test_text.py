"""hyperfusion.text: values and messages shortened for one-line errors."""

from __future__ import annotations

from hyperfusion.text import LIMIT, one_line, shown


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
