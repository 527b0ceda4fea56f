"""The blocking OS seam of the repository and ref layers: every file, directory and host
lookup outside a stack (discovery, config, init, worktrees, identity), one named unit each.

Never imports anyio: callers run each unit in a worker thread (``anyio.to_thread``), as
``_fs.OS`` is run for the stack. Errors are the OS's, unwrapped, unless a function says
otherwise.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

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
