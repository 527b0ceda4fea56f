"""Differential tests: our codec against a live git (>= 2.45) on repositories git builds.

For each case of a matrix of git settings, git builds one repository (thousands of refs,
tombstones, symrefs, annotated tags, long reflogs; kept as several tables or packed). Then:

* our reader, merging the stack in tables.list order, sees what ``git for-each-ref``,
  ``git show-ref -d --head``, ``git reflog list`` and ``git log -g`` see;
* every git-written table, re-encoded from its records with the same options, gives the
  same bytes;
* tables written by our writer (with other options, and as one compacted table) installed
  as a fresh repository's stack read identically through git, and ``git refs verify`` and
  ``git fsck`` are clean.

CI sets AIOREFTABLE_REQUIRE_GIT=1, so these run there (the ``git`` fixture skips otherwise).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from format_helpers import hash_name_of, reencode
from gitdiff_helpers import (
    BuiltRepo,
    Case,
    build_repo,
    compare_tables,
    fast_import_commits,
    git_for_each_ref,
    git_head,
    git_reflog_names,
    git_reflogs,
    git_show_ref,
    gitdir_of,
    install_stack,
    is_marker,
    open_stack,
    our_for_each_ref,
    our_head,
    our_live_logs,
    our_reflogs,
    our_show_ref,
    table_names,
    write_table,
)

from aioreftable.lowlevel import RefValueType, TableReader, WriteOptions

pytestmark = pytest.mark.git

Git = Any  # tests/conftest.py's Git (conftest modules are not imported by name)

# A covering subset of the settings matrix: every block size, restart interval,
# indexObjects value and object format appears, each layout (stacked / packed) too.
CASES = [
    Case("sha1", 4096, 16, True, packed=False),
    Case("sha256", 4096, 16, True, packed=True),
    Case("sha1", 256, 1, True, packed=True),
    Case("sha1", 1000, 3, False, packed=False),
    Case("sha256", 65536, 3, False, packed=False),
    Case("sha256", 256, 16, True, packed=False),
    Case("sha1", 65536, 1, True, packed=True),
]

# Other options for the tables our writer installs (differently laid out, same content).
OTHER_BLOCK_SIZE = {256: 65536, 1000: 4096, 4096: 1000, 65536: 1000}
OTHER_RESTART = {1: 16, 3: 1, 16: 3}


def other_options(case: Case) -> WriteOptions:
    return WriteOptions(
        block_size=OTHER_BLOCK_SIZE[case.block_size],
        restart_interval=OTHER_RESTART[case.restart_interval],
        index_objects=not case.index_objects,
        unpadded=case.packed,
        hash=case.object_format,
    )


class GitView:
    """Everything git reports about a repository's refs and reflogs."""

    def __init__(self, git: Git, repo: Path):
        self.for_each_ref = git_for_each_ref(git, repo)
        self.show_ref = git_show_ref(git, repo)
        self.head = git_head(git, repo)
        self.reflog_names = git_reflog_names(git, repo)
        self.reflogs = git_reflogs(git, repo)

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.for_each_ref, self.show_ref, self.head, self.reflog_names, self.reflogs)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.id)
def built(
    request: pytest.FixtureRequest, git: Git, tmp_path_factory: pytest.TempPathFactory
) -> BuiltRepo:
    case: Case = request.param
    return build_repo(git, tmp_path_factory.mktemp(case.id) / "repo", case)


@pytest.fixture(scope="module")
def git_view(built: BuiltRepo, git: Git) -> GitView:
    return GitView(git, built.path)


# -- shape of the repositories (so the matrix really covers what it claims) -------------


def test_repository_shape(built: BuiltRepo) -> None:
    names = table_names(built.path)
    if built.case.packed:
        assert len(names) == 1
    else:
        assert len(names) > 20  # init, fast-import, 3 batches, tags, symrefs, 24+ updates
    with open_stack(built.path) as merged:
        for reader in merged.readers:
            assert reader.hash_name == built.case.object_format
        refs = list(merged.iter_refs(include_deletions=True))
        kinds = {r.value_type for r in refs}
        assert {RefValueType.VAL1, RefValueType.VAL2, RefValueType.SYMREF} <= kinds
        if not built.case.packed:
            assert RefValueType.DELETION in kinds
            assert any(log.is_deletion for log in merged.iter_logs(include_deletions=True))
        assert len(refs) > 3000
        assert max(len(r.refname) for r in refs) > 160
        assert any(any(b >= 0x80 for b in r.refname) for r in refs)
        big = max(merged.readers, key=lambda r: r.file_size)
        stats = big.stats()
        assert (stats.refs.index_levels >= 1) == (stats.refs.blocks > 3)
        assert (stats.objs.records > 0) == built.case.index_objects
        if built.case.block_size == 256:
            assert stats.refs.index_levels >= 2
        tzs = {log.tz_offset for log in merged.iter_logs()}
        assert {-830, 200, 545, -1200, 1400} <= tzs


