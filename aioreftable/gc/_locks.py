"""Stale locks: what a stack directory holds besides its tables, and breaking an abandoned
``tables.list.lock`` (older than a threshold and open in no process, checked in /proc)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["DirScan", "LockFinding", "break_stale_lock", "holders", "scan_stack_dir"]

LIST_LOCK = "tables.list.lock"
OUR_TEMP = ".temp.aioreftable-"


@dataclass(frozen=True, slots=True)
class LockFinding:
    path: str
    age: float  # seconds since its last modification
    kind: str  # "list" (tables.list.lock) or "table" (<table>.ref.lock)


@dataclass(slots=True)
class DirScan:
    """One look at a stack directory (blocking: run in a thread)."""

    tables: int = 0  # names in tables.list
    list_age: float = float("inf")  # seconds since tables.list was last replaced
    stale_locks: list[LockFinding] = field(default_factory=list)
    leftovers: bool = False  # unlisted tables or aioreftable temp files: clean() may help


def scan_stack_dir(stack_dir: str, now: float, stale_age: float) -> DirScan:
    scan = DirScan()
    try:
        with open(os.path.join(stack_dir, "tables.list"), "rb") as f:
            scan.list_age = now - os.fstat(f.fileno()).st_mtime
            listed = {line for line in f.read().decode("utf-8", "replace").split("\n") if line}
    except OSError:
        listed = set()
    scan.tables = len(listed)
    try:
        entries = list(os.scandir(stack_dir))
    except OSError:
        return scan
    for entry in entries:
        name = entry.name
        if name.endswith(".lock"):
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if age >= stale_age:
                kind = "list" if name == LIST_LOCK else "table"
                scan.stale_locks.append(LockFinding(entry.path, age, kind))
        elif OUR_TEMP in name or (name.endswith(".ref") and name not in listed):
            scan.leftovers = True
    return scan


def holders(path: str, proc: str = "/proc") -> bool | None:
    """Whether any process has ``path`` open: True, False, or None when that cannot be
    proven (no /proc, a /proc that does not show this process, or a process whose
    descriptors we may not read). Only processes on this host are seen."""
    try:
        target = os.lstat(path)
    except FileNotFoundError:
        return False
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return None
    if str(os.getpid()) not in pids:
        return None  # not this process's /proc (another pid namespace): it proves nothing
    for pid in pids:
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except FileNotFoundError:
            continue  # the process exited
        except OSError:
            return None  # not ours to read: we cannot prove nobody holds it
        for fd in fds:
            try:
                st = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if st.st_ino == target.st_ino and st.st_dev == target.st_dev:
                return True
    return False


def break_stale_lock(path: str, now: float, stale_age: float, proc: str = "/proc") -> str:
    """Remove ``path`` (a ``tables.list.lock``) if it is provably abandoned. Returns what
    happened: "removed", "young", "held", "unprovable", "changed" or "gone"."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return "gone"
    if now - before.st_mtime < stale_age:
        return "young"
    held = holders(path, proc)
    if held is None:
        return "unprovable"
    if held:
        return "held"
    try:
        after = os.lstat(path)
    except FileNotFoundError:
        return "gone"
    same = (before.st_ino, before.st_dev, before.st_mtime_ns, before.st_ctime_ns) == (
        after.st_ino,
        after.st_dev,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )
    if not same:
        return "changed"
    try:
        os.unlink(path)
    except FileNotFoundError:
        return "gone"
    return "removed"
