"""Commit reachability for `reflog expire --expire-unreachable` (git's mark_reachable)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio.to_thread

from .. import RefStore

__all__ = ["Reachability"]

_COMMIT = 1  # the object type number of a commit


def _open_store(common_dir: Path) -> Any:
    from dulwich.config import ConfigFile
    from dulwich.object_store import DiskObjectStore

    config_path = common_dir / "config"
    config = ConfigFile.from_path(str(config_path)) if config_path.is_file() else ConfigFile()
    return DiskObjectStore.from_config(os.path.join(common_dir, "objects"), config)


def _parents(raw: bytes) -> list[str]:
    out: list[str] = []
    for line in raw.split(b"\n"):
        if not line:
            break  # the end of the header
        if line.startswith(b"parent "):
            out.append(line[7:].decode("ascii", "replace"))
    return out


def _walk(common_dir: Path, tips: list[str]) -> set[str]:
    """Every commit reachable from ``tips`` (blocking: a worker thread); a commit that
    cannot be read ends its line, as git's ignore-missing walk does."""
    store = _open_store(common_dir)
    try:
        seen: set[str] = set()
        todo = list(tips)
        while todo:
            oid = todo.pop()
            if oid in seen:
                continue
            seen.add(oid)
            try:
                kind, raw = store.get_raw(oid.encode("ascii"))
            except (KeyError, ValueError):
                continue
            if kind == _COMMIT:
                todo.extend(p for p in _parents(bytes(raw)) if p not in seen)
        return seen
    finally:
        store.close()


class Reachability:
    """git's reflog_expiry_prepare/unreachable for one ref: the tips (the ref's commit, or
    every ref's for HEAD), walked once on the first question."""

    def __init__(self, store: RefStore, common_dir: Path):
        self.store = store
        self.common_dir = common_dir
        self.marked: set[str] | None = None
        self.commits: dict[str, str | None] = {}

    async def commits_of(self, oids: Iterable[str]) -> dict[str, str | None]:
        """git's lookup_commit_reference_gently: the commit each id is or peels to."""
        objects = self.store.objects
        assert objects is not None
        wanted = [oid for oid in dict.fromkeys(oids) if oid not in self.commits]
        infos = await objects.lookup(wanted)
        peeled = [i.peeled for i in infos.values() if i is not None and i.type == "tag"]
        inner = await objects.lookup(p for p in peeled if p is not None)
        for oid in wanted:
            info = infos[oid]
            commit: str | None = None
            if info is not None and info.type == "commit":
                commit = oid
            elif info is not None and info.type == "tag" and info.peeled is not None:
                target = inner.get(info.peeled)
                if target is not None and target.type == "commit":
                    commit = info.peeled
            self.commits[oid] = commit
        return {oid: self.commits[oid] for oid in oids}

    async def tips_of_all_refs(self) -> list[str]:
        """git's push_tip_to_list over for_each_ref: every ref below refs/ that is not a
        symref, as the commit it peels to."""
        oids = [ref.oid async for ref in self.store.iterate() if not ref.is_symref and ref.oid]
        commits = await self.commits_of(oids)
        return [c for c in commits.values() if c is not None]

    async def prepare(self, tips: list[str]) -> None:
        self.tips = tips
        self.marked = None

    async def unreachable(self, oid: str) -> bool:
        """git's unreachable(): the null id and non-commits are kept (False)."""
        if oid == self.store.hash_algorithm.null_id.hex():
            return False
        commit = (await self.commits_of([oid]))[oid]
        if commit is None:
            return False
        if self.marked is None:
            self.marked = await anyio.to_thread.run_sync(_walk, self.common_dir, self.tips)
        return commit not in self.marked
