"""`hyperfusion presets`: each preset listed with its whole first sentence, however many comment lines it spans."""

from __future__ import annotations

import contextlib
import io

from hyperfusion.cli import main
from hyperfusion.commands.presets import NAME_WIDTH, description
from hyperfusion.config import preset_names, preset_text


def test_the_first_sentence_spans_lines_and_skips_stops_inside_parentheses():
    text = (
        "# Binary CN vs AD (paper App. B): the same\n# machinery, at 0 and 2. More here.\nkey: 1\n# later.\n"
    )
    assert description(text) == "Binary CN vs AD (paper App. B): the same machinery, at 0 and 2."
    assert description("# Compare with:\n#   hyperfusion select-layers x\n") == "Compare with:"
    assert description("key: 1\n") == ""


def test_the_listing_shows_every_preset_with_a_whole_sentence():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["presets"]) == 0
    entries: dict[str, str] = {}
    for line in out.getvalue().splitlines():
        if line[:1] != " ":
            name, current = line[:NAME_WIDTH].strip(), line[NAME_WIDTH + 1 :]
            entries[name] = current
        else:
            entries[name] += " " + line.strip()
    assert sorted(entries) == preset_names()
    for name, shown in entries.items():
        assert shown == description(preset_text(name)) and shown[-1] in ".:", name
