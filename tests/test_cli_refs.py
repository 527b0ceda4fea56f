"""`aioreftable refs verify|exists` (and the `refs` family's usage) against git 2.55's `git
refs`: stdout, stderr and exit status, on the scenario repositories and on broken copies."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from cli_scenarios import SMALL, Outcome, Scenarios, run_git, run_ours, scenarios
from conftest import Git

from aioreftable import open_stack
from aioreftable.lowlevel import RefRecord, TableReader

__all__ = ["scenarios"]  # the session fixture

VERIFY = [["refs", "verify"], ["refs", "verify", "--strict"]]
VERBOSE = [["refs", "verify", "--verbose"], ["refs", "verify", "--verbose", "--strict"]]


def same(git_new: Git, repo: Path, args: list[str]) -> Outcome:
    ours = run_ours(repo, args)
    assert ours == run_git(git_new, repo, args), args
    return ours


@pytest.mark.parametrize("name", SMALL)
def test_verify_clean_scenarios(git: Git, git_new: Git, scenarios: Scenarios, name: str) -> None:
    repo = scenarios[name]
    for args in [*VERIFY, ["refs", "verify", "--no-strict", "--no-verbose"]]:
        assert same(git_new, repo, args) == (b"", b"", 0)
        assert run_git(git, repo, args) == (b"", b"", 0)  # 2.47 checks nothing on reftable
    if not (repo / ".git" / "worktrees").exists() and ".wt" not in repo.name:
        # --verbose lists every worktree's tables; the public API lists no worktrees
        _, err, code = same(git_new, repo, VERBOSE[0])
        assert err.startswith(b"Checking references consistency\n") and code == 0


def stack(repo: Path) -> Path:
    return (repo / ".git" if (repo / ".git").is_dir() else repo) / "reftable"


def listed(repo: Path) -> list[str]:
    return (stack(repo) / "tables.list").read_text().splitlines()


def rename_table(repo: Path, new: str) -> None:
    names = listed(repo)
    (stack(repo) / names[0]).rename(stack(repo) / new)
    (stack(repo) / "tables.list").write_text("".join(n + "\n" for n in [new, *names[1:]]))


def write_records(repo: Path, *records: Callable[[int], RefRecord]) -> None:
    """Records git refuses to write (a null id, an odd symref target), in a table of ours."""

    async def write() -> None:
        async with open_stack(stack(repo)) as opened, opened.addition() as add:
            for make in records:
                add.writer.add_ref(make(add.update_index))

    anyio.run(write)


def symrefs(git: Git) -> Callable[[Path], None]:
    def damage(repo: Path) -> None:
        git("symbolic-ref", "refs/heads/garbage-target", "garbage", cwd=repo)
        git("symbolic-ref", "HEAD", "refs/tags/v1.0", cwd=repo)

    return damage


def bad_names(git: Git) -> Callable[[Path], None]:
    """Names git refuses to write; git's verify does not check the names of reftable
    records: ours (--deep) do."""

    def damage(repo: Path) -> None:
        oid = bytes.fromhex(git("rev-parse", "main", cwd=repo).strip())
        write_records(
            repo,
            lambda ts: RefRecord.val1(b"refs/heads/a..b", ts, oid),
            lambda ts: RefRecord.val1(b"refs/heads/x.lock", ts, oid),
        )

    return damage


BROKEN: dict[str, Callable[[Git], Callable[[Path], None]]] = {
    "table-name": lambda git: lambda repo: rename_table(repo, "foo-bar-e4d12d59.ref"),
    "table-name-suffix": lambda git: (
        lambda repo: rename_table(repo, "0x000000000001-0x000000000002-e4d12d59.refabc")
    ),
    "symrefs": symrefs,
    "bad-ref-names": bad_names,
    "null-oid-and-odd-target": lambda git: (
        lambda repo: write_records(
            repo,
            lambda ts: RefRecord.val1(b"refs/heads/null", ts, bytes(20)),
            lambda ts: RefRecord.symref(b"refs/heads/odd", ts, b"odd/target"),
        )
    ),
}


@pytest.mark.parametrize("damage", sorted(BROKEN))
def test_verify_broken_like_git(
    git: Git, git_new: Git, scenarios: Scenarios, tmp_path: Path, damage: str
) -> None:
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    git("tag", "v1.0", "main", cwd=repo)
    BROKEN[damage](git)(repo)
    outcomes = [same(git_new, repo, args) for args in VERIFY + VERBOSE]
    plain, strict = outcomes[:2]
    if damage == "bad-ref-names":
        assert plain == strict == (b"", b"", 0)
        out, err, code = run_ours(repo, ["refs", "verify", "--deep"])
        assert (out, code) == (b"", 0)  # safe names git ignores: warnings
        assert err.decode().splitlines() == [
            f"aioreftable: warning: {name}: badRefName: ref name is not a valid refname "
            "(git ignores it)"
            for name in ("refs/heads/a..b", "refs/heads/x.lock")
        ]
        assert run_ours(repo, ["refs", "verify", "--deep", "--strict"])[2] == 255
        return
    assert plain[1] and plain[0] == b""
    assert strict[2] == 255
    if damage.startswith("table-name"):  # a warning, an error with --strict
        assert plain[2] == 0 and plain[1].startswith(b"warning: ")
        assert strict[1] == plain[1].replace(b"warning: ", b"error: ")
    if damage == "null-oid-and-odd-target":  # symrefTargetIsNotARef stays a warning
        assert plain[1].count(b"warning: ") == strict[1].count(b"warning: ") == 1


def test_verify_broken_worktree_stack(git_new: Git, scenarios: Scenarios, tmp_path: Path) -> None:
    """git reports a worktree's stack that does not open and goes on; the details are ours
    (--deep)."""
    repo = scenarios.build("rich-sha1", tmp_path / "repo")
    wt = Path(f"{repo}.wt")
    (repo / ".git" / "worktrees" / wt.name / "reftable" / "tables.list").write_text("garbage\n")
    for where in (repo, wt):
        for args in VERIFY:
            out, err, code = same(git_new, where, args)
            assert (out, err, code) == (
                b"",
                f"error: reftable stack for worktree '{wt.name}' is broken\n".encode(),
                255,
            )
        for ref in ("HEAD", f"worktrees/{wt.name}/HEAD", "refs/heads/main"):
            same(git_new, where, ["refs", "exists", ref])  # 1: the broken stack is read
        out, err, code = run_ours(where, ["refs", "verify", "--deep"])
        assert code == 255 and err.splitlines()[1:] == [
            b"aioreftable: error: garbage: badReftableTable: listed in tables.list but missing"
        ]


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_verify_broken_main_stack(
    git_new: Git, scenarios: Scenarios, tmp_path: Path, damage: str
) -> None:
    """git 2.55 crashes (SIGSEGV) on a main stack that does not open; we say why."""
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    first = stack(repo) / listed(repo)[0]
    if damage == "corrupt":
        first.write_bytes(b"XXXX" + first.read_bytes()[4:])
        why = f"{first}: offset 0: not a reftable file (bad magic)"
    else:
        first.unlink()
        why = f"{first}: listed in tables.list but missing"
    assert run_git(git_new, repo, VERIFY[0])[2] not in (0, 255)
    want = b"error: reftable stack for worktree 'main' is broken\naioreftable: error: "
    assert run_ours(repo, VERIFY[0]) == (b"", want + why.encode() + b"\n", 255)


def test_verify_deep_reports_our_checks(
    git: Git, git_new: Git, scenarios: Scenarios, tmp_path: Path
) -> None:
    """Our checks only with --deep, each line marked; git's output is unchanged without."""
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    (stack(repo) / "tables.list.lock").touch()
    shutil.copy(
        stack(repo) / listed(repo)[0], stack(repo) / "0x000000000001-0x000000000001-0badf00d.ref"
    )
    assert same(git_new, repo, VERIFY[0]) == (b"", b"", 0)
    out, err, code = run_ours(repo, ["refs", "verify", "--deep"])
    lines = err.decode().splitlines()
    assert (out, code) == (b"", 0)
    assert [line.split(": ")[:4] for line in lines] == [
        [
            "aioreftable",
            "warning",
            "0x000000000001-0x000000000001-0badf00d.ref",
            "staleReftableTable",
        ],
        ["aioreftable", "warning", "tables.list.lock", "reftableLockPresent"],
    ]
    out, err, code = run_ours(repo, ["refs", "verify", "--deep", "--strict"])
    assert code == 255 and err.decode() == "\n".join(lines).replace("warning:", "error:") + "\n"


