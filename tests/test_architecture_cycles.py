"""No import cycles between the modules of one package (issue 11), function-local imports
included; imports under ``if TYPE_CHECKING:`` (annotations only) do not count.

The graph comes from grimp (import-linter's engine), which reads every import statement
of every module, also those inside functions. Within each package the nodes are the
package itself (its ``__init__``) and its direct children; an import of a deeper module
counts as one of the child that contains it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

PACKAGE = "aioreftable"

# Cycles still to be removed, each as the sorted modules of one strongly connected
# component. Empty: keep it so (the test fails on a stale entry as well).
ALLOWED: frozenset[tuple[str, ...]] = frozenset()


def strongly_connected(
    nodes: Iterable[str], edges: Mapping[str, Iterable[str]]
) -> list[tuple[str, ...]]:
    """Tarjan: the components of more than one node, each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sorted(found)


def _member(module: str, package: str, children: set[str]) -> str | None:
    """The node of ``package`` that ``module`` belongs to, if any."""
    if module == package:
        return package
    for child in children:
        if module == child or module.startswith(child + "."):
            return child
    return None


def package_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every import cycle among the modules of one package, for every package."""
    cycles: list[tuple[str, ...]] = []
    packages = sorted(m for m in graph.modules if graph.find_children(m))
    for package in packages:
        children = graph.find_children(package)
        edges: dict[str, set[str]] = {}
        for node in {package} | children:
            sources = [node] if node == package else [node, *graph.find_descendants(node)]
            for source in sources:
                for imported in graph.find_modules_directly_imported_by(source):
                    target = _member(imported, package, children)
                    if target is not None and target != node:
                        edges.setdefault(node, set()).add(target)
        cycles.extend(strongly_connected({package} | children, edges))
    return cycles


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(
        PACKAGE, include_external_packages=False, exclude_type_checking_imports=True
    )


def test_no_import_cycles_within_a_package() -> None:
    new = [cycle for cycle in package_cycles(_graph()) if cycle not in ALLOWED]
    assert not new, "import cycles:\n" + "\n".join("  " + " <-> ".join(c) for c in new)


def test_the_allowlist_names_only_existing_cycles() -> None:
    stale = ALLOWED - set(package_cycles(_graph()))
    assert not stale, f"no longer cycles, remove from ALLOWED: {sorted(stale)}"


def test_function_local_imports_count_and_type_checking_imports_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cyclepkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from . import a\n    return a\n",  # a cycle only at run time
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import d\n",
        "d.py": "from . import c\n",  # c imports d for annotations only: no cycle
        "sub/__init__.py": "",
        "sub/x.py": "from .. import e\n",
        "e.py": "from .sub import x\n",  # e <-> sub, through sub's module x
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph(
        "cyclepkg", include_external_packages=False, exclude_type_checking_imports=True,
        cache_dir=None,
    )  # fmt: skip
    assert package_cycles(graph) == [("cyclepkg.a", "cyclepkg.b"), ("cyclepkg.e", "cyclepkg.sub")]


def test_strongly_connected_finds_longer_cycles() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert strongly_connected("abcd", edges) == [("a", "b", "c")]
