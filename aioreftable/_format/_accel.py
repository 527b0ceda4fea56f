"""Which block decoder is live: the compiled ``_speedups`` or the pure-Python reference."""

from __future__ import annotations

import importlib
import os
from typing import Any, Protocol, cast

from ._records import RefRecord, RefValueType

__all__ = ["ACCELERATED", "PURE_PYTHON_ENV", "RefIter", "Speedups", "speedups"]

PURE_PYTHON_ENV = "AIOREFTABLE_PURE_PYTHON"  # set (not "" or "0"): use the reference only


class RefIter(Protocol):
    """The compiled lazy decoder: records until the block ends or one it cannot decode."""

    @property
    def pos(self) -> int: ...

    @property
    def prev(self) -> bytes: ...

    def __iter__(self) -> RefIter: ...

    def __next__(self) -> Any: ...


class Speedups(Protocol):
    """The compiled module's functions (aioreftable/_format/_speedups.c says what each does)."""

    def ref_records(
        self,
        data: bytes,
        pos: int,
        end: int,
        prev: bytes,
        hash_size: int,
        mui: int,
        limit: int,
        prefix: bytes = b"",
    ) -> tuple[list[Any], int, bytes]: ...

    def ref_iter(
        self, data: bytes, pos: int, end: int, prev: bytes, hash_size: int, mui: int
    ) -> RefIter: ...

    def seek(
        self, data: bytes, first_pos: int, end: int, count: int, hash_size: int, want: bytes
    ) -> tuple[int, bytes] | None: ...

    def hot_index(self, data: bytes, first_pos: int, end: int, hash_size: int) -> bytes | None: ...

    def hot_seek(self, index: bytes, want: bytes) -> tuple[int, bytes]: ...

    def configure(self, record: type[Any], *value_types: Any) -> None: ...

    def common_prefix(self, a: bytes, b: bytes) -> int: ...

    def configure_ref(self, ref: type[Any]) -> bool: ...

    def refs_from_records(
        self, records: list[Any], start: int, under: bytes
    ) -> tuple[list[Any], int]: ...


def _load() -> Speedups | None:
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:  # a compiled module has no stub: the protocol above is its type
        module = cast(Speedups, importlib.import_module(__package__ + "._speedups"))
    except ImportError:  # not built (no compiler at install time): the reference decodes
        return None
    v = RefValueType
    module.configure(RefRecord, v.DELETION, v.VAL1, v.VAL2, v.SYMREF)
    return module


speedups = _load()
ACCELERATED = speedups is not None
