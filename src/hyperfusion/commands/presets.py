"""The presets shipped inside the package: list them, or print one to copy and edit (e.g. to set your cohort)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="print this preset's YAML (omit to list them)")


def run(args: argparse.Namespace) -> int:
    from hyperfusion.config import ConfigError, preset_names, preset_text

    names = preset_names()
    if args.name is None:
        for name in names:
            first = preset_text(name).splitlines()[0].lstrip("# ")
            print(f"{name:<24} {first}")
        return 0
    if args.name not in names:
        raise ConfigError(f"no preset {args.name!r}; presets: {names}")
    print(preset_text(args.name), end="")
    return 0
