"""A table written by our writer, installed as a repository's whole stack, is read by git."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Git

from aioreftable._format._writer import HashName
from aioreftable.lowlevel import LogRecord, RefRecord, TableWriter, WriteOptions


def install(
    repo: Path, data: bytes, name: str = "0x000000000001-0x000000000001-0badf00d.ref"
) -> None:
    stack = repo / ".git" / "reftable"
    for old in stack.iterdir():
        old.unlink()
    (stack / name).write_bytes(data)
    (stack / "tables.list").write_text(name + "\n")


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
@pytest.mark.parametrize("block_size", [256, 4096])
def test_git_reads_our_table(
    git: Git, git_repo: Callable[..., Path], object_format: HashName, block_size: int
) -> None:
    repo = git_repo(object_format=object_format)
    git("commit", "-q", "--allow-empty", "-m", "first", cwd=repo)
    oid = bytes.fromhex(git("rev-parse", "HEAD", cwd=repo).strip())
    z = bytes(len(oid))
    w = TableWriter(WriteOptions(block_size=block_size, hash=object_format))
    w.set_limits(1, 1)
    refs = [RefRecord.symref(b"HEAD", 1, b"refs/heads/main")]
    refs += [RefRecord.val1(b"refs/heads/b%04d" % i, 1, oid) for i in range(300)]
    refs.append(RefRecord.val1(b"refs/heads/main", 1, oid))
    w.add_refs(refs)
    for refname in (b"HEAD", b"refs/heads/main"):
        w.add_log(
            LogRecord(
                refname,
                1,
                old_id=z,
                new_id=oid,
                name=b"C O Mitter",
                email=b"committer@example.com",
                time=1112354055,
                tz_offset=-830,
                message=b"via us",
            )
        )
    install(repo, w.finish())

    lines = git("show-ref", "--head", cwd=repo).splitlines()
    assert lines[0] == f"{oid.hex()} HEAD"
    assert len(lines) == 1 + 301
    assert f"{oid.hex()} refs/heads/b0299" in lines
    assert git("refs", "verify", cwd=repo) == ""
    assert git("symbolic-ref", "HEAD", cwd=repo).strip() == "refs/heads/main"
    reflog = git("reflog", "show", "--format=%H %gs %gn %ge %gd", "--date=raw", "main", cwd=repo)
    assert (
        reflog.strip()
        == f"{oid.hex()} via us C O Mitter committer@example.com main@{{1112354055 -0830}}"
    )
    # git can keep writing on top of our table and compacts through it
    git("update-ref", "refs/heads/after", oid.hex(), cwd=repo)
    git("pack-refs", cwd=repo)
    assert len(git("for-each-ref", cwd=repo).splitlines()) == 302
    assert git("refs", "verify", cwd=repo) == ""