EXISTS = [
    ["refs", "exists", "refs/heads/main"],
    ["refs", "exists", "refs/heads/dangling"],  # a dangling symref exists
    ["refs", "exists", "refs/heads/gone"],  # a tombstone
    ["refs", "exists", "refs/heads/nope"],
    ["refs", "exists", "HEAD"],
    ["refs", "exists", "ORIG_HEAD"],
    ["refs", "exists", "refs/bisect/bad"],
    ["refs", "exists", "refs/bisect/good"],  # the worktree's own
    ["refs", "exists", "refs/worktree/wt-only"],
    ["refs", "exists", "main-worktree/HEAD"],
    ["refs", "exists", "worktrees/nope/HEAD"],
    ["refs", "exists", "refs/heads/"],
    ["refs", "exists", "refs//heads/main"],
    ["refs", "exists", "refs/heads/../main"],
    ["refs", "exists", "--", "refs/heads/main"],
    ["refs", "exists"],
    ["refs", "exists", "HEAD", "refs/heads/main"],
]


@pytest.mark.parametrize("name", ["rich-sha1", "rich-sha256", "worktree-sha1", "empty-sha1"])
def test_exists_like_git(git_new: Git, scenarios: Scenarios, name: str) -> None:
    repo = scenarios[name]
    statuses = set()
    for args in EXISTS:
        statuses.add(same(git_new, repo, args)[2])
    wt = repo.name if repo.name.endswith(".wt") else f"{repo.name}.wt"  # the linked worktree
    for ref in (f"worktrees/{wt}/HEAD", f"worktrees/{wt}/refs/bisect/good"):
        code = same(git_new, repo, ["refs", "exists", ref])[2]
        assert code == (2 if name == "empty-sha1" else 0)  # another worktree's refs
    assert statuses >= {2, 128} and (name == "empty-sha1" or 0 in statuses)


