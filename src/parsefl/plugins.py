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
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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
            _running(entry.load, f"entry point {entry.name} = {entry.value}")
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
        _running(lambda: importlib.import_module(text), text)
    except ConfigError as err:
        cause = err.__cause__
        if isinstance(cause, ModuleNotFoundError) and cause.name and text.startswith(cause.name):
            # the plugin itself is not there, rather than one of its imports
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
        _running(lambda: spec.loader.exec_module(module), str(path))
    except BaseException:
        del sys.modules[name]
        raise
    _loaded.add(str(resolved))


def _running(load: Callable[[], Any], what: str) -> None:
    """``load()``; a plugin that fails on import is one line naming where (its own file and
    line, and where the error was raised when that is elsewhere), not its traceback."""
    try:
        load()
    except ConfigError:
        raise  # one line already (a plugin's own bad value)
    except Exception as err:  # noqa: BLE001  (any error of user code; an interrupt passes)
        raise ConfigError("--plugin", f"{what} failed on import: {_where(err)}") from err


def _where(err: BaseException) -> str:
    """``FILE:LINE: Type: message`` of the first frame of user code (not importlib, not this
    module) and, when the error was raised deeper, of that frame too."""
    machinery = str(Path(importlib.__file__).parent)  # import_module, entry points
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith(("<frozen", machinery)) and f.filename != __file__]
    what = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    if isinstance(err, SyntaxError) and err.filename:  # never ran: no frame of its own
        return f"{err.filename}:{err.lineno}: {type(err).__name__}: {err.msg}"
    if not frames:
        return what
    first, last = frames[0], frames[-1]
    deeper = f" (raised at {last.filename}:{last.lineno})" if last is not first else ""
    return f"{first.filename}:{first.lineno}: {what}{deeper}"
