"""Maintenance of the ref store: pack_refs/optimize (git's refs optimize) and verify."""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio

from .. import _repo_io as repo_io
from .._errors import ReftableError
from .._format._layout import HashAlgorithm
from .._format._merged import MergedTable
from .._format._reader import TableReader
from .._format._records import RefRecord, RefValueType
from .._format._verify import check_table
from .._fs import TEMP_NAME
from .._stack._inspect import Inspection, inspect_stack
from ._core import decode_name, is_root_ref
from ._refname import check_refname_format, parse_worktree_ref, refname_is_readable

if TYPE_CHECKING:
    from ._core import RefCore as RefStore

__all__ = ["GIT_CODES", "VerifyFinding", "optimize", "verify"]

Severity = Literal["error", "warning"]

#: The message ids git's ``refs verify`` reports for a reftable repository.
GIT_CODES = frozenset(
    {
        "badReftableTableName",
        "badRefOid",
        "badHeadTarget",
        "badReferentName",
        "symrefTargetIsNotARef",
    }
)


@dataclass(frozen=True, slots=True)
class VerifyFinding:
    """One problem found by :meth:`RefStore.verify`.

    ``code`` is git's fsck message id for git's checks (:data:`GIT_CODES`) or one of ours
    (``badReftableStack``, ``badReftableTable``, ``badReftableUpdateIndex``,
    ``unlistedReftableTable``, ``staleReftableTable``, ``reftableLockPresent``,
    ``reftableTempFile``, ``badRefName``); ``path`` is a table name or a refname
    (``worktrees/<id>/...`` for another worktree's stack).
    ``str()`` gives git's line, e.g.
    ``error: refs/heads/x: badReferentName: points to invalid refname 'garbage'``."""

    severity: Severity
    code: str
    path: str
    message: str

    @property
    def from_git(self) -> bool:
        """Whether git's ``refs verify`` (2.53+) makes this check too."""
        return self.code in GIT_CODES

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.code}: {self.message}"


# -- pack_refs / optimize --------------------------------------------------------------------
async def optimize(store: RefStore, *, auto: bool) -> bool:
    """git's reftable_be_optimize on this worktree's stack: auto-compaction (``auto``) or
    compact everything, then remove stale tables. Returns whether a compaction ran."""
    stack = store.own_stack
    await stack.wait_idle()  # our own background compaction would hold table locks
    done = await (stack.auto_compact() if auto else stack.compact_all())
    await stack.clean()
    return done


# -- verify ----------------------------------------------------------------------------------
def _strtoull(text: str, pos: int) -> tuple[int, bool]:
    """C's strtoull(..., 16) from ``pos``: (end position, overflow)."""
    n = len(text)
    i = pos
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    if i < n and text[i] in "+-":
        i += 1
    if text[i : i + 2].lower() == "0x" and i + 2 < n and text[i + 2] in string.hexdigits:
        i += 2
    start = i
    while i < n and text[i] in string.hexdigits:
        i += 1
    if i == start:
        return pos, False  # no conversion: endptr is the start
    return i, int(text[start:i], 16) >= 1 << 64


def valid_table_name(name: str) -> bool:
    """git's table_has_valid_name: ``hex-hex-hex`` (strtoull rules) then ``.ref``/``.log``."""
    pos = 0
    for last in (False, False, True):
        pos, overflow = _strtoull(name, pos)
        if overflow:
            return False
        if last:
            break
        if name[pos : pos + 1] != "-":
            return False
        pos += 1
    return name[pos:] in (".ref", ".log")


@dataclass(slots=True)
class _Stack:
    """One stack to verify: its directory, git's label and the prefix of its refnames."""

    directory: Path
    worktree: str | None  # None: the main worktree
    prefix: str

    def broken(self) -> VerifyFinding:
        """git's error for a stack that cannot be opened (the details follow it)."""
        label = self.worktree if self.worktree is not None else "main"
        rel = "reftable" if self.worktree is None else f"worktrees/{self.worktree}/reftable"
        text = f"reftable stack for worktree '{label}' is broken"
        return VerifyFinding("error", "badReftableStack", rel, text)


