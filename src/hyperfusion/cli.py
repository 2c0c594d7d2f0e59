"""The ``hyperfusion`` command line: one subcommand per job, each implemented next to the code it drives.

Every subcommand lives in a module exposing ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports
stay inside ``run`` so ``hyperfusion --help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("hyperfusion.simulate.command", "write a simulated cohort (NIfTI + table + manifest spec)"),
    "run": ("hyperfusion.commands.run", "run or resume a comparison of methods from a config"),
    "demo": ("hyperfusion.commands.demo", "the main job on the built-in simulated AD cohort"),
    "predict": ("hyperfusion.commands.predict", "apply a finished run to new subjects"),
    "report": ("hyperfusion.commands.report", "rebuild a run's results table, report and plots"),
    "select-layers": ("hyperfusion.commands.select_layers", "rank candidate hyper layers by loss entropy"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperfusion",
        description="Fuse tabular clinical data with 3D medical images through hypernetworks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hyperfusion`` console script; returns the process exit status.

    Bad input (a missing file, a wrong config value, a malformed table or image) ends with its message and exit
    status 2 rather than a traceback; set ``HYPERFUSION_DEBUG=1`` to see the traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("HYPERFUSION_DEBUG"):
            raise
        print(f"hyperfusion {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