# -- our reader against git ------------------------------------------------------------


def test_refs_match_for_each_ref(built: BuiltRepo, git_view: GitView) -> None:
    with open_stack(built.path) as merged:
        ours = our_for_each_ref(merged)
        head = our_head(merged)
    assert len(ours) == len(git_view.for_each_ref)
    assert ours == git_view.for_each_ref
    assert head == git_view.head == b"refs/heads/main"


def test_refs_match_show_ref(built: BuiltRepo, git_view: GitView) -> None:
    with open_stack(built.path) as merged:
        ours = our_show_ref(merged)
    assert sum(line.endswith(b"^{}") for line in ours) > 60  # annotated tags, peeled
    assert ours == git_view.show_ref


def test_exact_lookups_match_git(built: BuiltRepo, git_view: GitView) -> None:
    with open_stack(built.path) as merged:
        for name, oid, symref in git_view.for_each_ref:
            rec = merged.ref(name)
            assert rec is not None, name
            if symref:
                assert rec.value_type == RefValueType.SYMREF and rec.target == symref
            else:
                assert rec.value is not None and rec.value.hex().encode() == oid
        # Deleted refs read as absent; their tombstones are visible on request.
        assert merged.ref(b"refs/heads/doomed") is None
        assert merged.ref(b"refs/pull/0/head") is None
        if not built.case.packed:
            rec = merged.ref(b"refs/pull/0/head", include_deletions=True)
            assert rec is not None and rec.is_deletion


def test_refs_for_matches_git(built: BuiltRepo, git_view: GitView) -> None:
    symrefs = {name for name, _, symref in git_view.for_each_ref if symref}
    expected: dict[bytes, set[bytes]] = defaultdict(set)
    for line in git_view.show_ref:
        oid, name = line.split(b" ", 1)
        name = name.removesuffix(b"^{}")
        if name != b"HEAD" and name not in symrefs:
            expected[oid].add(name)
    # Without an obj index each call scans every table: check a sample of the ids (every
    # 8th, in a stable order, which includes tag ids and the peeled commits).
    sample = sorted(expected)[::8]
    assert len(sample) > 20
    with open_stack(built.path) as merged:
        for oid in sample:
            names = expected[oid]
            got = [r.refname for r in merged.refs_for(bytes.fromhex(oid.decode()))]
            assert got == sorted(names), oid
        missing = bytes(merged.hash_size)
        assert list(merged.refs_for(missing)) == []


def test_reflogs_match_git(built: BuiltRepo, git_view: GitView) -> None:
    with open_stack(built.path) as merged:
        ours = our_reflogs(merged)
        live = our_live_logs(merged)
        zero = bytes(merged.hash_size)
    assert set(ours) == git_view.reflog_names
    assert ours == git_view.reflogs
    assert len(ours[b"HEAD"]) > 10
    # git cannot print a reflog entry's old id; it is the previous entry's new id.
    for name, entries in live.items():
        for newer, older in itertools.pairwise(entries):
            assert newer.old_id == older.new_id, name
        assert entries[-1].old_id == zero, name


# -- our writer against git ------------------------------------------------------------

REENCODE_RESULTS: dict[str, list[str]] = {}


def test_reencoded_tables_are_byte_identical(built: BuiltRepo) -> None:
    """Each git-written table, re-encoded from its records with the same options."""
    case = built.case
    directory = gitdir_of(built.path) / "reftable"
    results = []
    for name in table_names(built.path):
        data = (directory / name).read_bytes()
        with TableReader.from_path(directory / name) as reader:
            opts = WriteOptions(
                block_size=reader.block_size,
                restart_interval=case.restart_interval,
                index_objects=case.index_objects,
                hash=hash_name_of(reader),
            )
            ours = reencode(reader, opts)
        results.append(compare_tables(data, ours))
        assert results[-1] in ("identical", "zlib"), (name, results[-1])
    REENCODE_RESULTS[case.id] = results
    # With stock zlib on both sides the bytes are identical, deflated log blocks included.
    assert set(results) == {"identical"}, results