def _stacks(store: RefStore) -> list[_Stack]:
    """The main stack and the stack of every linked worktree (git's get_worktrees: the
    ones whose ``gitdir`` file can be read)."""
    common = store.layout.common_dir
    out = [_Stack(store.layout.main_stack, None, "")]
    for wid in repo_io.linked_worktrees(common):
        out.append(_Stack(common / "worktrees" / wid / "reftable", wid, f"worktrees/{wid}/"))
    return out


def _open_failures(found: Inspection) -> list[VerifyFinding]:
    problems: list[VerifyFinding] = []
    for name, e in found.failures.items():
        if isinstance(e, FileNotFoundError):
            why = "listed in tables.list but missing"
        else:
            why = getattr(e, "reason", None) or str(e)
        problems.append(VerifyFinding("error", "badReftableTable", name, why))
    return problems


def _table_findings(readers: list[TableReader], algo: HashAlgorithm) -> Iterator[VerifyFinding]:
    """Our deep checks: every block decodes (CRCs, zlib), key order, update-index limits,
    indexes, the object format, and update-index order of consecutive tables."""
    prev: TableReader | None = None
    for reader in readers:
        name = os.path.basename(reader.name or "")
        if reader.hash != algo:
            why = f"table uses {reader.hash.name}, the repository {algo.name}"
            yield VerifyFinding("error", "badReftableTable", name, why)
        for f in check_table(reader):
            where = "" if f.offset is None else f" (at offset {f.offset})"
            yield VerifyFinding("error", "badReftableTable", name, f.message + where)
        if prev is not None and reader.min_update_index <= prev.max_update_index:
            yield VerifyFinding(
                "error",
                "badReftableUpdateIndex",
                name,
                f"update indexes {reader.min_update_index}..{reader.max_update_index} overlap "
                f"the table below ({prev.min_update_index}..{prev.max_update_index})",
            )
        prev = reader


def _unlisted(found: Inspection, max_index: int) -> Iterator[VerifyFinding]:
    """``*.ref`` files that tables.list does not name (files that are no table are left
    alone, like git's clean does)."""
    for name, top in found.unlisted.items():
        if top is None:
            continue
        if top > max_index:
            why = (
                f"not in tables.list and newer than the stack (update index {top} > "
                f"{max_index}): a commit in progress or interrupted"
            )
            yield VerifyFinding("warning", "unlistedReftableTable", name, why)
        else:
            why = "not in tables.list (left by a compaction); pack_refs() removes it"
            yield VerifyFinding("warning", "staleReftableTable", name, why)


def _locks(found: Inspection) -> Iterator[VerifyFinding]:
    """Lock files: held by a running writer or compactor, or left behind by a crash."""
    for name in found.files:
        if not name.endswith(".lock"):
            continue
        why = (
            "lock file present: a git or aioreftable process holds it, or a crashed one left "
            "it behind (remove it by hand only if no such process is running)"
        )
        yield VerifyFinding("warning", "reftableLockPresent", name, why)


def _temps(found: Inspection) -> Iterator[VerifyFinding]:
    """Temp tables (``<prefix>.temp.*``): being written, or left behind by a crash."""
    for name in found.files:
        if ".temp." not in name:
            continue
        if TEMP_NAME.fullmatch(name):
            why = (
                "temporary table of an aioreftable writer: being written, or left by a crashed "
                "one; pack_refs()/clean() removes it once no process holds it (flock) and it "
                "is unmodified for 60 s"
            )
        else:
            why = (
                "temporary table (git's, or another tool's): being written, or left by a "
                "crashed writer; nothing removes it (delete it by hand when no writer runs)"
            )
        yield VerifyFinding("warning", "reftableTempFile", name, why)


def _symref_findings(path: str, refname: str, target: str) -> Iterator[VerifyFinding]:
    """git's refs_fsck_symref."""
    stripped = parse_worktree_ref(refname)[2]
    if stripped == "HEAD" and not target.startswith("refs/heads/"):
        yield VerifyFinding("error", "badHeadTarget", path, f"HEAD points to non-branch '{target}'")
        return
    if is_root_ref(target):
        return
    if not check_refname_format(target):
        why = f"points to invalid refname '{target}'"
        yield VerifyFinding("error", "badReferentName", path, why)
        return
    if not target.startswith(("refs/", "worktrees/")):
        yield VerifyFinding(
            "warning", "symrefTargetIsNotARef", path, f"points to non-ref target '{target}'"
        )


