"""Plugins: user code a config names (``plugins: [my_models.py, my_package.models]``), imported before anything else.

The threat model: **a config file and a plugin are code; a run directory is data.** Running ``hyperfusion run
CONFIG`` executes the plugins CONFIG names, wherever they are — treat a config like a script you run. A run
directory, though, is only read: ``report``, ``predict`` and ``explain`` execute nothing but the plugin files the
run itself executed, at the absolute paths it recorded (never a file looked up in the current directory, and
never one inside the run directory) and only while their content has the sha256 it recorded. So a run made in
``~/exp`` with ``plugins: [my_models.py]`` is reported from any folder, and a ``my_models.py`` that happens to lie
in the current directory, or that was edited since, is never run by mistake.

`import_plugins` imports and describes each plugin as ``{"path": absolute file, "sha256": digest}``; with
``recorded`` (what a run directory recorded) it imports exactly those files and refuses any other.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PluginFiles = dict[str, dict[str, str]]


class PluginError(ValueError):
    """A plugin that cannot be found, imported, or trusted; the message starts with ``plugins:``."""


def import_plugins(
    plugins: Any,
    *,
    base: Path | None = None,
    recorded: Mapping[str, Mapping[str, str]] | None = None,
    data_folder: Path | None = None,
) -> PluginFiles:
    """Import user modules once: names (``name.py`` in ``base`` first, then ``sys.path``), or ``.py`` files
    (relative ones from ``base``).

    Args:
        plugins: the config's ``plugins`` list.
        base: the config file's folder, for relative ``.py`` paths (None: the config came from no file).
        recorded: what a run directory recorded; then each plugin must be that file with that content.
        data_folder: a folder whose files are data and never executed (the run directory).

    Returns:
        Per plugin entry, the file it was imported from and its sha256.

    Raises:
        PluginError: not a list of names, a file that does not exist or cannot be resolved, an import that fails,
            or (with ``recorded``) a plugin the run did not record, moved, or whose content changed.
    """
    if plugins is None:
        return {}
    if isinstance(plugins, str) or not isinstance(plugins, (list, tuple)):
        raise PluginError(f"plugins: expected a list of module names or .py files, got {plugins!r}")
    files: PluginFiles = {}
    for plugin in plugins:
        if not isinstance(plugin, str) or not plugin:
            raise PluginError(f"plugins: expected module names or .py files, got {plugin!r}")
        known = None if recorded is None else recorded.get(plugin)
        if recorded is not None and known is None:
            raise PluginError(
                f"plugins: {plugin!r} is named by the run's configuration but the run recorded no file for it "
                "(made by an older version, or edited?); rerun `hyperfusion run` with its config to record it"
            )
        path = _file_of(plugin, base, known)
        digest = _sha256(path)
        if known is not None:
            _check_recorded(plugin, path, digest, known, data_folder)
        _import(plugin, path)
        files[plugin] = {"path": str(path), "sha256": digest}
    return files


def _file_of(plugin: str, base: Path | None, known: Mapping[str, str] | None) -> Path:
    """The file a plugin entry means: the recorded one, a ``.py`` path, or where ``sys.path`` finds the module."""
    if known is not None:
        path = Path(known["path"])
        if not path.is_file():
            raise PluginError(
                f"plugins: the run executed {path} for {plugin!r}, and that file no longer exists"
            )
        return path
    if plugin.endswith(".py"):
        path = Path(plugin)
        if not path.is_absolute():
            if base is None:
                raise PluginError(
                    f"plugins: {plugin!r} is a relative path, but the configuration comes from no file whose "
                    "folder it could be relative to; give an absolute path"
                )
            path = base / path
        path = path.resolve()
        if not path.is_file():
            raise PluginError(f"plugins: no file {str(path)!r}")
        return path
    beside = _beside(plugin, base)
    if beside is not None:
        return beside
    try:
        spec = importlib.util.find_spec(plugin)
    except (ImportError, ValueError) as err:
        raise PluginError(f"plugins: cannot import {plugin!r} ({err})") from None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        where = f"; no {plugin.replace('.', '/')}.py in {base} either" if base is not None else ""
        raise PluginError(f"plugins: cannot import {plugin!r} (No module named {plugin!r}{where})")
    return Path(spec.origin).resolve()


def _beside(plugin: str, base: Path | None) -> Path | None:
    """``name.py`` (``pkg/name.py`` for ``pkg.name``) in the config's folder: a module name finds it there first,
    so ``plugins: [my_models]`` works with ``my_models.py`` beside the YAML, whatever the current directory."""
    if base is None or not all(part.isidentifier() for part in plugin.split(".")):
        return None
    path = base.joinpath(*plugin.split(".")).with_suffix(".py")
    return path.resolve() if path.is_file() else None


def _check_recorded(
    plugin: str, path: Path, digest: str, known: Mapping[str, str], data_folder: Path | None
) -> None:
    if data_folder is not None and path.is_relative_to(data_folder.resolve()):
        raise PluginError(
            f"plugins: {plugin!r} is the file {path}, inside the run directory {data_folder}; a run directory is "
            "data and nothing in it is ever executed"
        )
    if digest != known["sha256"]:
        raise PluginError(
            f"plugins: {path} is not the code the run executed (its sha256 is now {digest[:12]}…, the run "
            f"recorded {known['sha256'][:12]}…); a run directory executes only what the run itself executed: "
            "restore the file, or rerun the run"
        )


def _import(plugin: str, path: Path) -> None:
    """Execute the plugin once per process (a second import of the same file is a no-op)."""
    try:
        if plugin.endswith(".py") or not _imports_from(plugin, path):
            name = f"hyperfusion_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
            if name in sys.modules:
                return
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            except BaseException:
                del sys.modules[name]
                raise
        else:
            importlib.import_module(plugin)
    except ModuleNotFoundError as err:
        raise PluginError(f"plugins: cannot import {plugin!r} ({err})") from None
    except Exception as err:
        raise PluginError(f"plugins: importing {plugin!r} failed: {type(err).__name__}: {err}") from None


def _imports_from(plugin: str, path: Path) -> bool:
    """Whether importing the module name ``plugin`` executes ``path`` (else the file is executed by location)."""
    try:
        spec = importlib.util.find_spec(plugin)
    except (ImportError, ValueError):
        return False
    return spec is not None and bool(spec.origin) and Path(spec.origin).resolve() == path


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise PluginError(f"plugins: cannot read {path} ({err.strerror})") from None
