"""Helpers for the ref store tests: twin repositories, one op list applied through git's
``update-ref --stdin`` and through our Transaction, and state dumps to compare."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import GIT_ENV, Git

from aioreftable import StackOptions, TransactionError, open_ref_store, open_stack
from aioreftable._format._writer import HashName
from aioreftable._refs import RefStore
from aioreftable.lowlevel import WriteOptions

ENV = {**os.environ, **GIT_ENV}


@dataclass(frozen=True)
class Op:
    """One transaction step: kind is create/update/delete/verify/symref."""

    kind: str
    name: str
    new: str | None = None
    old: str | None = None
    no_deref: bool = False

    def stdin_line(self) -> str:
        prefix = "option no-deref\n" if self.no_deref else ""
        if self.kind == "create":
            return f"{prefix}create {self.name} {self.new}\n"
        if self.kind == "update":
            return f"{prefix}update {self.name} {self.new} {self.old or ''}".rstrip() + "\n"
        if self.kind == "delete":
            return f"{prefix}delete {self.name} {self.old or ''}".rstrip() + "\n"
        if self.kind == "verify":
            return f"{prefix}verify {self.name} {self.old or ''}".rstrip() + "\n"
        if self.kind == "symref":
            return f"{prefix}symref-update {self.name} {self.new}\n"
        raise AssertionError(self.kind)

    def apply(self, tx: Any) -> None:
        if self.kind == "create":
            tx.create(self.name, self.new)
        elif self.kind == "update":
            tx.update(self.name, self.new, old=self.old, no_deref=self.no_deref)
        elif self.kind == "delete":
            tx.delete(self.name, old=self.old, no_deref=self.no_deref)
        elif self.kind == "verify":
            tx.verify(self.name, self.old, no_deref=self.no_deref)
        elif self.kind == "symref":
            tx.symref_update(self.name, self.new, no_deref=self.no_deref)
        else:
            raise AssertionError(self.kind)


def make_twins(git: Git, tmp_path: Path, fmt: str = "sha1") -> tuple[Path, Path]:
    """Two repositories with the same commits (fixed identity and dates give equal ids)."""
    repos = []
    for name in ("theirs", "ours"):
        path = tmp_path / name
        args = ["init", "-q", "--ref-format=reftable", f"--object-format={fmt}", "-b", "main"]
        git(*args, str(path))
        for n in range(3):
            git("commit", "-q", "--allow-empty", "-m", f"c{n}", cwd=path)
        git("tag", "-a", "-m", "annotated", "v1", "HEAD~1", cwd=path)
        git("tag", "lw", "HEAD~2", cwd=path)
        repos.append(path)
    return repos[0], repos[1]


def object_ids(git: Git, repo: Path) -> dict[str, str]:
    ids = {f"c{n}": git("rev-parse", f"HEAD~{2 - n}", cwd=repo).strip() for n in range(3)}
    ids["tag"] = git("rev-parse", "refs/tags/v1", cwd=repo).strip()
    ids["tree"] = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    return ids


def git_apply(git: Git, repo: Path, ops: Sequence[Op], message: str) -> str | None:
    """Run the ops in one ``update-ref --stdin``; the error text (without 'fatal: ') or None."""
    data = "".join(op.stdin_line() for op in ops)
    proc = git.run("update-ref", "-m", message, "--stdin", cwd=repo, input=data, check=False)
    if proc.returncode == 0:
        return None
    err = proc.stderr.decode().strip()
    return err.removeprefix("fatal: ")


async def our_apply(store: RefStore, ops: Sequence[Op], message: str) -> str | None:
    try:
        async with store.transaction(message=message) as tx:
            for op in ops:
                op.apply(tx)
    except TransactionError as exc:
        return str(exc)
    return None


async def apply_ours(repo: Path, ops: Sequence[Op], message: str) -> str | None:
    async with open_ref_store(repo, env=ENV) as store:
        return await our_apply(store, ops, message)


def show_refs(git: Git, repo: Path) -> str:
    return git.run("show-ref", "-d", "--head", cwd=repo, check=False).stdout.decode()


def reflog_dump(git: Git, repo: Path) -> dict[str, str]:
    names = git("reflog", "list", cwd=repo).split()
    fmt = "--format=%gd %H %gn <%ge> %gs"
    return {
        n: git.run("reflog", "show", fmt, n, "--", cwd=repo, check=False).stdout.decode()
        for n in names
    }


async def live_records(stack_dir: Path) -> tuple[list[Any], list[Any]]:
    """Every live ref and log record of a stack (update indexes included)."""
    config = next(p / "config" for p in stack_dir.parents if (p / "config").is_file())
    fmt: HashName = "sha256" if "sha256" in config.read_text() else "sha1"
    options = StackOptions(write_options=WriteOptions(hash=fmt))
    async with open_stack(stack_dir, options, create=False) as stack:
        snap = await stack.snapshot()
        return list(snap.iter_refs(b"")), list(snap.iter_logs())


def refs_verify(git: Git, repo: Path) -> None:
    proc = git.run("refs", "verify", cwd=repo, check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr.decode()
