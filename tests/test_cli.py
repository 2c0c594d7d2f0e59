"""The command line: every subcommand is wired, and bad input ends with a message, not a traceback."""

from __future__ import annotations

import pytest

from hyperfusion.cli import COMMANDS, build_parser, main


def test_every_subcommand_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: hyperfusion" in capsys.readouterr().out


def test_bad_input_is_a_message_and_exit_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYPERFUSION_DEBUG", raising=False)
    assert main(["run", "no-such-preset", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "hyperfusion run: error:" in error and "no-such-preset" in error and "Traceback" not in error
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERFUSION_DEBUG", "1")
    with pytest.raises(ValueError, match="no-such-preset"):
        main(["run", "no-such-preset", "--out", str(tmp_path / "run")])


def test_help_imports_neither_torch_nor_pandas():
    """`hyperfusion --help` builds every subcommand's parser; heavy modules load only in the command that runs."""
    import subprocess
    import sys

    code = (
        "import sys; from hyperfusion.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'pandas', 'lightning', 'nibabel') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
