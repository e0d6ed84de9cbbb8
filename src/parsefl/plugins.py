"""Components from one's own code, without a fork: a plugin is a Python file (``--plugin
my_methods.py``) or an importable module (``--plugin my_lab.methods``) whose import registers
components (``@SHARING.register("name")``, ``@DATASETS.register(...)``, ...); installed packages
can declare theirs in the ``parsefl.plugins`` entry-point group. See docs/extending.md."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from parsefl.errors import ConfigError

ENTRY_POINT_GROUP = "parsefl.plugins"
_loaded: set[str] = set()  # each plugin runs once per process (names register only once)


def load_plugins(plugins: Iterable[str | Path] = ()) -> list[str]:
    """Import every installed entry-point plugin, then each of ``plugins`` (files or module
    names), once per process; the plugins of this call, by name (none: no code but
    parsefl's registered anything)."""
    entries = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    for entry in entries:
        if f"ep:{entry.value}" not in _loaded:
            entry.load()
            _loaded.add(f"ep:{entry.value}")
    plugins = [str(p) for p in plugins]
    for plugin in plugins:
        load_plugin(plugin)
    return [*(entry.value for entry in entries), *plugins]


def load_plugin(plugin: str | Path) -> None:
    """Import one plugin: a ``.py`` file, or a module name importable from ``sys.path``."""
    text = str(plugin)
    path = Path(text)
    if text.endswith(".py") or path.is_file():
        _load_file(path)
        return
    if text in _loaded:
        return
    try:
        importlib.import_module(text)
    except ModuleNotFoundError as err:
        if err.name and text.startswith(err.name):  # the plugin itself, not one of its imports
            raise ConfigError("--plugin", f"no file or module {text!r}; give a .py file or "
                              "an importable module name") from None
        raise
    _loaded.add(text)


def _load_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError("--plugin", f"no such file: {path}")
    resolved = path.resolve()
    if str(resolved) in _loaded:
        return
    # A unique module name per file, so that two plugins called methods.py can coexist and
    # pickling (process pools) can find the module of a class defined in the plugin.
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    name = f"parsefl_plugin_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError("--plugin", f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _loaded.add(str(resolved))
