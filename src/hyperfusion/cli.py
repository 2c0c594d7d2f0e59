"""The ``hyperfusion`` command line: one subcommand per job, each implemented next to the code it drives.

Every subcommand lives in a module exposing ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports
stay inside ``run`` so ``hyperfusion --help`` is quick.

Every failure is one line on stderr: exit status 2 for bad input (a missing file, a wrong config value, a malformed
table or image, a run directory that cannot be used as asked, a file that cannot be written: a full disk, a folder
of another user), 1 for an internal error (``HYPERFUSION_DEBUG=1`` shows
the traceback), 130 when interrupted (after saying what was kept). Warnings are one line each too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from hyperfusion.atomic import WriteError
from hyperfusion.text import one_line

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("hyperfusion.simulate.command", "write a simulated cohort (NIfTI + table + manifest spec)"),
    "run": ("hyperfusion.commands.run", "run, resume or grow a comparison of methods from a config"),
    "init": ("hyperfusion.commands.init", "write a run config matched to a cohort's voxel size"),
    "validate": ("hyperfusion.commands.validate", "check a cohort and config without training; time it"),
    "demo": ("hyperfusion.commands.demo", "the main job on the built-in simulated AD cohort"),
    "predict": ("hyperfusion.commands.predict", "apply a finished run to new subjects"),
    "explain": ("hyperfusion.commands.explain", "look inside a finished run: counterfactuals, attributions"),
    "report": ("hyperfusion.commands.report", "rebuild a run's results table, report and plots"),
    "select-layers": ("hyperfusion.commands.select_layers", "rank candidate hyper layers by loss entropy"),
    "study": (
        "hyperfusion.commands.study",
        "a grid of cohorts and settings, each an ordinary run; one summary",
    ),
    "tune": ("hyperfusion.commands.tune", "tune every method with the same budget on the training folds"),
    "presets": ("hyperfusion.commands.presets", "list the shipped presets, or print one to copy"),
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


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = one_line(record.getMessage())
        return (
            f"hyperfusion: {record.levelname.lower()}: {message}"
            if record.levelno >= logging.WARNING
            else message
        )


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, e.g. by a test's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Third-party warnings as one line, without the source line that raised them."""
    print(f"hyperfusion: warning: {one_line(str(message))} ({category.__name__})", file=file or sys.stderr)


def configure_output() -> None:
    """One line per warning: our logger's records and any library's ``warnings.warn``."""
    logger = logging.getLogger("hyperfusion")
    if not any(isinstance(h.formatter, _OneLine) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_OneLine())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    warnings.showwarning = _show_warning


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """Errors of the input or the environment (a full disk, a folder of another user): exit status 2."""
    return (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, WriteError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hyperfusion`` console script; returns the process exit status."""
    args = build_parser().parse_args(argv)
    configure_output()
    debug = bool(os.environ.get("HYPERFUSION_DEBUG"))
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt as err:
        if debug:
            raise
        kept = f": {err}" if str(err) else ""
        print(
            f"hyperfusion {args.command}: interrupted{kept}; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except _bad_input_errors() as err:
        if debug:
            raise
        print(f"hyperfusion {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        if debug:
            raise
        print(
            f"hyperfusion {args.command}: internal error: {type(err).__name__}: {_one_line(err)} "
            "(set HYPERFUSION_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


def _one_line(err: BaseException) -> str:
    """The error's message on one line, long values cut (`hyperfusion.text.one_line`)."""
    return one_line(str(err).strip() or type(err).__name__)


if __name__ == "__main__":
    sys.exit(main())