def _name_findings(prefix: str, raw: bytes, kind: str) -> Iterator[VerifyFinding]:
    """``badRefName`` for a record's name: an error if git dies on it ("refname is
    dangerous") or reads another name (a NUL byte ends its C string), a warning if git
    ignores it (a safe but malformed name)."""
    name = decode_name(raw)
    path = prefix + (name if name.isprintable() else repr(name)[1:-1])
    if b"\0" in raw:
        seen = decode_name(raw[: raw.index(b"\0")])
        why = f"{kind} name contains a NUL byte (git reads it as '{seen}')"
        yield VerifyFinding("error", "badRefName", path, why)
    elif not refname_is_readable(name):
        why = f"{kind} name is neither a valid nor a safe refname (git dies on it)"
        yield VerifyFinding("error", "badRefName", path, why)
    elif not check_refname_format(name, allow_onelevel=True):
        why = f"{kind} name is not a valid refname (git ignores it)"
        yield VerifyFinding("warning", "badRefName", path, why)


def _ref_findings(
    st: _Stack, readers: list[TableReader], algo: HashAlgorithm
) -> Iterator[VerifyFinding]:
    """git's reftable_be_fsck ref loop (null ids, symref targets), plus the names of refs
    and reflogs (:func:`_name_findings`)."""
    merged = MergedTable(readers, hash=algo)
    last: bytes | None = None
    for log in merged.iter_logs():
        if log.refname != last:
            last = log.refname
            yield from _name_findings(st.prefix, log.refname, "reflog")
    rec: RefRecord
    for rec in merged.iter_refs(b""):
        yield from _name_findings(st.prefix, rec.refname, "ref")
        name = decode_name(rec.refname)
        path = st.prefix + name
        if rec.value_type == RefValueType.SYMREF:
            yield from _symref_findings(path, name, decode_name(rec.target or b""))
        elif rec.value_type != RefValueType.DELETION and rec.oid == algo.null_id:
            yield VerifyFinding(
                "error", "badRefOid", path, f"points to invalid object ID '{algo.null_hex}'"
            )


def _verify_stack(st: _Stack, algo: HashAlgorithm) -> list[VerifyFinding]:
    try:
        found = inspect_stack(str(st.directory))  # a FIFO is refused, not waited for
    except (OSError, ReftableError) as e:
        reason = getattr(e, "reason", None) or str(e)
        return [st.broken(), VerifyFinding("error", "badReftableTable", "tables.list", reason)]
    try:
        problems = _open_failures(found)
        if problems:
            return [st.broken(), *problems]
        names = found.names
        readers = [found.tables[n] for n in names]
        out = [
            VerifyFinding("warning", "badReftableTableName", n, "invalid reftable table name")
            for n in names
            if not valid_table_name(n)
        ]
        out.extend(_table_findings(readers, algo))
        max_index = max((r.max_update_index for r in readers), default=0)
        out.extend(_unlisted(found, max_index))
        out.extend(_locks(found))
        out.extend(_temps(found))
        if not any(f.code == "badReftableTable" for f in out):
            try:
                out.extend(_ref_findings(st, readers, algo))
            except ReftableError as e:
                out.append(VerifyFinding("error", "badReftableTable", "tables.list", str(e)))
        return out
    finally:
        found.close()


def verify_sync(store: RefStore) -> list[VerifyFinding]:
    findings: list[VerifyFinding] = []
    for st in _stacks(store):
        findings.extend(_verify_stack(st, store.hash))
    return findings


async def verify(store: RefStore) -> list[VerifyFinding]:
    """git's ``refs verify`` for every worktree's stack plus our deep table checks."""
    for stack in (store.main, store.worktree):
        if stack is not None:
            await stack.wait_idle()  # our own background compaction holds locks meanwhile
    return await anyio.to_thread.run_sync(verify_sync, store)