def test_exists_on_a_broken_stack(git_new: Git, scenarios: Scenarios, tmp_path: Path) -> None:
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    (stack(repo) / listed(repo)[0]).write_bytes(b"garbage")
    assert same(git_new, repo, EXISTS[0]) == (
        b"",
        b"error: failed to look up reference: Success\n",
        1,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["refs"],
        ["refs", "bogus"],
        ["refs", "verify", "extra"],
        ["refs", "verify", "--bogus"],
        ["refs", "exists", "--bogus", "x"],
    ],
)
def test_refs_usage_like_git(git_new: Git, scenarios: Scenarios, args: list[str]) -> None:
    """Status and git's first line; the usage text that follows is ours."""
    repo = scenarios["empty-sha1"]
    out, err, code = run_ours(repo, args)
    want_out, want_err, want_code = run_git(git_new, repo, args)
    assert (out, code) == (want_out, want_code) == (b"", 129)
    assert err.splitlines()[0] == want_err.splitlines()[0]


LIST = [
    [],
    ["--format=%(refname) %(objectname) %(symref)"],
    ["refs/tags"],
    ["--sort=-refname", "--count=3"],
    ["--include-root-refs", "--format=%(refname)"],
    ["--bogus-option"],
]


@pytest.mark.parametrize("name", ["rich-sha1", "bare-sha256", "worktree-sha1"])
def test_list_is_for_each_ref_like_git(git_new: Git, scenarios: Scenarios, name: str) -> None:
    """git refs list is for-each-ref with another usage: so is ours (its parser and run)."""
    repo = scenarios[name]
    for args in LIST:
        ours = run_ours(repo, ["refs", "list", *args])
        theirs = run_git(git_new, repo, ["refs", "list", *args])
        if args == ["--bogus-option"]:  # the usage text is ours
            assert ours[2] == theirs[2] == 129 and ours[0] == b""
            assert ours[1].splitlines()[0] == theirs[1].splitlines()[0]
            continue
        assert ours == theirs, args
        assert ours == run_ours(repo, ["for-each-ref", *args])


def test_verify_and_exists_on_10k_refs(git_new: Git, scenarios: Scenarios) -> None:
    repo = scenarios["many-sha1"]
    for args in [*VERIFY, VERBOSE[0]]:
        assert same(git_new, repo, args)[2] == 0
    assert same(git_new, repo, ["refs", "exists", "refs/tags/t/03978"])[2] == 0
    assert same(git_new, repo, ["refs", "exists", "refs/tags/t/03979"])[2] == 2