def _assert_same_through_git(git: Git, repo: Path, git_view: GitView) -> None:
    view = GitView(git, repo)
    assert view.for_each_ref == git_view.for_each_ref
    assert view.show_ref == git_view.show_ref
    assert view.head == git_view.head
    assert view.reflog_names == git_view.reflog_names
    assert view.reflogs == git_view.reflogs
    verify = git.run("refs", "verify", "--strict", cwd=repo)
    assert verify.stdout == b"" and verify.stderr == b""
    fsck = git.run("fsck", "--no-progress", "--strict", cwd=repo, check=False)
    assert fsck.returncode == 0 and fsck.stdout == b"", fsck.stderr


def test_our_stack_read_by_git(
    built: BuiltRepo, git_view: GitView, git: Git, tmp_path: Path
) -> None:
    """git's stack rewritten table by table with other options by our writer."""
    opts = other_options(built.case)
    tables = []
    with open_stack(built.path) as merged:
        for reader in merged.readers:
            tables.append(reencode(reader, opts))
    for data in tables:
        assert TableReader.from_bytes(data).block_size == opts.block_size
    install_stack(git, built.path, tmp_path / "ours", tables, built.case.object_format)
    _assert_same_through_git(git, tmp_path / "ours", git_view)


def test_our_compacted_table_read_by_git(
    built: BuiltRepo, git_view: GitView, git: Git, tmp_path: Path
) -> None:
    """The live content of git's stack as one table written by our writer."""
    with open_stack(built.path) as merged:
        refs = list(merged.iter_refs())
        logs = list(merged.iter_logs())
        lo, hi = merged.min_update_index, merged.max_update_index
    data = write_table(refs, logs, lo, hi, built.case.options)
    install_stack(git, built.path, tmp_path / "compact", [data], built.case.object_format)
    _assert_same_through_git(git, tmp_path / "compact", git_view)
    # git's own compaction of that table keeps it readable (and equal).
    git("pack-refs", "--all", cwd=tmp_path / "compact")
    _assert_same_through_git(git, tmp_path / "compact", git_view)


# -- jgit#289: a multi-block, multi-level top-level index -------------------------------

JGIT_REFS = 12_000


def _top_level_index_blocks(reader: TableReader) -> int:
    count = 0
    for blk in reader.blocks():
        if blk.offset >= reader.ref_index_position:
            if blk.typ != ord("i"):
                break
            count += 1
    return count


def test_many_refs_one_transaction_small_blocks(git: Git, git_repo: Any) -> None:
    """10,000+ refs in one transaction, block size 256: every ref is found by exact lookup
    and by object id (cf. jgit#289, where lookups failed with a multi-level index)."""
    repo = git_repo("jgit289")
    git("config", "reftable.blockSize", "256", cwd=repo)
    env = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
    commits = fast_import_commits(git, repo, JGIT_REFS)
    names = [f"refs/heads/jgit/branch-{i:05d}" for i in range(JGIT_REFS)]
    lines = "".join(f"create {n} {c}\n" for n, c in zip(names, commits, strict=True))
    git("update-ref", "--stdin", cwd=repo, input=lines, env=env)

    directory = gitdir_of(repo) / "reftable"
    last = table_names(repo)[-1]
    with TableReader.from_path(directory / last) as reader:
        stats = reader.stats()
        assert stats.refs.records == JGIT_REFS
        assert stats.refs.index_levels >= 2
        assert _top_level_index_blocks(reader) >= 2
        assert stats.objs.records == JGIT_REFS
        for name, commit in zip(names, commits, strict=True):
            rec = reader.ref(name.encode())
            assert rec is not None and rec.value == bytes.fromhex(commit), name
            found = [r.refname for r in reader.refs_for(bytes.fromhex(commit))]
            assert found == [name.encode()], name
        assert reader.ref(b"refs/heads/jgit/branch-") is None
        assert reader.ref(b"refs/heads/jgit/branch-99999") is None
        assert reader.ref(b"refs/heads/jgit/branch-00000x") is None
        assert [r.refname for r in reader.iter_refs()] == [n.encode() for n in names]
        ours = reencode(
            reader, WriteOptions(block_size=256, restart_interval=16, index_objects=True)
        )
    assert compare_tables((directory / last).read_bytes(), ours) == "identical"
    with open_stack(repo) as merged:
        assert our_for_each_ref(merged) == git_for_each_ref(git, repo)
        assert not any(is_marker(log) for log in merged.iter_logs())
