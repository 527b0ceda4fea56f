"""open_repo and Backend: dulwich Repos whose refs are a ReftableRefsContainer, not dulwich's."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Generator, Mapping
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.reflog import Entry
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import Backend as DulwichBackend

from .. import NotARepositoryError, RepositoryLayout, UnsupportedRepositoryError, discover
from ._container import ReftableRefsContainer
from ._loop import StoreLoop, refuse_in_event_loop

__all__ = ["Backend", "ReftableRepo", "open_repo"]

#: Variables that would make every repository of a server the same one.
_REPOSITORY_VARIABLES = frozenset({"GIT_DIR", "GIT_COMMON_DIR", "GIT_WORK_TREE"})


class ReftableRepo(Repo):
    """A dulwich :class:`~dulwich.repo.Repo` whose ``refs`` is a
    :class:`ReftableRefsContainer` and whose reflogs are read from the ref store.

    Obtain one from :func:`open_repo` or :meth:`Backend.open_repository`. dulwich's
    constructor builds its own reftable container first; :func:`open_repo` checks the
    layout so that this only looks at paths (the reftable directory and the
    ``refs/heads`` stub exist), and the container is replaced before anything reads."""

    refs: ReftableRefsContainer

    def __init__(
        self, root: str | os.PathLike[str], refs: ReftableRefsContainer, *, owns_refs: bool
    ) -> None:
        super().__init__(root)
        self.refs = refs
        self._owns_refs = owns_refs

    def read_reflog(self, ref: bytes) -> Generator[Entry, None, None]:
        """The reflog of ``ref`` from the ref store, oldest first (dulwich's order)."""
        for e in self.refs.read_reflog(Ref(ref)):
            committer = f"{e.name} <{e.email}>".encode("utf-8", "surrogateescape")
            message = e.message.removesuffix("\n").encode("utf-8", "surrogateescape")
            old, new = e.old.encode("ascii"), e.new.encode("ascii")
            yield Entry(old, new, committer, e.time, _tz_seconds(e.tz), message)

    def close(self) -> None:
        """Close the object store, and the ref store if this repository opened it."""
        try:
            super().close()
        finally:
            if self._owns_refs:
                self.refs.close()


def _tz_seconds(tz: int) -> int:
    """A reflog's time zone as reftable stores it (git's ``+hhmm`` as the number hhmm) in
    seconds east of UTC, as dulwich's reflog entries have it."""
    sign = -1 if tz < 0 else 1
    hours, minutes = divmod(abs(tz), 100)
    return sign * (hours * 3600 + minutes * 60)


def _check_layout(layout: RepositoryLayout) -> None:
    """Refuse what would make dulwich's constructor write: it creates a missing reftable
    directory and replaces a ``refs/heads`` directory by git's stub file."""
    heads = layout.common_dir / "refs" / "heads"
    if heads.is_dir():
        raise UnsupportedRepositoryError(
            f"{layout.common_dir}: refs/heads is a directory in a reftable repository "
            "(dulwich's Repo would delete it)"
        )
    if not layout.main_stack.is_dir():
        raise UnsupportedRepositoryError(f"{layout.main_stack}: no reftable directory")


def _root(layout: RepositoryLayout) -> str:
    return str(layout.work_tree if layout.work_tree is not None else layout.git_dir)


def open_repo(
    path: str | os.PathLike[str] = ".",
    *,
    loop: StoreLoop | None = None,
    env: Mapping[str, str] | None = None,
    **store_options: object,
) -> ReftableRepo:
    """Open the reftable repository at ``path`` (a work tree, a ``.git`` dir or a bare
    repository) as a dulwich Repo whose refs live in aioreftable's ref store.

    A files-backend repository is refused with :class:`aioreftable.UnsupportedRepositoryError`
    (open it with ``dulwich.repo.Repo``); no repository at ``path`` is
    :class:`aioreftable.NotARepositoryError`. The store runs on ``loop`` (shared, closed
    by its owner) or on a private one closed with the repository (``repo.close()`` or
    ``with``). ``env`` and ``store_options`` go to :func:`aioreftable.open_ref_store`."""
    refuse_in_event_loop("open_repo")
    layout = discover(path, env)
    _check_layout(layout)
    refs = ReftableRefsContainer(layout.git_dir, loop=loop, env=env, **store_options)
    try:
        return ReftableRepo(_root(layout), refs, owns_refs=True)
    except BaseException:
        refs.close()
        raise


class Backend(DulwichBackend):
    """A backend for dulwich's servers (``dulwich.web``, ``dulwich.aiohttp.server``,
    ``dulwich.server.TCPGitServer``) serving every repository under ``root``.

    ``open_repository("/a/b.git")`` opens ``<root>/a/b.git`` (leading slashes are
    ignored): a path outside ``root`` (also through a symlink) or not naming a repository
    itself is ``NotGitRepository``. A reftable repository is a :class:`ReftableRepo`, a
    files-backend one ``NotGitRepository`` unless ``allow_files`` (then dulwich's own
    ``Repo``). ``GIT_DIR``, ``GIT_COMMON_DIR`` and ``GIT_WORK_TREE`` of the environment
    are ignored.

    Every call returns a new Repo (dulwich's object store is not safe to share between
    threads) on the one ref store of its repository, opened at the first request and
    shared by all (one :class:`StoreLoop` runs them all). :meth:`release` closes a Repo
    when its request is done (the handlers of :data:`HANDLERS` do); :meth:`close` closes
    what is still open, the stores and the loop it started."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        allow_files: bool = False,
        loop: StoreLoop | None = None,
        **store_options: object,
    ) -> None:
        super().__init__()
        self.root = Path(os.path.realpath(root))
        self.allow_files = allow_files
        self._own_loop = loop is None
        self.loop = StoreLoop() if loop is None else loop
        self._options = store_options
        self._env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
        self._refs: dict[Path, ReftableRefsContainer] = {}  # git dir -> its shared store
        self._open: weakref.WeakSet[Repo] = weakref.WeakSet()  # returned, not released
        self._lock = threading.Lock()

    def resolve(self, path: str | bytes) -> Path:
        """The directory ``path`` names under the root (NotGitRepository outside it)."""
        text = os.fsdecode(path).lstrip("/")
        if "\0" in text:  # no file has that name (realpath would raise ValueError)
            raise NotGitRepository(f"path {text!r} contains a NUL byte")
        full = Path(os.path.realpath(self.root / text))
        if full != self.root and self.root not in full.parents:
            raise NotGitRepository(f"path {text!r} is not inside the root {str(self.root)!r}")
        return full

    def open_repository(self, path: str) -> Repo:
        full = self.resolve(path)
        try:
            layout = discover(full, self._env)
        except NotARepositoryError as exc:
            raise NotGitRepository(str(exc)) from exc
        except UnsupportedRepositoryError as exc:
            if not self.allow_files:
                raise NotGitRepository(str(exc)) from exc
            return self._track(Repo(str(full)))  # NotGitRepository if there is none
        if full not in (layout.git_dir, layout.work_tree):
            raise NotGitRepository(f"{os.fsdecode(path)!r} is not a repository itself")
        return self._track(ReftableRepo(_root(layout), self._container(layout), owns_refs=False))

    def _container(self, layout: RepositoryLayout) -> ReftableRefsContainer:
        with self._lock:
            refs = self._refs.get(layout.git_dir)
            if refs is None:
                _check_layout(layout)
                refs = ReftableRefsContainer(
                    layout.git_dir, loop=self.loop, env=self._env, **self._options
                )
                self._refs[layout.git_dir] = refs
            return refs

    def _track(self, repo: Repo) -> Repo:
        with self._lock:
            self._open.add(repo)
        return repo

    def release(self, repo: object) -> None:
        """A request is done with ``repo`` (from :meth:`open_repository`): close its
        object store; the ref store stays open for the next request."""
        with self._lock:
            if repo not in self._open:
                return
            self._open.discard(repo)  # type: ignore[arg-type]
        assert isinstance(repo, Repo)
        repo.close()

    def close(self) -> None:
        """Close the Repos not released yet, every ref store, and the loop if this backend
        started it (idempotent)."""
        with self._lock:
            repos, refs = list(self._open), list(self._refs.values())
            self._open.clear()
            self._refs.clear()
        try:
            for repo in repos:
                repo.close()
            for container in refs:
                container.close()
        finally:
            if self._own_loop:
                self.loop.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
