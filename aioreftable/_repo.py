"""Repository discovery: where the git dir, common dir and reftable stacks of a path are."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from . import _repo_io as repo_io
from ._errors import ReftableError
from ._format._layout import HASH_ALGORITHMS, HashAlgorithm

__all__ = ["NotARepositoryError", "RepositoryLayout", "UnsupportedRepositoryError", "discover"]


class NotARepositoryError(ReftableError):
    """No git repository at or above the given path."""


class UnsupportedRepositoryError(ReftableError):
    """A repository that does not use reftable (or an unknown format)."""


@dataclass(frozen=True, slots=True)
class RepositoryLayout:
    """The directories of one repository as seen from one work tree (or a bare repo)."""

    git_dir: Path  # $GIT_DIR: per-worktree state (HEAD, worktree stack)
    common_dir: Path  # shared state (config, objects, main stack)
    work_tree: Path | None  # None for a bare repository
    object_format: str  # "sha1" or "sha256"

    @property
    def hash_algorithm(self) -> HashAlgorithm:
        """The object format's hash (``SHA1`` or ``SHA256``)."""
        return HashAlgorithm.by_name(self.object_format)

    @property
    def main_stack(self) -> Path:
        return self.common_dir / "reftable"

    @property
    def worktree_stack(self) -> Path | None:
        """The stack of a linked worktree's own refs (HEAD, refs/bisect, ...), or None."""
        return None if self.git_dir == self.common_dir else self.git_dir / "reftable"

    @property
    def is_linked_worktree(self) -> bool:
        return self.git_dir != self.common_dir


def _read_gitfile(path: Path) -> Path:
    text = repo_io.read_text(path).strip()
    if not text.startswith("gitdir:"):
        raise NotARepositoryError(f"invalid gitfile format: {path}")
    target = Path(text[len("gitdir:") :].strip())
    return target if target.is_absolute() else (path.parent / target)


def _is_git_dir(path: Path) -> bool:
    return repo_io.is_file(path / "HEAD") and (
        repo_io.is_dir(path / "objects") or repo_io.is_file(path / "commondir")
    )


def _layout(git_dir: Path, work_tree: Path | None) -> RepositoryLayout:
    git_dir = repo_io.resolve(git_dir)
    common = git_dir
    commondir = git_dir / "commondir"
    if repo_io.is_file(commondir):
        rel = Path(repo_io.read_text(commondir).strip())
        common = repo_io.resolve(rel if rel.is_absolute() else git_dir / rel)
    from dulwich.config import ConfigFile

    config = ConfigFile.from_file(BytesIO(repo_io.read_bytes(common / "config")))

    def get(section: bytes, key: bytes) -> str | None:
        try:
            return config.get((section,), key).decode().strip().lower()
        except KeyError:
            return None

    storage = get(b"extensions", b"refstorage") or "files"
    if storage != "reftable" and not storage.startswith("reftable://"):
        raise UnsupportedRepositoryError(
            f"{common}: the repository uses the {storage!r} ref storage, not reftable"
        )
    object_format = get(b"extensions", b"objectformat") or "sha1"
    if object_format not in HASH_ALGORITHMS:
        raise UnsupportedRepositoryError(f"{common}: unknown object format {object_format!r}")
    tree = work_tree and repo_io.resolve(work_tree)
    return RepositoryLayout(git_dir, common, tree, object_format)


def discover(
    start: str | os.PathLike[str] = ".", env: Mapping[str, str] | None = None
) -> RepositoryLayout:
    """Find the repository like git does: ``GIT_DIR``, else walk up from ``start`` looking
    for a ``.git`` directory or gitfile, or a bare repository."""
    env = os.environ if env is None else env
    if env.get("GIT_DIR"):
        git_dir = Path(env["GIT_DIR"])
        if not git_dir.is_absolute():
            git_dir = Path(start) / git_dir
        work_tree = env.get("GIT_WORK_TREE")
        return _layout(git_dir, Path(work_tree) if work_tree else None)
    here = repo_io.resolve(Path(start))
    for candidate in (here, *here.parents):
        dot_git = candidate / ".git"
        if repo_io.is_file(dot_git):
            return _layout(_read_gitfile(dot_git), candidate)
        if repo_io.is_dir(dot_git) and _is_git_dir(dot_git):
            return _layout(dot_git, candidate)
        if _is_git_dir(candidate):
            return _layout(candidate, None)
    raise NotARepositoryError(f"not a git repository (or any of the parent directories): {here}")
