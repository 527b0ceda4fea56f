"""The blocking OS seam of git's files ref backend (packed-refs, loose refs, logs/) and of
the ref-storage migration (its temporary directory, the swap, the config rewrite): one
whole unit of work per call.

Never imports anyio: the ref layer runs each unit in a worker thread, as it runs
``_repo_io``. Errors are the OS's, unwrapped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FilesTree",
    "edit_config",
    "locks_held",
    "make_temp_dir",
    "read_files_tree",
    "remove_dir",
    "swap_in",
    "write_files_tree",
]

_TEMP_CHARS = string.ascii_letters + string.digits


@dataclass
class FilesTree:
    """The files backend's bytes as read from (or to be written to) one git directory:
    ``packed`` is packed-refs (None: no file), ``loose`` the loose refs and root refs by
    ref name, ``logs`` the reflog files by ref name."""

    packed: bytes | None = None
    loose: dict[str, bytes] = field(default_factory=dict)
    logs: dict[str, bytes] = field(default_factory=dict)


_READ_SIZE = 1 << 16


def _slurp(path: str | os.PathLike[str]) -> bytes:
    """A whole regular file (os.read without a file object: many small files are read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _READ_SIZE)
        if len(data) < _READ_SIZE:
            return data  # a short read of a regular file is its end
        parts = [data]
        while chunk := os.read(fd, _READ_SIZE):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _walk_files(top: Path, prefix: str, out: dict[str, bytes]) -> None:
    """Every regular file below ``top`` by ``prefix/relative/name``, in name order; hidden
    entries and ``*.lock`` skipped as git's loose-ref and reflog iterators skip them."""
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name.endswith(".lock"):
            continue
        name = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_dir(follow_symlinks=False):
            _walk_files(Path(entry.path), name, out)
        elif entry.is_file(follow_symlinks=False):
            out[name] = _slurp(entry.path)


def read_files_tree(git_dir: Path, is_root_ref: Callable[[str], bool]) -> FilesTree:
    """Read a files-backend repository's refs: packed-refs, ``refs/`` and the root refs
    in ``git_dir`` (``is_root_ref`` picks them by name), and every file of ``logs/``."""
    tree = FilesTree()
    with contextlib.suppress(FileNotFoundError):
        tree.packed = _slurp(git_dir / "packed-refs")
    for entry in sorted(os.scandir(git_dir), key=lambda e: e.name):
        if is_root_ref(entry.name) and entry.is_file(follow_symlinks=False):
            tree.loose[entry.name] = _slurp(entry.path)
    _walk_files(git_dir / "refs", "refs", tree.loose)
    _walk_files(git_dir / "logs", "", tree.logs)
    return tree


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """git's mkdtemp(``parent/prefix.XXXXXX``): a new directory of mode 0700."""
    for _ in range(100):
        path = parent / (prefix + "".join(secrets.choice(_TEMP_CHARS) for _ in range(6)))
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"cannot create a unique directory {parent / prefix}XXXXXX")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with open(fd, "wb") as f:
        f.write(data)


def write_files_tree(
    root: Path,
    directories: Iterable[str],
    files: Iterable[tuple[str, bytes]],
    *,
    mode: int = 0o666,
    dir_mode: int = 0o777,
) -> None:
    """Create ``directories`` and write each new file of ``files`` (relative path, bytes)
    under ``root``, making the directories a file needs; nothing is replaced."""
    made: set[str] = set()

    def make(rel: str) -> None:
        if rel in made or not rel:
            return
        os.makedirs(root / rel, dir_mode, exist_ok=True)
        made.add(rel)

    for rel in directories:
        make(rel)
    for rel, data in files:
        make(os.path.dirname(rel))
        _write_new(root / rel, data, mode)


def locks_held(git_dir: Path, candidates: Iterable[str]) -> list[str]:
    """The lock files among ``candidates`` (paths relative to ``git_dir``) that exist, and
    any ``*.lock`` below ``refs/``: a writer is mid-transaction."""
    held = [rel for rel in candidates if os.path.lexists(git_dir / rel)]
    for dirpath, _dirs, names in os.walk(git_dir / "refs"):
        held.extend(
            os.path.relpath(os.path.join(dirpath, n), git_dir)
            for n in sorted(names)
            if n.endswith(".lock")
        )
    return held


def remove_dir(path: Path) -> None:
    """Remove a directory tree (a dry run's result, or a failed migration's)."""
    shutil.rmtree(path)


def _remove(git_dir: Path, trees: Iterable[str], files: Iterable[str], dirs: Iterable[str]) -> None:
    for rel in trees:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(git_dir / rel)
    for rel in files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(git_dir / rel)
    for rel in dirs:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(git_dir / rel)


def swap_in(
    git_dir: Path,
    new: Path,
    *,
    trees: Iterable[str] = (),
    files: Iterable[str] = (),
    dirs: Iterable[str] = (),
) -> None:
    """git's destructive half of the migration: delete the old backend (the directory
    ``trees``, then ``files``, then the emptied ``dirs``, all relative to ``git_dir``),
    rename every entry of ``new`` into ``git_dir`` and remove ``new``."""
    _remove(git_dir, trees, files, dirs)
    for name in sorted(os.listdir(new)):
        os.rename(new / name, git_dir / name)
    os.rmdir(new)


def edit_config(path: Path, edit: Callable[[bytes], bytes]) -> None:
    """Rewrite a config file as git does: take ``config.lock`` (O_EXCL, FileExistsError
    when held), write ``edit(old bytes)`` into it with the old file's mode, rename it over
    the file."""
    lock = path.with_name(path.name + ".lock")
    with open(path, "rb") as f:
        old = f.read()
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "wb") as out:
            out.write(edit(old))
        os.chmod(lock, mode)
        os.rename(lock, path)
    except BaseException:
        os.unlink(lock)
        raise
