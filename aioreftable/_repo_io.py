"""The blocking OS seam of the repository and ref layers: every file, directory and host
lookup outside a stack (discovery, config, init, worktrees, identity, the object database's
directories and pack indexes), one named unit each.

Never imports anyio: callers run each unit in a worker thread (``anyio.to_thread``), as
``_fs.OS`` is run for the stack. Errors are the OS's, unwrapped, unless a function says
otherwise.
"""

from __future__ import annotations

import mmap
import os
import socket
import stat
from pathlib import Path

from ._mapfile import map_descriptor

__all__ = [
    "canonical_host_name",
    "current_umask",
    "exists",
    "getcwd",
    "home_of",
    "host_name",
    "is_dir",
    "is_file",
    "linked_worktrees",
    "list_names",
    "map_pack_indexes",
    "object_directories",
    "passwd_entry",
    "read_bytes",
    "read_first_line",
    "read_optional",
    "read_text",
    "realpath",
    "resolve",
    "samefile",
    "write_files",
]


# -- reading files -----------------------------------------------------------------------------
def read_bytes(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_text(path: str | os.PathLike[str]) -> str:
    """A small file (gitfile, ``commondir``) as text; undecodable bytes kept as surrogates."""
    return read_bytes(path).decode("utf-8", "surrogateescape")


def read_optional(path: str | os.PathLike[str]) -> bytes | None:
    """A config file's bytes, None when it does not exist (git's access_or_die: ENOENT and
    ENOTDIR skip the file; other errors pass through)."""
    try:
        return read_bytes(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_first_line(path: str | os.PathLike[str]) -> bytes | None:
    """The first line of a file (``/etc/mailname``), None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.readline()
    except OSError:
        return None


# -- existence and paths -----------------------------------------------------------------------
def exists(path: str | os.PathLike[str]) -> bool:
    return os.path.exists(path)


def is_file(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path)


def is_dir(path: str | os.PathLike[str]) -> bool:
    return os.path.isdir(path)


def resolve(path: Path) -> Path:
    """The absolute path with symlinks resolved (``Path.resolve``)."""
    return path.resolve()


def realpath(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path)


def getcwd() -> str:
    return os.getcwd()


def samefile(a: str, b: str) -> bool:
    return os.path.samefile(a, b)


# -- worktrees -------------------------------------------------------------------------------
def linked_worktrees(common_dir: Path) -> list[str]:
    """The ids of the linked worktrees, sorted (git's get_worktrees: the entries of
    ``worktrees/`` whose ``gitdir`` file can be read and is not empty)."""
    try:
        ids = sorted(os.listdir(common_dir / "worktrees"))
    except OSError:
        return []
    out = []
    for wid in ids:
        try:
            gitdir = read_bytes(common_dir / "worktrees" / wid / "gitdir")
        except OSError:
            continue
        if gitdir:
            out.append(wid)
    return out


# -- the object database ---------------------------------------------------------------------
def list_names(path: str | os.PathLike[str]) -> list[str]:
    """The entries of a directory (a loose-object fan-out directory); [] when it cannot be
    listed."""
    try:
        return os.listdir(path)
    except OSError:
        return []


def object_directories(objects_dir: str, limit: int) -> list[str]:
    """An object directory and its alternates, as git reads them: the lines of each
    directory's ``info/alternates`` (blank lines and ``#`` comments skipped, relative paths
    taken from that directory), recursively, each directory once, at most ``limit``."""
    dirs = [objects_dir]
    for d in dirs:  # grows while it is walked
        if len(dirs) >= limit:
            break
        try:
            text = read_text(os.path.join(d, "info", "alternates"))
        except OSError:
            continue
        for line in text.splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#"):
                alt = os.path.normpath(os.path.join(d, entry))
                if alt not in dirs:
                    dirs.append(alt)
    return dirs[:limit]


def _map_regular(path: str) -> mmap.mmap | None:
    """A read-only map of a regular, non-empty file; None for anything else (opened without
    blocking: a FIFO is skipped, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return map_descriptor(fd, st.st_size)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def map_pack_indexes(directories: list[str]) -> list[mmap.mmap]:
    """Read-only maps of the ``pack/*.idx`` files of each object directory, in name order;
    an index that cannot be mapped (gone, empty, not a regular file) is skipped. The
    caller closes the maps."""
    maps = []
    for d in directories:
        pack = os.path.join(d, "pack")
        for name in sorted(list_names(pack)):
            if name.endswith(".idx"):
                index = _map_regular(os.path.join(pack, name))
                if index is not None:
                    maps.append(index)
    return maps


# -- writing ---------------------------------------------------------------------------------
def write_files(root: Path, directories: list[str], files: dict[str, str]) -> None:
    """Create ``directories`` (with parents) and write ``files`` (text, replacing what is
    there) under ``root``: a new repository's skeleton."""
    for sub in directories:
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)


# -- the process and the host ----------------------------------------------------------------
def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def passwd_entry() -> tuple[str, str] | None:
    """(login name, gecos) of the current user, None without a passwd entry."""
    try:
        import pwd

        pw = pwd.getpwuid(os.getuid())
    except (ImportError, KeyError):
        return None
    return pw.pw_name, pw.pw_gecos


def home_of(user: str) -> str | None:
    """The home directory of ``user`` (``~user``), None for an unknown user."""
    try:
        import pwd

        return pwd.getpwnam(user).pw_dir
    except (ImportError, KeyError):
        return None


def host_name() -> str:
    return socket.gethostname()


def canonical_host_name(host: str) -> str | None:
    """The canonical name of ``host`` (getaddrinfo with AI_CANONNAME), None if unknown."""
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_CANONNAME)
    except OSError:
        return None
    return infos[0][3] if infos and infos[0][3] else None
