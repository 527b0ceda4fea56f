"""Every CLI command on every kind of bad input: one `fatal:` line naming the file, exit 128,
never a traceback; usage errors exit 129 like git."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Git

from aioreftable.cli import main

SHOW_REF = [
    ("show-ref",),
    ("show-ref", "--head", "-d"),
    ("show-ref", "--verify", "refs/heads/main"),
    ("show-ref", "--verify", "-q", "HEAD"),
    ("show-ref", "--exists", "refs/heads/main"),
    ("show-ref", "--tags", "-s"),
    ("show-ref", "main"),
]
DUMP = [("dump", "."), ("dump", "--json", "."), ("dump", "--no-records", ".")]
COMMANDS = SHOW_REF + DUMP

HEADER = 24  # git 2.47 writes version 1 tables (sha1): 24-byte header, 68-byte footer
FOOTER = 68


def make_repo(git: Git, git_repo: Callable[..., Path]) -> tuple[Path, Path]:
    """A repository whose refs and logs sit in one table (after pack-refs)."""
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    git("tag", "-a", "-m", "t", "v1", cwd=repo)
    git("branch", "topic", cwd=repo)
    git("pack-refs", "--all", cwd=repo)
    stack = repo / ".git" / "reftable"
    (name,) = (stack / "tables.list").read_text().split()
    return repo, stack / name


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def run_in(cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           *args: str) -> tuple[int, str, str]:  # fmt: skip
    monkeypatch.chdir(cwd)  # main() may chdir (-C); monkeypatch restores the test's cwd
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_fatal(result: tuple[int, str, str], *names: str) -> None:
    code, out, err = result
    assert code == 128, result
    assert out == "", result
    assert err.startswith("fatal: ") and err.count("\n") == 1, result
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, result)


# Corruptions that a reader must notice, by where they hit the table: (name, offset from
# the start if >= 0, else from the end). The footer's CRC covers the footer fields.
FLIPS = [
    ("magic", 0),
    ("version", 4),
    ("block-length", HEADER + 1),
    ("footer-field", -FOOTER + HEADER + 3),
    ("footer-crc", -1),
]


def flip_at(table: Path, offset: int) -> None:
    flip(table, offset if offset >= 0 else table.stat().st_size + offset)


@pytest.mark.parametrize(("where", "offset"), FLIPS, ids=[f[0] for f in FLIPS])
def test_corrupt_table(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
    offset: int,
) -> None:
    repo, table = make_repo(git, git_repo)
    flip_at(table, offset)
    for args in COMMANDS:
        result = run_in(repo, monkeypatch, capsys, *args)
        assert_fatal(result, table.name, "offset")
    assert_fatal(run_in(repo, monkeypatch, capsys, "dump", str(table)), table.name, "offset")


def test_corrupt_first_block_type(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A garbage type byte where the first block starts: every command says where. (git's
    reader takes such a table for one without refs: its show-ref lists nothing.)"""
    repo, table = make_repo(git, git_repo)
    flip_at(table, HEADER)
    for args in COMMANDS:
        assert_fatal(run_in(repo, monkeypatch, capsys, *args), table.name, f"offset {HEADER}")


