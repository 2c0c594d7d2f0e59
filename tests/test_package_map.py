"""The README's package map names every module where it lives, and nothing that is not there.

The map is the code block under the "Package map" heading. An entry starts at a line with no indent; its key
(before the run of spaces) names top-level modules (``config.py``) or folders (``run/``), and its text names the
folder's modules (``store.py``) or, for ``commands/``, the commands (``select-layers``).
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hyperfusion"


def map_entries(text: str) -> dict[str, str]:
    """Entry key -> the entry's whole text (key line and its indented continuation lines)."""
    match = re.search(r"^## Package map\n+```\n(.*?)```", text, flags=re.S | re.M)
    if match is None:
        raise AssertionError("the README has no code block under '## Package map'")
    entries: dict[str, str] = {}
    key = ""
    for line in match.group(1).splitlines():
        if line and not line[0].isspace():
            key = re.split(r"\s{2,}", line, maxsplit=1)[0]
            entries[key] = line
        elif key:
            entries[key] += "\n" + line
    return entries


def module_names(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}


def problems_of(text: str, package: Path) -> list[str]:
    """Every module or folder the map omits or invents, in words (empty when the map matches the folders)."""
    entries = map_entries(text)
    keys = {name.strip() for key in entries for name in key.split(",")}
    problems: list[str] = []
    folders = sorted(p for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    for folder in folders:
        entry = next((entries[k] for k in entries if f"{folder.name}/" in k.split(", ")), None)
        if entry is None:
            problems.append(f"the map has no entry for {folder.name}/")
            continue
        for module in sorted(module_names(folder)):
            spoken = module.removesuffix(".py").replace("_", "-") if folder.name == "commands" else module
            if not re.search(rf"(?<![\w-]){re.escape(spoken)}(?![\w-])", entry):
                problems.append(f"{folder.name}/{module} is not in the map's {folder.name}/ entry")
    for module in sorted(module_names(package)):
        if module not in keys:
            problems.append(f"the top-level module {module} has no entry in the map")
    for key in sorted(keys):
        path = package / key.rstrip("/")
        if not (path.is_dir() if key.endswith("/") else path.is_file()):
            problems.append(f"the map lists {key}, which is not in the package")
    return problems


def test_the_package_map_matches_the_folders() -> None:
    assert problems_of(README.read_text(encoding="utf-8"), PACKAGE) == []


def test_a_missing_or_invented_module_is_named(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "run").mkdir(parents=True)
    for path in ["__init__.py", "cli.py", "run/__init__.py", "run/plan.py", "run/store.py"]:
        (package / path).write_text("")
    text = "## Package map\n\n```\ncli.py, gone.py             the CLI\nrun/    plan.py\n```\n"
    assert problems_of(text, package) == [
        "run/store.py is not in the map's run/ entry",
        "the map lists gone.py, which is not in the package",
    ]
    (package / "extra").mkdir()
    (package / "extra" / "__init__.py").write_text("")
    assert "the map has no entry for extra/" in problems_of(text, package)
