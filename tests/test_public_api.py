"""The public surface: exported names, lazy loading, exceptions, version, packaging files."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pkgutil
import subprocess
import sys
from pathlib import Path

import aioreftable

ROOT = Path(__file__).resolve().parent.parent
INIT = ROOT / "aioreftable" / "__init__.py"


def _type_checking_imports() -> dict[str, str]:
    """name -> relative module of the ``from .x import Name as Name`` lines under
    ``if TYPE_CHECKING:`` in ``aioreftable/__init__.py``."""
    tree = ast.parse(INIT.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.unparse(stmt)
                for alias in stmt.names:
                    assert alias.asname == alias.name, "re-export as the same name"
                    found[alias.name] = "." * stmt.level + (stmt.module or "")
    return found


def test_all_lazy_table_and_type_checking_imports_agree() -> None:
    lazy: dict[str, str] = aioreftable._LAZY
    assert _type_checking_imports() == lazy
    assert set(lazy) <= set(aioreftable.__all__)
    assert len(set(aioreftable.__all__)) == len(aioreftable.__all__), "duplicates in __all__"
    for name in aioreftable.__all__:
        assert getattr(aioreftable, name) is not None, name


def test_dir_shows_the_public_names_and_hides_helpers() -> None:
    listed = dir(aioreftable)
    for name in ("open_ref_store", "RefStore", "init_repo", "open_stack", "__version__"):
        assert name in listed
    for name in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert name not in listed
    assert set(aioreftable.__all__) <= set(listed)


def test_help_lists_lazy_names_in_a_fresh_interpreter() -> None:
    code = (
        "import aioreftable, pydoc\nprint(pydoc.render_doc(aioreftable, renderer=pydoc.plaintext))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for name in ("open_ref_store", "RefStore", "init_repo"):
        assert name in out


def _package_modules() -> list[str]:
    names = ["aioreftable"]
    for info in pkgutil.walk_packages(aioreftable.__path__, "aioreftable."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI when imported
        names.append(info.name)
    return names


def test_every_exception_class_of_the_library_is_exported() -> None:
    """A caller can catch whatever the library raises by a name from ``aioreftable``.

    Every exception (and warning) class defined in the library proper is exported; the
    CLI's private exceptions never leave the CLI, and a library class marked private
    with a leading underscore is control flow between two modules that never reaches a
    caller (``_transaction._OutsideGroup``: caught by group commit)."""
    missing: list[str] = []
    classes = 0
    for module_name in _package_modules():
        if module_name.startswith("aioreftable.cli"):
            continue
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module_name
            ):
                classes += 1
                name = value.__name__
                if name.startswith("_"):
                    continue
                if getattr(aioreftable, name, None) is not value or name not in aioreftable.__all__:
                    missing.append(f"{module_name}.{name}")
    assert classes >= 20
    assert missing == []


def test_exported_exceptions_share_one_base() -> None:
    for name in aioreftable.__all__:
        value = getattr(aioreftable, name)
        if not isinstance(value, type) or not issubclass(value, Exception):
            continue
        if issubclass(value, Warning):
            assert not issubclass(value, aioreftable.ReftableError), name
        else:
            assert issubclass(value, aioreftable.ReftableError), name


def test_version_has_one_source() -> None:
    assert importlib.metadata.version("aioreftable") == aioreftable.__version__
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()


def test_license_file_ships_with_the_package() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    meta = importlib.metadata.metadata("aioreftable")
    assert meta["License-Expression"] == "MIT"
    assert "Typing :: Typed" in (meta.get_all("Classifier") or [])
