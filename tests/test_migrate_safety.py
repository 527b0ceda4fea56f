"""Crash safety of the migration: a failure or a cancellation before the swap leaves the
repository as it was and no temporary directory; a failure in the swap names where the
migrated refs are; held locks refuse; broken loose refs do not cost the other refs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import anyio
import pytest
from conftest import Git
from migrate_helpers import build_source, config_text, git_view, ours, twin

from aioreftable import LockError, migrate_refs
from aioreftable import _files_io as files_io

pytestmark = [pytest.mark.anyio, pytest.mark.git]


def leftovers(repo: Path) -> list[str]:
    git_dir = repo / ".git"
    found = [p.name for p in git_dir.glob("ref_migration.*")]
    found += [str(p.relative_to(git_dir)) for p in git_dir.rglob("*.lock")]
    return found


@pytest.mark.parametrize("to", ["reftable", "files"])
async def test_failure_while_writing_changes_nothing(
    git: Git, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to: Literal["files", "reftable"]
) -> None:
    source = build_source(
        git, tmp_path / "source", ref_format="files" if to == "reftable" else "reftable"
    )
    before, config = git_view(git, source), config_text(source)

    def full(*args: object, **kw: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_io, "write_files_tree", full)
    with pytest.raises(OSError, match="No space left"):
        await migrate_refs(source, to=to)
    assert git_view(git, source) == before and config_text(source) == config
    assert leftovers(source) == []


class _Cancelling:
    """A progress sink that cancels the migration once the new store is being written."""

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.seen = 0

    def total(self, total: int | None) -> None:
        assert total is not None and total > 10

    def advance(self, n: int = 1) -> None:
        self.seen += n
        self.scope.cancel()


@pytest.mark.parametrize("to", ["reftable", "files"])
async def test_cancelled_migration_leaves_nothing(
    git: Git, tmp_path: Path, to: Literal["files", "reftable"]
) -> None:
    source = build_source(
        git, tmp_path / "source", ref_format="files" if to == "reftable" else "reftable"
    )
    before, config = git_view(git, source), config_text(source)
    with anyio.CancelScope() as scope:
        sink = _Cancelling(scope)
        await migrate_refs(source, to=to, progress=sink)
    assert scope.cancelled_caught and sink.seen > 0
    assert git_view(git, source) == before and config_text(source) == config
    assert leftovers(source) == []


async def test_failure_in_the_swap_names_the_migrated_refs(
    git: Git, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git's 'migrated refs can be found at': the complete new store stays for recovery."""
    source = build_source(git, tmp_path / "source")

    def denied(*args: object, **kw: object) -> None:
        raise PermissionError(13, "Permission denied", str(source / ".git" / "refs"))

    monkeypatch.setattr(files_io, "swap_in", denied)
    with pytest.raises(PermissionError) as info:
        await migrate_refs(source, to="reftable")
    (temp,) = (source / ".git").glob("ref_migration.*")
    assert info.value.__notes__ == [f"migrated refs can be found at '{temp}'"]
    assert (temp / "reftable" / "tables.list").read_text().strip()
    code, out, err = await anyio.to_thread.run_sync(ours, source, "--ref-format=reftable")
    assert (code, out) == (255, "")
    assert err.startswith(f"error: {source / '.git' / 'refs'}: Permission denied\nmigrated refs")


@pytest.mark.parametrize(
    ("ref_format", "lock"),
    [("files", "packed-refs.lock"), ("files", "refs/heads/main.lock"),
     ("reftable", "reftable/tables.list.lock"), ("files", "config.lock")],
)  # fmt: skip
async def test_a_held_lock_refuses(git: Git, tmp_path: Path, ref_format: str, lock: str) -> None:
    """A writer mid-transaction (its lock file exists): refused, nothing changed (git
    would go ahead and could lose that writer's update)."""
    source = build_source(git, tmp_path / "source", ref_format=ref_format)
    (source / ".git" / lock).write_bytes(b"")
    before = git_view(git, source)
    to: Literal["files", "reftable"] = "reftable" if ref_format == "files" else "files"
    with pytest.raises(LockError, match=lock.replace(".", r"\.")):
        await migrate_refs(source, to=to)
    assert git_view(git, source) == before
    assert not list((source / ".git").glob("ref_migration.*"))
    code, out, err = await anyio.to_thread.run_sync(ours, source, f"--ref-format={to}")
    assert (code, out) == (255, "")
    assert err.startswith("error: Unable to migrate refs: ") and "another git process" in err


async def test_a_broken_loose_ref_costs_no_other_ref(git_new: Git, tmp_path: Path) -> None:
    """git 2.55 writes only HEAD when a loose ref is garbage (refs/heads/main is lost); we
    leave out the broken ref alone and keep every other ref."""
    source = build_source(git_new, tmp_path / "source")
    before = git_view(git_new, source)
    (source / ".git" / "refs" / "heads" / "broken").write_bytes(b"garbage\n")
    theirs = twin(source, "git")
    await migrate_refs(source, to="reftable")
    assert git_view(git_new, source)["refs"] == before["refs"]
    git_new("refs", "migrate", "--ref-format=reftable", cwd=theirs)
    assert "refs/heads/main" not in git_new("for-each-ref", cwd=theirs)  # git's loss


async def test_a_broken_root_ref_file_goes_with_the_old_store(git: Git, tmp_path: Path) -> None:
    """git's remove_on_disk deletes every root ref file, a broken one too."""
    source = build_source(git, tmp_path / "source")
    (source / ".git" / "BROKEN_HEAD").write_bytes(b"garbage\n")
    before = git_view(git, source)
    await migrate_refs(source, to="reftable")
    assert not (source / ".git" / "BROKEN_HEAD").exists()
    assert not (source / ".git" / "ORIG_HEAD").exists()  # now in the table
    assert git_view(git, source)["refs"] == before["refs"]
