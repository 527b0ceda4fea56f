"""No module of the package touches another object's private attributes (issue 11).

A private attribute (``_name``, not a dunder) may be used on ``self``, ``cls`` and
``super()`` only. Parts talk through declared interfaces instead: for example, additions
and compactions use the stack's ``StackCore`` (``aioreftable/_stack/_core.py``), never
``Stack``'s attributes. The rule is checked on the syntax tree of every module: attribute
access (``stack._snap``, ``self._store._main``) and ``getattr`` and its kin with a literal
private name.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aioreftable"

# The documented public API of named tuples (``typing.NamedTuple``), underscored only so
# as not to clash with field names.
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_field_defaults", "_make"})

# Known violations outside ``_stack``, left for the reshaping of ``_refs`` (issue 11 item 1)
# and the CLI. Each entry is (module, expression): remove an entry when its code goes; the
# test fails on an entry that no longer occurs, so this list only shrinks.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        # argparse has no public name for the type of add_subparsers()'s result
        ("cli/_show_ref.py", "argparse._SubParsersAction"),
    }
)


def _is_own(value: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: the object's own attributes."""
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
        and not value.args
    )


def foreign_private_uses(source: str) -> list[tuple[int, str]]:
    """(line, expression) of every ``x._name`` in ``source`` where x is not the object
    itself, and of every ``getattr``/``setattr``/``hasattr``/``delattr`` with a
    literal private name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in NAMEDTUPLE_API:
                continue
            if _is_own(node.value):
                continue
            found.append((node.lineno, ast.unparse(node)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and node.args[1].value.startswith("_")
            and not node.args[1].value.startswith("__")
            and not _is_own(node.args[0])
        ):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def _package_uses() -> Counter[tuple[str, str]]:
    uses: Counter[tuple[str, str]] = Counter()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for _, expression in foreign_private_uses(path.read_text(encoding="utf-8")):
            uses[module, expression] += 1
    return uses


def test_no_module_reads_another_objects_private_attributes() -> None:
    uses = _package_uses()
    new = sorted(use for use in uses if use not in ALLOWED)
    assert not new, "private attributes of other objects:\n" + "\n".join(
        f"  aioreftable/{module}: {expression}" for module, expression in new
    )


def test_the_allowlist_names_only_existing_violations() -> None:
    stale = sorted(ALLOWED - set(_package_uses()))
    assert not stale, "fixed, remove from ALLOWED:\n" + "\n".join(
        f"  aioreftable/{module}: {expression}" for module, expression in stale
    )


def test_the_stack_layer_needs_no_allowlist() -> None:
    assert not [use for use in ALLOWED if use[0].startswith("_stack/")]
    assert not [use for use in _package_uses() if use[0].startswith("_stack/")]


def test_the_check_sees_foreign_private_uses() -> None:
    source = """
class A:
    def f(self, other, stack):
        self._ok = super()._fine() + cls._also
        a = other._secret
        self._store._main.x = stack._snap
        getattr(stack, "_hop")
        return rec._replace(x=1), self.__dict__, obj.__class__, getattr(stack, "path")
"""
    assert foreign_private_uses(source) == [
        (5, "other._secret"),
        (6, "self._store._main"),
        (6, "stack._snap"),
        (7, "getattr(stack, '_hop')"),
    ]
