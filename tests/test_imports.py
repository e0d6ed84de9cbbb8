"""No import circles in src/: the import graph, read from the source with ``ast``, has no
cycle — neither among module-level imports (a module never imports, at import time, a module
that imports it back) nor when the imports inside functions, or the type-only imports under
``if TYPE_CHECKING:``, are counted too (layers stay layers: the config never reaches the
models that it configures and back). Importing ``a.b.c`` runs the packages ``a`` and ``a.b``
first, so those are edges too. And every module imports on its own, in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(body: list[ast.stmt], nested: bool, typed: bool = False):
    """Import statements run when the module (or, with ``nested``, a function) runs; what an
    ``if TYPE_CHECKING:`` block imports never runs (it counts with ``typed``)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _type_checking(node):
            yield from _imports(node.orelse, nested, typed)
            if typed:
                yield from _imports(node.body, nested, typed)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if nested:
                yield from _imports(node.body, nested, typed)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _imports(getattr(node, field, []) or [], nested, typed)


def _with_packages(target: str, own: str) -> set[str]:
    """``target`` and the packages Python runs before it, except ``own``'s (a module's own
    package is already being imported when the module runs: re-exporting is no circle)."""
    parts = target.split(".")
    mine = own.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts) + 1)
            if parts[:k] != mine[:k] or k > len(mine)}


def import_graph(nested: bool, typed: bool = False) -> dict[str, set[str]]:
    """Module -> the src modules it imports. ``from a import b`` reaches ``a.b`` when that is
    a module, else ``a``; importing ``a.b`` also reaches the package ``a`` (Python runs its
    ``__init__`` first) unless ``a`` is the importer's own package."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        package = name if is_pkg else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text()).body, nested, typed):
            if isinstance(node, ast.Import):
                for a in node.names:
                    edges |= _with_packages(a.name, package)
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                edges |= _with_packages(target if target in mods else base, package)
        graph[name] = (edges & set(mods)) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_checker_finds_a_circle_and_reads_relative_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph(nested=False)
    assert "parsefl.errors" in graph["parsefl.registry"]
    assert "parsefl.model.weights" in graph["parsefl.config"]
    assert len(graph) > 50


def test_the_checker_counts_packages_and_type_only_imports():
    graph = import_graph(nested=False)
    assert "parsefl.runtime" in graph["parsefl.experiments.run.driver"]  # the package itself
    assert "parsefl.runtime" not in graph["parsefl.runtime.engine"]  # its own package
    assert "parsefl.runtime.protocols" not in graph["parsefl.runtime.warm_start"]
    assert "parsefl.runtime.protocols" in import_graph(False, typed=True)[
        "parsefl.runtime.warm_start"]


@pytest.mark.parametrize(("nested", "typed"), [(False, False), (True, False), (True, True)],
                         ids=["module-level", "with-function-level", "with-type-only"])
def test_no_import_cycle_in_src(nested, typed):
    assert cycles(import_graph(nested, typed)) == []


# Each module in a child forked from a process that holds the third-party libraries but no
# parsefl module: an import order that only works after something else was imported fails.
FRESH = textwrap.dedent("""
    import importlib, os, sys, traceback
    # the third-party libraries src/ imports at module level: shared, imported once
    import numpy, torch, networkx, yaml, pydantic, scipy, safetensors, rich, typer  # noqa: F401
    import cryptography, grpc, torch.distributed, torch.func  # noqa: F401
    failed, running = [], {}
    def reap():
        pid, status = os.wait()
        if status != 0:
            failed.append(running[pid])
        del running[pid]
    for name in sys.argv[1:]:  # as many children at once as there are cores
        while len(running) >= (os.cpu_count() or 1):
            reap()
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                os._exit(0 if not (err.name or "").startswith("parsefl") else 1)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        running[pid] = name
    while running:
        reap()
    print("FAILED", *sorted(failed))
""")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_every_module_imports_first_in_a_fresh_interpreter():
    """``python -c "import parsefl.X"`` works for every module X (once failed for the attack
    send hook: it imported the runtime package, whose engine imported the hook back)."""
    names = sorted(_modules())
    out = subprocess.run([sys.executable, "-c", FRESH, *names], capture_output=True, text=True,
                         timeout=600, cwd=SRC.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "FAILED", out.stderr[-3000:]


SHARED_ALIASES = {"Tensors", "HopPath", "PhysicalLink", "OverlayLink", "Link"}


def test_shared_type_aliases_are_defined_once_at_the_bottom():
    """``parsefl.types`` imports no parsefl module, and no other module assigns one of its
    aliases (nor the old ambiguous ``Link``) at module level."""
    assert import_graph(nested=True)["parsefl.types"] == set()
    redefined = []
    for name, (path, _) in _modules().items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            redefined += [f"{name}.{t.id}" for t in targets
                          if isinstance(t, ast.Name) and t.id in SHARED_ALIASES]
    assert sorted(redefined) == ["parsefl.types.HopPath", "parsefl.types.OverlayLink",
                                 "parsefl.types.PhysicalLink", "parsefl.types.Tensors"]