def damage_log_block(repo: Path) -> str:
    """Flip a byte inside the first log block git never reads for verify; its table name."""
    for name in listed(repo):
        path = stack(repo) / name
        with TableReader.from_path(path) as reader:
            logs = [b.offset for b in reader.blocks() if b.typ == ord("g")]
        if logs:
            data = bytearray(path.read_bytes())
            data[logs[0] + 12] ^= 0xFF
            path.write_bytes(bytes(data))
            return name
    raise AssertionError("no log block")


def test_verify_deep_finds_what_git_does_not_read(
    git_new: Git, scenarios: Scenarios, tmp_path: Path
) -> None:
    repo = scenarios.copy("rich-sha1", tmp_path / "repo")
    name = damage_log_block(repo)
    for args in VERIFY:  # git checks names and ref values only: nothing to see
        assert same(git_new, repo, args) == (b"", b"", 0)
    out, err, code = run_ours(repo, ["refs", "verify", "--deep"])
    assert (out, code) == (b"", 255)
    assert err.startswith(f"aioreftable: error: {name}: badReftableTable: ".encode())
    assert b"log block" in err


def damage_ref_block(repo: Path) -> str:
    """Break the first record of the newest table's first ref block; its table name."""
    name = listed(repo)[-1]
    path = stack(repo) / name
    with TableReader.from_path(path) as reader:
        refs = [b.offset for b in reader.blocks() if b.typ == ord("r")]
    data = bytearray(path.read_bytes())
    start = refs[0] + (24 if refs[0] == 0 else 0)  # past the file header
    data[start + 4] = 0x7F  # the first record's prefix length: longer than no key
    path.write_bytes(bytes(data))
    return name


def test_verify_a_ref_block_git_cannot_read(scenarios: Scenarios, tmp_path: Path) -> None:
    """git reads every ref for verify and misreads a ref block that does not decode (2.55
    crashes on it, or, depending on what the damaged bytes decode to, reports nothing: its
    status is not asserted); we say why and fail, as for a stack that does not open (never
    a silent 0)."""
    repo = scenarios.copy("rich-sha1", tmp_path / "repo")
    name = damage_ref_block(repo)
    for args in VERIFY:
        out, err, code = run_ours(repo, args)
        assert (out, code) == (b"", 255), (args, err)
        assert err.startswith(f"aioreftable: error: {name}: badReftableTable: ".encode()), err


def _fifo_table(repo: Path) -> None:
    path = stack(repo) / listed(repo)[0]
    path.unlink()
    os.mkfifo(path)


def _list_is_a_directory(repo: Path) -> None:
    (stack(repo) / "tables.list").unlink()
    (stack(repo) / "tables.list").mkdir()


HOSTILE: dict[str, Callable[[Path], object]] = {
    "truncated-table": lambda repo: (stack(repo) / listed(repo)[0]).write_bytes(b""),
    "fifo-table": _fifo_table,
    "garbage-list": lambda repo: (stack(repo) / "tables.list").write_bytes(b"\xff\x00/../x\n"),
    "list-is-a-directory": _list_is_a_directory,
    "no-stack": lambda repo: shutil.rmtree(stack(repo)),
}
COMMANDS = [
    ["pack-refs"],
    ["refs", "optimize", "--auto"],
    ["refs", "verify"],
    ["refs", "verify", "--deep", "--verbose"],
    ["refs", "exists", "HEAD"],
    ["refs", "list"],
    ["stats"],
    ["stats", "--json"],
    ["compact"],
]


@pytest.mark.parametrize("damage", sorted(HOSTILE))
def test_hostile_repositories_never_crash(
    scenarios: Scenarios, tmp_path: Path, damage: str
) -> None:
    """Each command on a repository broken in each way: git's silent status or our one
    error line (a second with --deep), never a traceback, never a hang."""
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    HOSTILE[damage](repo)
    for args in COMMANDS:
        out, err, code = run_ours(repo, args)  # a FIFO is refused, never opened
        assert code in (1, 128, 252, 253, 255), (args, code, err)
        assert b"Traceback" not in err and len(err.splitlines()) <= 2, (args, err)
        assert out == b"", args
