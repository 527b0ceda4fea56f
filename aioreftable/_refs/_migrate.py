"""Ref-storage migration, files <-> reftable (git's repo_migrate_ref_storage_format): the
new backend is written into a temporary directory, then swapped in and the config updated.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import anyio
import anyio.lowlevel

from .. import _files_io as files_io
from .. import _repo_io as repo_io
from .._errors import LockError, UsageError
from .._format._layout import HashAlgorithm
from .._format._records import LogRecord, RefRecord, RefValueType
from .._format._writer import WriteOptions
from .._repo import NotARepositoryError, RepositoryLayout
from .._stack import Snapshot, StackOptions, open_stack
from ._config import load_store_config
from ._configfile import parse_config
from ._core import decode_name, encode_name, is_root_ref, parse_loose_ref
from ._filesbackend import (
    LogLine,
    PackedRef,
    format_loose,
    format_packed_refs,
    format_reflog_line,
    parse_packed_refs,
    parse_reflog,
)
from ._ident import strip_crud
from ._peel import ObjectDatabase
from ._refname import check_refname_format, reflog_message

__all__ = ["MigrationProgress", "RefFormat", "migrate_refs"]

RefFormat = Literal["files", "reftable"]
FORMATS: tuple[RefFormat, ...] = ("files", "reftable")
TEMP_PREFIX = "ref_migration."
# Extensions that need core.repositoryformatversion = 1 (git's handle_extension).
_V1_EXTENSIONS = frozenset(
    {"noop-v1", "objectformat", "compatobjectformat", "refstorage", "relativeworktrees",
     "submodulepathconfig"}
)  # fmt: skip
_NO_TRUNCATION = 1 << 62  # the files backend does not cut reflog messages


class MigrationProgress(Protocol):
    """What :func:`migrate_refs` reports to (the CLI's progress bar): the number of refs
    and reflog entries to migrate, then each batch done."""

    def total(self, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Repo(NamedTuple):
    git_dir: Path
    common_dir: Path
    work_tree: Path | None
    object_format: str
    ref_format: str
    config: bytes


class _Ref(NamedTuple):
    """One ref to migrate: an id (and its peeled id when known) or a symref target."""

    name: str
    oid: bytes | None
    target: str | None
    peeled: bytes | None


@dataclass
class _Refs:
    """The refs and reflogs (oldest entry first) read from the old backend, and the root
    ref files it has (broken ones too: the swap deletes them all, as git's does)."""

    refs: list[_Ref]
    logs: list[tuple[str, list[LogLine]]]
    root_files: tuple[str, ...] = ()

    def count(self) -> int:
        return len(self.refs) + sum(len(entries) for _, entries in self.logs)


# -- the repository --------------------------------------------------------------------------
def _git_dir_of(start: Path, env: Mapping[str, str]) -> tuple[Path, Path | None]:
    """The git dir and work tree, found as git (and ``_repo.discover``) finds them."""
    if env.get("GIT_DIR"):
        git_dir = Path(env["GIT_DIR"])
        work = env.get("GIT_WORK_TREE")
        return (git_dir if git_dir.is_absolute() else start / git_dir), (
            Path(work) if work else None
        )
    here = repo_io.resolve(start)
    for candidate in (here, *here.parents):
        dot_git = candidate / ".git"
        if repo_io.is_file(dot_git):
            text = repo_io.read_text(dot_git).strip()
            if not text.startswith("gitdir:"):
                raise NotARepositoryError(f"invalid gitfile format: {dot_git}")
            target = Path(text[len("gitdir:") :].strip())
            return (target if target.is_absolute() else candidate / target), candidate
        if repo_io.is_file(dot_git / "HEAD"):
            return dot_git, candidate
        if repo_io.is_file(candidate / "HEAD") and repo_io.is_dir(candidate / "objects"):
            return candidate, None
    raise NotARepositoryError(f"not a git repository (or any of the parent directories): {here}")


def _locate(start: Path, env: Mapping[str, str]) -> _Repo:
    """The repository at ``start``, whatever its ref storage (blocking: in a thread)."""
    git_dir, work_tree = _git_dir_of(start, env)
    git_dir = repo_io.resolve(git_dir)
    common = git_dir
    commondir = repo_io.read_optional(git_dir / "commondir")
    if commondir is not None:
        rel = Path(commondir.decode().strip())
        common = repo_io.resolve(rel if rel.is_absolute() else git_dir / rel)
    config = repo_io.read_bytes(common / "config")
    values = _config_values(config, str(common / "config"))
    return _Repo(
        git_dir,
        common,
        work_tree,
        (values.get("extensions.objectformat") or "sha1").lower(),
        (values.get("extensions.refstorage") or "files").lower(),
        config,
    )


def _config_values(config: bytes, name: str) -> dict[str, str | None]:
    return {key: value for key, value, _ in parse_config(config, name, lambda m: UsageError(m))}


# -- reading the old backend -----------------------------------------------------------------
async def _read_files(repo: _Repo, algorithm: HashAlgorithm, reflogs: bool) -> _Refs:
    tree = await anyio.to_thread.run_sync(files_io.read_files_tree, repo.common_dir, is_root_ref)
    refs, unpeeled, logs = await anyio.to_thread.run_sync(_parse_files, tree, algorithm, reflogs)
    if unpeeled:
        await _peel(repo, algorithm, refs, unpeeled)
    roots = tuple(name for name in tree.loose if is_root_ref(name))
    return _Refs([refs[n] for n in sorted(refs, key=encode_name)], logs, roots)


def _parse_files(
    tree: files_io.FilesTree, algorithm: HashAlgorithm, reflogs: bool
) -> tuple[dict[str, _Ref], set[str], list[tuple[str, list[LogLine]]]]:
    """The refs (loose over packed), the names whose peeled ids are not known, the reflogs
    (CPU work: run in a worker thread)."""
    packed: dict[str, PackedRef] = {}
    fully_peeled = False
    if tree.packed is not None:
        entries, fully_peeled = parse_packed_refs(tree.packed, algorithm)
        packed = {e.name: e for e in entries}
    refs: dict[str, _Ref] = {
        e.name: _Ref(e.name, e.oid, None, e.peeled if fully_peeled else None)
        for e in packed.values()
    }
    unpeeled: set[str] = set() if fully_peeled else set(packed)
    for name, content in tree.loose.items():
        parsed = parse_loose_ref(content, algorithm)
        if parsed is None:
            continue  # a broken loose ref: nothing to migrate
        oid, target = parsed
        if target is not None:
            refs[name] = _Ref(name, None, target, None)
            unpeeled.discard(name)
        elif oid is not None:
            refs[name] = _Ref(name, bytes.fromhex(oid), None, None)
            unpeeled.add(name)
    logs: list[tuple[str, list[LogLine]]] = []
    if reflogs:
        for name, data in tree.logs.items():
            if not check_refname_format(name, allow_onelevel=True):
                continue
            lines = parse_reflog(data, algorithm)
            if lines:
                logs.append((name, lines))
    return refs, unpeeled, logs


async def _peel(
    repo: _Repo, algorithm: HashAlgorithm, refs: dict[str, _Ref], names: set[str]
) -> None:
    """Peeled ids of ``names`` from the object database, as git's reftable writer peels."""
    if not await anyio.to_thread.run_sync(repo_io.is_dir, repo.common_dir / "objects"):
        return
    database = ObjectDatabase(repo.common_dir, algorithm)
    try:
        oids = sorted({oid.hex() for n in names if (oid := refs[n].oid) is not None})
        infos = await database.lookup(oids)
    finally:
        await database.aclose()
    for name in names:
        ref = refs[name]
        if ref.oid is None:
            continue
        info = infos.get(ref.oid.hex())
        if info is not None and info.peeled is not None:
            refs[name] = ref._replace(peeled=bytes.fromhex(info.peeled))


async def _read_reftable(repo: _Repo, algorithm: HashAlgorithm, reflogs: bool) -> _Refs:
    options = StackOptions(write_options=WriteOptions(hash=algorithm.name), auto_compact=False)
    async with open_stack(repo.common_dir / "reftable", options) as stack:
        snap = await stack.snapshot()
        return await anyio.to_thread.run_sync(_collect, snap, reflogs)


def _collect(snap: Snapshot, reflogs: bool) -> _Refs:
    """Every ref and reflog of a snapshot (CPU work: run in a worker thread)."""
    refs: list[_Ref] = []
    logs: list[tuple[str, list[LogLine]]] = []
    null = snap.hash.null_id
    for rec in snap.iter_refs():
        name = decode_name(rec.refname)
        if rec.value_type == RefValueType.SYMREF:
            assert rec.target is not None
            refs.append(_Ref(name, None, decode_name(rec.target), None))
        else:
            refs.append(_Ref(name, rec.oid, None, rec.peeled))
    if reflogs:
        current: bytes | None = None
        entries: list[LogLine] = []
        for log in snap.iter_logs():
            if log.refname != current:
                _add_log(logs, current, entries)
                current, entries = log.refname, []
            if log.old_id == null and log.new_id == null:
                continue  # the existence marker: no entry
            entries.append(
                LogLine(
                    log.old_id, log.new_id, log.name, log.email, log.time, log.tz_offset,
                    log.message,
                )
            )  # fmt: skip
        _add_log(logs, current, entries)
    return _Refs(refs, logs)


def _add_log(
    logs: list[tuple[str, list[LogLine]]], raw: bytes | None, newest_first: list[LogLine]
) -> None:
    if raw is None or not newest_first:
        return
    name = decode_name(raw)
    if check_refname_format(name, allow_onelevel=True):
        logs.append((name, newest_first[::-1]))


# -- writing the new backend -----------------------------------------------------------------
class _Idents:
    """git's fmt_ident on entries' names and emails (crud trimmed), once per pair."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}

    def __call__(self, entry: LogLine) -> tuple[bytes, bytes]:
        key = (entry.name, entry.email)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = (
                strip_crud(entry.name.decode("utf-8", "surrogateescape")),
                strip_crud(entry.email.decode("utf-8", "surrogateescape")),
            )
        return found


_TS = 1  # the update index of the refs; reflog entry i gets _TS + i (git's migration)
_CHUNK = 20_000  # records encoded per worker-thread call (a progress step)


def _records(refs: _Refs, block_size: int) -> tuple[list[RefRecord], list[LogRecord], int]:
    """The table's records in key order and the last update index (CPU work: run in a
    worker thread)."""
    ref_records = []
    for ref in refs.refs:
        raw = encode_name(ref.name)
        if ref.target is not None:
            ref_records.append(RefRecord.symref(raw, _TS, encode_name(ref.target)))
        elif ref.peeled is not None:
            assert ref.oid is not None
            ref_records.append(RefRecord.val2(raw, _TS, ref.oid, ref.peeled))
        else:
            assert ref.oid is not None
            ref_records.append(RefRecord.val1(raw, _TS, ref.oid))
    ref_records.sort(key=lambda r: r.refname)
    log_records: list[LogRecord] = []
    ident = _Idents()
    index = 0
    for name, entries in refs.logs:
        raw = encode_name(name)
        for entry in entries:
            who, mail = ident(entry)
            log_records.append(
                LogRecord(
                    raw, _TS + index, old_id=entry.old_id, new_id=entry.new_id, name=who,
                    email=mail, time=entry.time, tz_offset=entry.tz,
                    message=reflog_message(entry.message, block_size),
                )
            )  # fmt: skip
            index += 1
    log_records.sort(key=lambda r: (r.refname, -r.update_index))
    return ref_records, log_records, _TS + max(index - 1, 0)


async def _write_reftable(
    repo: _Repo,
    layout: RepositoryLayout,
    env: Mapping[str, str],
    temp: Path,
    refs: _Refs,
    progress: MigrationProgress | None,
) -> None:
    """The new reftable store in ``temp``: one table, the refs at update index 1 and each
    reflog entry at its own index after it (git's migration), plus git's stubs."""
    config = await load_store_config(layout, env, repo.git_dir)
    options = dataclasses.replace(config.stack_options(), auto_compact=False)
    ref_records, log_records, last = await anyio.to_thread.run_sync(
        _records, refs, config.block_size
    )
    if ref_records or log_records:
        async with (
            open_stack(temp / "reftable", options, create=True) as stack,
            stack.addition() as add,
        ):
            add.writer.set_limits(_TS, last)
            for i in range(0, len(ref_records), _CHUNK):
                batch = ref_records[i : i + _CHUNK]
                await anyio.to_thread.run_sync(add.writer.add_refs, batch)
                if progress is not None:
                    progress.advance(len(batch))
            for i in range(0, len(log_records), _CHUNK):
                logs = log_records[i : i + _CHUNK]
                await anyio.to_thread.run_sync(add.writer.add_logs, logs)
                if progress is not None:
                    progress.advance(len(logs))
    else:
        await anyio.to_thread.run_sync(
            partial(files_io.write_files_tree, temp, ["reftable"], [("reftable/tables.list", b"")])
        )
    stubs = [
        ("HEAD", b"ref: refs/heads/.invalid\n"),
        ("refs/heads", b"this repository uses the reftable format\n"),
    ]
    await anyio.to_thread.run_sync(partial(files_io.write_files_tree, temp, ["refs"], stubs))


async def _write_files(temp: Path, refs: _Refs, progress: MigrationProgress | None) -> None:
    """The new files store in ``temp`` (``_files_of``), written by one worker-thread call."""
    files = await anyio.to_thread.run_sync(_files_of, refs)
    await anyio.to_thread.run_sync(
        partial(files_io.write_files_tree, temp, ["refs/heads", "refs/tags"], files)
    )
    if progress is not None:
        progress.advance(refs.count())


def _files_of(refs: _Refs) -> list[tuple[str, bytes]]:
    """git's initial transaction: plain refs into packed-refs (with their peeled ids),
    symrefs and root refs into loose files, each reflog into ``logs/`` (CPU work: run in a
    worker thread)."""
    packed = []
    files: list[tuple[str, bytes]] = []
    for ref in refs.refs:
        if ref.target is not None:
            files.append((ref.name, format_loose(target=ref.target)))
        elif is_root_ref(ref.name):
            files.append((ref.name, format_loose(oid=ref.oid)))
        else:
            assert ref.oid is not None
            packed.append(PackedRef(ref.name, ref.oid, ref.peeled))
    if packed:
        files.append(("packed-refs", format_packed_refs(packed)))
    ident = _Idents()
    for name, entries in refs.logs:
        lines = []
        for entry in entries:
            who, mail = ident(entry)
            message = reflog_message(entry.message, _NO_TRUNCATION)
            lines.append(format_reflog_line(entry._replace(name=who, email=mail, message=message)))
        files.append((f"logs/{name}", b"".join(lines)))
    return files


# -- the config ------------------------------------------------------------------------------
def _edit_config(config: bytes, settings: Mapping[str, str | None]) -> bytes:
    """``config`` with each ``section.key`` of ``settings`` set (None: unset; a section
    left empty is removed), as git's config set writes it."""
    for key, value in settings.items():
        config = _set_one(config, key, value)
    return config


def _header_lines(lines: list[bytes], section: str) -> list[int]:
    out = []
    for i, line in enumerate(lines):
        text = line.strip()
        header = text.startswith(b"[") and text.endswith(b"]")
        if header and text[1:-1].strip().decode("utf-8", "replace").lower() == section:
            out.append(i)
    return out


def _set_one(config: bytes, key: str, value: str | None) -> bytes:
    section, name = key.split(".", 1)
    entries = list(parse_config(config, "config", lambda m: UsageError(m)))
    lines = config.split(b"\n")
    mine = [line - 1 for k, _, line in entries if k == key]
    if value is None:
        for i in reversed(mine):
            del lines[i]
        out = b"\n".join(lines)
        left = list(parse_config(out, "config", lambda m: UsageError(m)))
        if not any(k.startswith(section + ".") for k, _, _ in left):
            lines = out.split(b"\n")
            for i in reversed(_header_lines(lines, section)):
                del lines[i]
            out = b"\n".join(lines)
        return out
    new_line = f"\t{name} = {value}".encode()
    if mine:
        lines[mine[-1]] = new_line
        return b"\n".join(lines)
    in_section = [line - 1 for k, _, line in entries if k.startswith(section + ".")]
    headers = _header_lines(lines, section)
    if in_section or headers:
        at = max(in_section + headers) + 1
        lines.insert(at, new_line)
        return b"\n".join(lines)
    if config and not config.endswith(b"\n"):
        config += b"\n"
    return config + f"[{section}]\n".encode() + new_line + b"\n"


def _format_settings(
    config: bytes, algorithm: HashAlgorithm, to: RefFormat
) -> dict[str, str | None]:
    """git's initialize_repository_version(reinit): the ref storage extension and the
    repository format version it and the remaining extensions need."""
    settings: dict[str, str | None] = {
        "extensions.refstorage": "reftable" if to == "reftable" else None
    }
    values = _config_values(_edit_config(config, settings), "config")
    v1 = (
        algorithm.name != "sha1"
        or to != "files"
        or any(k.startswith("extensions.") and k.split(".", 1)[1] in _V1_EXTENSIONS for k in values)
    )
    settings["core.repositoryformatversion"] = "1" if v1 else "0"
    return settings


# -- the migration ---------------------------------------------------------------------------
async def migrate_refs(
    path: str | os.PathLike[str] = ".",
    *,
    to: RefFormat,
    dry_run: bool = False,
    reflogs: bool = True,
    env: Mapping[str, str] | None = None,
    progress: MigrationProgress | None = None,
) -> Path | None:
    """Move the refs of the repository at ``path`` to the ``to`` ref storage (``"files"``
    or ``"reftable"``), as ``git refs migrate --ref-format=<to>`` does: every ref (root
    refs, symrefs, peeled tags) and, unless ``reflogs`` is False, every reflog entry with
    its committer, time and zone.

    The new store is written into ``<git dir>/ref_migration.XXXXXX`` first; ``dry_run``
    stops there and returns that directory. Otherwise the old store is deleted, the new
    one renamed into place, ``extensions.refStorage`` and ``core.repositoryformatversion``
    set as git sets them, and None returned. An error after the new store is complete
    carries a note naming the directory that holds it (git's "migrated refs can be found
    at"). Refused (UsageError, git's messages): an unknown or the current format, a
    repository with linked worktrees. LockError: a lock file of the refs is held (a writer
    is mid-transaction). Nothing else may write the refs meanwhile, as with git."""
    env = os.environ if env is None else env
    if to not in FORMATS:
        raise UsageError(f"unknown ref storage format '{to}'")
    repo = await anyio.to_thread.run_sync(_locate, Path(path), env)
    if repo.ref_format == to:
        raise UsageError(f"repository already uses '{to}' format")
    if repo.ref_format not in FORMATS:
        raise UsageError(f"unknown ref storage format '{repo.ref_format}'")
    algorithm = HashAlgorithm.by_name(repo.object_format)
    if await anyio.to_thread.run_sync(repo_io.linked_worktrees, repo.common_dir):
        raise UsageError("migrating repositories with worktrees is not supported yet")
    candidates = ["packed-refs.lock", "reftable/tables.list.lock", "config.lock"]
    held = await anyio.to_thread.run_sync(files_io.locks_held, repo.common_dir, candidates)
    if held:
        raise LockError(
            f"Unable to migrate refs: '{repo.common_dir / held[0]}' exists; another git "
            "process seems to be running in this repository"
        )
    if repo.ref_format == "files":
        refs = await _read_files(repo, algorithm, reflogs)
    else:
        refs = await _read_reftable(repo, algorithm, reflogs)
    if progress is not None:
        progress.total(refs.count())
    layout = RepositoryLayout(repo.git_dir, repo.common_dir, repo.work_tree, repo.object_format)
    temp = await anyio.to_thread.run_sync(files_io.make_temp_dir, repo.common_dir, TEMP_PREFIX)
    try:
        if to == "reftable":
            await _write_reftable(repo, layout, env, temp, refs, progress)
        else:
            await _write_files(temp, refs, progress)
        await anyio.lowlevel.checkpoint()  # a cancellation now still leaves nothing behind
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(files_io.remove_dir, temp)
        raise
    if dry_run:
        return temp
    try:
        with anyio.CancelScope(shield=True):
            await _swap(repo, algorithm, to, temp, refs)
    except BaseException as exc:
        exc.add_note(f"migrated refs can be found at '{temp}'")
        raise
    return None


async def _swap(
    repo: _Repo, algorithm: HashAlgorithm, to: RefFormat, temp: Path, refs: _Refs
) -> None:
    """The destructive half: delete the old store, move the new one in, update the config."""
    if to == "reftable":
        remove = partial(
            files_io.swap_in, repo.common_dir, temp, trees=["refs", "logs"],
            files=[*refs.root_files, "packed-refs"],
        )  # fmt: skip
    else:
        remove = partial(
            files_io.swap_in, repo.common_dir, temp, trees=["reftable"],
            files=["HEAD", "refs/heads"], dirs=["refs"],
        )  # fmt: skip
    await anyio.to_thread.run_sync(remove)
    settings = _format_settings(repo.config, algorithm, to)
    await anyio.to_thread.run_sync(
        files_io.edit_config, repo.common_dir / "config", partial(_edit_config, settings=settings)
    )
