"""The presets shipped inside the package: list them, or print one to copy and edit (e.g. to set your cohort)."""

from __future__ import annotations

import argparse
import textwrap

#: Width of the listing's name column.
NAME_WIDTH = 24


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="print this preset's YAML (omit to list them)")


def run(args: argparse.Namespace) -> int:
    from hyperfusion.config import ConfigError, preset_names, preset_text

    names = preset_names()
    if args.name is None:
        for name in names:
            lines = textwrap.wrap(description(preset_text(name)), 118 - NAME_WIDTH)
            print(f"{name:<{NAME_WIDTH}} {lines[0] if lines else ''}")
            for line in lines[1:]:
                print(" " * (NAME_WIDTH + 1) + line)
        return 0
    if args.name not in names:
        raise ConfigError(f"no preset {args.name!r}; presets: {names}")
    print(preset_text(args.name), end="")
    return 0


def description(text: str) -> str:
    """A preset's first sentence, from its leading comment block however many lines it spans (never cut mid-way).

    A sentence ends at a full stop, question or exclamation mark outside parentheses (``(paper App. B)`` does not
    end one) followed by a space or the end of the block, or at a colon that ends a line (a command follows).
    """
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        stripped = line.lstrip("#").strip()
        comment.append(stripped)
        if stripped.endswith(":"):
            break
    joined = " ".join(c for c in comment if c)
    depth = 0
    for i, char in enumerate(joined):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".!?" and (i + 1 == len(joined) or joined[i + 1].isspace()):
            return joined[: i + 1]
    return joined
