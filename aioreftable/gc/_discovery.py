"""Discovery: the reftable stacks (main and linked worktrees) of the repositories under roots."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import NotARepositoryError, UnsupportedRepositoryError, discover

__all__ = ["Found", "StackRef", "find_stacks", "list_key"]

LIST = "tables.list"


@dataclass(frozen=True, slots=True)
class StackRef:
    """One stack directory and the git dir whose config and refs it belongs to."""

    stack_dir: str
    git_dir: str
    main: bool  # the repository's main stack (False: a linked worktree's own stack)


@dataclass(slots=True)
class Found:
    stacks: dict[str, StackRef] = field(default_factory=dict)  # by stack directory
    files_backend: set[str] = field(default_factory=set)  # git dirs that are not reftable
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it was skipped


def _is_git_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "HEAD")) and (
        os.path.isdir(os.path.join(path, "objects"))
        or os.path.isfile(os.path.join(path, "commondir"))
    )


def _gitfile_target(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(4096).strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = text[len("gitdir:") :].strip()
    return os.path.normpath(os.path.join(os.path.dirname(path), target))


def _add_repository(git_dir: str, found: Found, seen: set[str]) -> None:
    real = os.path.realpath(git_dir)
    if real in seen:
        return
    seen.add(real)
    try:
        layout = discover(real, {})
    except UnsupportedRepositoryError:
        found.files_backend.add(real)
        return
    except (NotARepositoryError, OSError, ValueError) as exc:
        found.errors[real] = str(exc) or type(exc).__name__
        return
    common = str(layout.common_dir)
    seen.add(common)
    main = str(layout.main_stack)
    if os.path.isdir(main):
        found.stacks[main] = StackRef(main, common, True)
    worktrees = os.path.join(common, "worktrees")
    try:
        entries = list(os.scandir(worktrees))
    except OSError:
        entries = []
    for entry in entries:
        stack = os.path.join(entry.path, "reftable")
        if entry.is_dir(follow_symlinks=False) and os.path.isdir(stack):
            found.stacks[stack] = StackRef(stack, entry.path, False)


def find_stacks(roots: Iterable[str], max_depth: int) -> Found:
    """Walk ``roots`` (blocking: run in a thread). Git dirs are not entered, except their
    ``modules/`` (submodules); symlinks are not followed; work trees are searched for
    nested repositories."""
    found = Found()
    seen: set[str] = set()
    todo = [(os.path.abspath(root), 0) for root in roots]
    while todo:
        path, depth = todo.pop()
        if _is_git_dir(path):
            _add_repository(path, found, seen)
            modules = os.path.join(path, "modules")
            if depth < max_depth and os.path.isdir(modules):
                todo.append((modules, depth + 1))
            continue
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            if depth == 0:
                found.errors[path] = exc.strerror or str(exc)
            continue
        for entry in entries:
            if entry.name == ".git":
                if entry.is_dir(follow_symlinks=False):
                    if _is_git_dir(entry.path):
                        _add_repository(entry.path, found, seen)
                elif entry.is_file(follow_symlinks=False):
                    target = _gitfile_target(entry.path)
                    if target is not None and _is_git_dir(target):
                        _add_repository(target, found, seen)
                continue
            if depth < max_depth and entry.is_dir(follow_symlinks=False):
                todo.append((entry.path, depth + 1))
    return found


def list_key(stack_dir: str) -> int:
    """A fingerprint of ``tables.list`` (inode, size, mtime); 0 when it is missing. git
    replaces the file by rename, so any commit changes the inode."""
    try:
        st = os.stat(os.path.join(stack_dir, LIST))
    except OSError:
        return 0
    return hash((st.st_ino, st.st_size, st.st_mtime_ns)) or 1


def list_keys(stack_dirs: Iterable[str]) -> list[int]:
    """``list_key`` of many stacks in one unit of work (the polling fallback)."""
    return [list_key(d) for d in stack_dirs]
