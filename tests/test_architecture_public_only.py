"""The applications outside the package (stress/, examples/) use only the public API: no
import of a private ``aioreftable._*`` module, at any depth, inside functions too. (Inside
the package, import-linter's contract checks cli, gc and dulwich the same way.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPLICATIONS = ("stress", "examples")


def private_imports(source: str) -> list[str]:
    """The private aioreftable modules ``source`` imports (``import`` and ``from``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "aioreftable" and any(p.startswith("_") for p in parts[1:]):
                found.append(name)
    return found


def test_the_check_finds_private_imports() -> None:
    assert private_imports("import aioreftable._refs._core\n") == ["aioreftable._refs._core"]
    assert private_imports("def f():\n    from aioreftable._stack import OS\n") == [
        "aioreftable._stack",
        "aioreftable._stack.OS",
    ]
    assert private_imports("from aioreftable import _fs\n") == ["aioreftable._fs"]
    assert private_imports("import aioreftable.lowlevel\nfrom aioreftable import OS\n") == []


@pytest.mark.parametrize("folder", APPLICATIONS)
def test_applications_import_only_public_modules(folder: str) -> None:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    bad = {str(p.relative_to(ROOT)): private_imports(p.read_text()) for p in files}
    assert {k: v for k, v in bad.items() if v} == {}