def test_truncated_table(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, table = make_repo(git, git_repo)
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    for args in COMMANDS:
        assert_fatal(run_in(repo, monkeypatch, capsys, *args), table.name, "offset")


def test_truncated_tables_list(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """tables.list cut in the middle of its only name (git exits 1 silently): without its
    final newline the stack refuses the list itself (dump reads stacks through the stack,
    so it says the same); with one, the cut name is missing."""
    repo, table = make_repo(git, git_repo)
    listing = table.parent / "tables.list"
    listing.write_text(table.name[:20])
    for args in COMMANDS:
        assert_fatal(run_in(repo, monkeypatch, capsys, *args), str(listing), "offset 20")
    listing.write_text(table.name[:20] + "\n")
    for args in COMMANDS:
        assert_fatal(run_in(repo, monkeypatch, capsys, *args), str(table.parent / table.name[:20]))


def test_vanished_table(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, table = make_repo(git, git_repo)
    table.unlink()
    for args in COMMANDS:
        assert_fatal(run_in(repo, monkeypatch, capsys, *args), table.name)


def test_table_is_a_fifo(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A FIFO where a table should be: refused by name, never waited on (opening a FIFO
    for reading blocks until a writer comes)."""
    repo, table = make_repo(git, git_repo)
    table.unlink()
    os.mkfifo(table)
    for args in [*COMMANDS, ("dump", str(table))]:
        assert_fatal(run_in(repo, monkeypatch, capsys, *args), str(table), "not a regular file")


def test_tables_list_is_a_directory(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, table = make_repo(git, git_repo)
    listing = table.parent / "tables.list"
    listing.unlink()
    listing.mkdir()
    for args in COMMANDS:
        assert_fatal(run_in(repo, monkeypatch, capsys, *args), "Is a directory")


def test_tables_list_is_a_directory_names_it(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, table = make_repo(git, git_repo)
    listing = table.parent / "tables.list"
    listing.unlink()
    listing.mkdir()
    assert_fatal(run_in(repo, monkeypatch, capsys, "show-ref"), str(listing))


def test_missing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """git: "fatal: cannot change to '/missing': No such file or directory", exit 128."""
    missing = tmp_path / "missing"
    for args in COMMANDS:
        result = run_in(tmp_path, monkeypatch, capsys, "-C", str(missing), *args)
        assert_fatal(result, f"cannot change to '{missing}'")
    for args in [("dump", str(missing)), ("dump", "--json", str(missing / "x.ref"))]:
        assert_fatal(run_in(tmp_path, monkeypatch, capsys, *args), str(missing))


def test_not_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for args in COMMANDS:
        assert_fatal(run_in(plain, monkeypatch, capsys, *args), "not a git repository")


@pytest.mark.parametrize("kind", ["a-file", "under-a-file", "not-empty"])
def test_demo_bad_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = {"a-file": blocker, "under-a-file": blocker / "repo", "not-empty": tmp_path}[kind]
    result = run_in(tmp_path, monkeypatch, capsys, "demo", "--refs", "5", "--dir", str(target))
    assert_fatal(result, str(target) if kind != "under-a-file" else str(blocker))
    assert blocker.read_text() == "x"


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: none for a normal user; for root,
    setpriv without the capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and no setpriv to drop CAP_DAC_OVERRIDE: cannot test")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_unreadable_table_and_directory(
    git: Git, git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """A table the user may not read, and demo --dir in a directory the user may not write
    (whole processes: the permissions must apply, so root drops its capabilities)."""
    repo, table = make_repo(git, git_repo)
    table.chmod(0)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    prefix = _unprivileged()
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here (no CAP_SETPCAP): cannot test")
    probe = subprocess.run([*prefix, "cat", str(table)], capture_output=True, text=True)
    assert "Permission denied" in probe.stderr  # the permission applies to the runs below
    runs = [
        (("show-ref", "--head", "-d"), (table.name, "Permission denied")),
        (("show-ref", "--verify", "refs/heads/main"), (table.name, "Permission denied")),
        (("show-ref", "--exists", "refs/heads/main"), (table.name, "Permission denied")),
        (("dump", "--json", "."), (table.name, "Permission denied")),
        (("demo", "--refs", "5", "--dir", str(locked / "new")), (str(locked / "new"),)),
    ]
    for args, names in runs:
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "aioreftable", *args],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        assert_fatal((proc.returncode, proc.stdout, proc.stderr), *names, "Permission denied")
    assert list(locked.iterdir()) == []


def test_whole_process_errors(git: Git, git_repo: Callable[..., Path], tmp_path: Path) -> None:
    """Through the console entry point: fatal errors, a usage error and -h, as git exits."""
    repo, table = make_repo(git, git_repo)
    flip(table, 0)

    def ours(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aioreftable", *args], cwd=repo, capture_output=True, text=True
        )

    for args in [("show-ref",), ("-C", str(tmp_path / "gone"), "show-ref")]:
        proc = ours(*args)
        assert_fatal((proc.returncode, proc.stdout, proc.stderr))
    proc = ours("show-ref", "--bogus")
    assert (proc.returncode, proc.stdout) == (129, "")
    assert proc.stderr.startswith("error: unknown option `bogus'\nusage: aioreftable show-ref")
    proc = ours("show-ref", "-h")
    assert (proc.returncode, proc.stderr) == (129, "")
    assert proc.stdout.startswith("usage: aioreftable show-ref")


def test_usage_errors(
    git: Git,
    git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Usage errors exit 129 like git's, with "error: ..." and the usage on stderr; -h
    prints the help on stdout and exits 129, as git does."""
    repo, table = make_repo(git, git_repo)
    flip(table, 0)
    for args, message in [
        (("show-ref", "--bogus"), "error: unknown option `bogus'"),
        (("show-ref", "-x"), "error: unknown switch `x'"),
        (("show-ref", "--abbrev"), "error: option `abbrev' without a value (core.abbrev) is"),
        (("frobnicate",), "error: argument COMMAND: invalid choice"),
        ((), "error: a command is required"),
        (("demo", "--refs", "many"), "error: argument --refs: invalid int value"),
    ]:
        code, out, err = run_in(repo, monkeypatch, capsys, *args)
        assert (code, out) == (129, ""), (args, err)
        assert err.startswith(message + ("\n" if message.endswith("'") else "")), args
        assert "usage: aioreftable" in err
    # a bad option value: git's 129 with only its error line (git parses options before
    # it reads the corrupt table)
    for args in [("--hash=x",), ("--abbrev=",), ("-s4x",), ("--abbrev=0x5", "-d")]:
        want = git.run("show-ref", *args, cwd=repo, check=False)
        assert want.returncode == 129
        got = run_in(repo, monkeypatch, capsys, "show-ref", *args)
        assert got == (129, "", want.stderr.decode()), args
    # after "--" a word is a pattern, as in git: here the corrupt table is reached
    assert run_in(repo, monkeypatch, capsys, "show-ref", "--", "--hash=8")[0] == 128
    for args in [("-h",), ("show-ref", "-h"), ("dump", "-h")]:
        code, out, err = run_in(repo, monkeypatch, capsys, *args)
        assert (code, err) == (129, "") and out.startswith("usage: aioreftable"), args


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["refs", "exists", "--bogus"], "usage: aioreftable refs exists <ref>"),
        (["show-ref", "--bogus"], "usage: aioreftable show-ref"),
    ],
)
def test_an_unknown_option_prints_the_usage_of_the_innermost_command(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 129
    err = capsys.readouterr().err
    assert err.startswith("error: unknown option `bogus'\n" + usage), err


def test_an_unknown_long_option_is_named_with_its_value_as_git_does(
    git: Git, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git("init", "-q", "--ref-format=reftable", str(tmp_path / "r"))
    theirs = git.run("-C", str(tmp_path / "r"), "show-ref", "--bogus=x", check=False)
    assert main(["-C", str(tmp_path / "r"), "show-ref", "--bogus=x"]) == 129
    ours = capsys.readouterr().err
    first = theirs.stderr.decode().splitlines()[0]
    assert ours.splitlines()[0] == first == "error: unknown option `bogus=x'"
