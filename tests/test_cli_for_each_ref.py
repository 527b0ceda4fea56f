"""`aioreftable for-each-ref` against `git for-each-ref` on every scenario repository:
same stdout, stderr and exit status, byte for byte."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from cli_scenarios import SMALL, Scenarios, run_both, run_ours, run_ours_process, scenarios
from conftest import Git

from aioreftable.cli._ref_format import versioncmp
from aioreftable.wildmatch import WM_PATHNAME, wildmatch

__all__ = ["scenarios"]

FE = "for-each-ref"
# (argv after for-each-ref); run on every small scenario against git 2.47
ARGS: list[list[str]] = [
    [],
    ["--include-root-refs"],
    ["--format=%(refname)"],
    ["--format=%(objectname) %(refname)"],
    ["--format=%(refname) %(symref) %(HEAD) %(flag)"],
    ["--format=%(refname:short)|%(symref:short)"],
    ["--format=%(refname:lstrip=2)|%(refname:strip=1)|%(refname:lstrip=-1)|%(refname:lstrip=9)"],
    ["--format=%(refname:rstrip=1)|%(refname:rstrip=-2)|%(refname:rstrip=9)"],
    ["--format=%(objectname:short) %(objectname:short=4) %(objectname:short=12)"],
    ["--format=%(*objectname) %(*objecttype) %(*objectsize) %(objecttype) %(objectsize)"],
    ["--format=%(*refname)%00%(refname)%%%(HEAD)%0a%41%zz%"],
    ["--format=%(subject)|%(body)|%(contents:subject)|%(contents:body)|%(contents:size)"],
    ["--format=%(contents)%(contents:lines=1)|%(contents:lines=2)|%(*subject)"],
    ["--format=%(authorname)|%(authoremail)|%(authoremail:trim)|%(authoremail:localpart)"],
    ["--format=%(author)|%(committer)|%(tagger)|%(creator)"],
    ["--format=%(committername) %(committeremail:trim,localpart) %(taggername) %(taggeremail)"],
    ["--format=%(authordate)|%(committerdate:iso)|%(taggerdate:iso8601)|%(creatordate:short)"],
    ["--format=%(creatordate:rfc)|%(creatordate:raw)|%(creatordate:unix)|%(*authordate)"],
    ["--format=%(tree)|%(tree:short)|%(parent)|%(parent:short=5)|%(numparent)"],
    ["--format=%(object)|%(type)|%(tag)|%(*tree)"],
    ["--format=%(refname)", "--shell"],
    ["--format=%(refname) %(subject)", "--perl"],
    ["--format=%(refname) %(subject)", "--python"],
    ["--format=%(refname) [%(subject)]", "--tcl"],
    ["--format=%(symref)", "--omit-empty"],
    ["--sort=-refname", "--format=%(refname)"],
    ["--sort=objectname", "--format=%(objectname) %(refname)"],
    ["--sort=version:refname", "--format=%(refname)"],
    ["--sort=-v:refname", "--format=%(refname)"],
    ["--sort=objecttype", "--sort=-objectsize", "--format=%(objecttype) %(refname)"],
    ["--sort=creatordate", "--format=%(creatordate:unix) %(refname)"],
    ["--sort=-taggerdate", "--sort=subject", "--format=%(refname)"],
    ["--sort=*objectname", "--format=%(refname)"],
    ["--no-sort", "--format=%(refname)"],
    ["--sort=-refname", "--no-sort", "--sort=objectname", "--format=%(refname)"],
    ["--ignore-case", "--sort=refname", "--format=%(refname)"],
    ["--count=3"],
    ["--count=0", "--format=%(refname)"],
    ["--count=2", "--sort=-refname", "--format=%(refname)"],
    ["refs/heads"],
    ["refs/heads/", "refs/tags"],
    ["refs/heads/fea"],
    ["refs/heads/feature"],
    ["refs/heads/*"],
    ["refs/heads/**"],
    ["refs/**/x"],
    ["refs/heads/[a-f]*", "refs/tags/v?.*"],
    ["refs/heads/[!a-f]*"],
    ["refs/heads/[[:digit:]v]*", "--format=%(refname)"],
    ["*"],
    ["**"],
    ["refs/*/feature/*"],
    ["HEAD"],
    ["--include-root-refs", "HEAD", "ORIG_HEAD"],
    ["--ignore-case", "REFS/HEADS/FEATURE/*"],
    ["--exclude=refs/tags", "--format=%(refname)"],
    ["--exclude=refs/heads/feature/*", "--exclude=refs/remotes/", "refs/heads", "refs/remotes"],
    ["--points-at=HEAD", "--format=%(refname)"],
    ["--points-at=refs/tags/v2.0", "--format=%(refname)"],
    ["--points-at", "refs/heads/feature/a", "--points-at=ORIG_HEAD", "--format=%(refname)"],
    ["--points-at=@", "--points-at=v1.0", "--points-at=origin", "--format=%(refname)"],
    ["--points-at=nosuch", "--format=%(refname)"],
    ["--format=%(if)%(symref)%(then)%(refname) -> %(symref)%(else)%(refname)%(end)"],
    ["--format=%(if:equals=refs/heads/main)%(refname)%(then)[main]%(end)%(refname:short)"],
    ["--format=%(if:notequals=commit)%(objecttype)%(then)%(objecttype) %(end)%(refname)"],
    ["--format=%(HEAD)%(if)%(HEAD)%(then)%(else)x%(end)%(if) %(then)y%(end)"],
    ["--format=%(align:30)%(refname:short)%(end)|%(align:12,right)%(objecttype)%(end)|"],
    ["--format=%(align:width=9,position=middle)%(refname:lstrip=-1)%(end)|"],
    ["--format=%(align:20)%(if)%(*objectname)%(then)%(*objecttype)%(else)-%(end)%(end)|"],
    ["--format=%(align:16)%(refname:short) %(subject)%(end)", "--shell"],
    ["--format=%(if)%(symref)%(then)%(symref)%(end) %(refname)", "--python"],
    ["--format=%(if)%(refname)%(then)a%(then)%(end)"],
    ["--format=%(if)%(refname)%(end)"],
    ["--format=%(then)"],
    ["--format=%(else)"],
    ["--format=%(end)"],
    ["--format=%(if)x"],
    ["--format=%(if)%(then)%(else)%(else)%(end)"],
    ["--format=%(if:bogus)x%(then)%(end)"],
    ["--format=%(align)x%(end)"],
    ["--format=%(align:x)x%(end)"],
    ["--format=%(align:position=top,5)%(end)"],
    ["--format=%(align:width=x)%(end)"],
    ["--format=%(align:left)%(end)"],
    ["--format=%(rest)"],
    ["--format=%(raw:size) %(*raw:size) %(refname)"],
    ["--format=%(raw)%00"],
    ["--format=%(*raw)", "--perl"],
    ["--sort=raw", "--format=%(refname)"],
    ["--sort=-raw:size", "--format=%(raw:size) %(refname)"],
    ["--format=%(raw)", "--shell"],
    ["--format=%(*raw)", "--python"],
    ["--format=%(raw:size)", "--tcl"],
    ["--format=%(raw:bogus)"],
    ["--format=%(color:red)%(refname)%(color:reset) %(color:bold blue)x"],
    ["--color", "--format=%(color:red)%(refname)%(color:reset) %(color:bold blue)x"],
    ["--color=always", "--format=%(color:#ff0000)%(color:#0f0 brightcyan)%(color:no-ul dim 200)"],
    ["--color=always", "--format=%(color:reset bold)%(color:default normal)%(color:-1 7 15)"],
    ["--color=always", "--format=%(color:Red)%(refname)%(color:reset)", "--shell"],
    ["--color=never", "--format=%(color:red)%(refname)"],
    ["--color=bogus", "--format=%(refname)"],
    ["--format=%(color)"],
    ["--format=%(color:bogus)"],
    ["--format=%(color:red green blue)"],
    ["--format=%(color:#12345g)"],
    ["--format=%(color:256)"],
    ["--format=%(nosuch)"],
    ["--format=%()"],
    ["--format=%(*)"],
    ["--format=%(refname:nosuch)"],
    ["--format=%(refname:lstrip=x)"],
    ["--format=%(objectname:short=0)"],
    ["--format=%(objecttype:x)"],
    ["--format=%(authoremail:bogus)"],
    ["--format=%(authordate:bogus)"],
    ["--format=%(refname"],
    ["--sort=nosuch"],
    ["--count=-1"],
    ["--shell", "--perl"],
]
# git 2.55 only (2.47 lacks --start-after)
NEW_ARGS: list[list[str]] = [
    ["--start-after=refs/heads/feature", "--format=%(refname)"],
    ["--start-after=refs/heads/v1.9", "--count=2"],
    ["--start-after=refs/tags/zzz"],
    ["--start-after=A", "--include-root-refs", "--format=%(refname)"],
    ["--start-after=refs/heads", "refs/heads"],
    ["--start-after=refs/heads", "--sort=refname"],
    ["--start-after=refs/heads", "--no-sort", "--format=%(refname)"],
    ["--format=%(symref) %(refname)"],
]
MANY_ARGS: list[list[str]] = [
    ["--format=%(objectname) %(refname)"],
    ["--sort=-version:refname", "--count=20"],
    ["--format=%(refname:short) %(*objectname)", "refs/tags/", "refs/heads/sym"],
]


def _same(git: Git, repo: object, argv: list[str]) -> None:
    ours, theirs = run_both(git, repo, [FE, *argv])  # type: ignore[arg-type]
    if ours[2] == 129 and theirs[2] == 129:  # usage: git's text differs, the error line not
        assert ours[1].splitlines()[:1] == theirs[1].splitlines()[:1], argv
        return
    assert ours == theirs, argv


@pytest.mark.parametrize("name", SMALL)
def test_for_each_ref_matches_git(git: Git, scenarios: Scenarios, name: str) -> None:
    repo = scenarios[name]
    for argv in ARGS:
        _same(git, repo, argv)


@pytest.mark.parametrize("name", ["rich-sha1", "rich-sha256", "worktree-sha1", "empty-sha1"])
def test_for_each_ref_matches_git_new(git_new: Git, scenarios: Scenarios, name: str) -> None:
    repo = scenarios[name]
    for argv in NEW_ARGS + ARGS[:12]:
        _same(git_new, repo, argv)


def test_for_each_ref_many_refs(git: Git, scenarios: Scenarios) -> None:
    repo = scenarios["many-sha1"]
    for argv in MANY_ARGS:
        _same(git, repo, argv)


def test_for_each_ref_stdin_patterns(git: Git, scenarios: Scenarios) -> None:
    repo = scenarios["rich-sha1"]
    data = b"refs/tags/v*\nrefs/heads/feature\n"
    ours = run_ours(repo, [FE, "--stdin", "--format=%(refname)"], stdin=data)
    proc = git.run("-C", str(repo), FE, "--stdin", "--format=%(refname)", input=data)
    assert ours == (proc.stdout, proc.stderr, 0)
    assert b"refs/heads/feature/a\n" in ours[0]
    ours = run_ours(repo, [FE, "--stdin", "refs/heads"], stdin=b"")
    proc = git.run("-C", str(repo), FE, "--stdin", "refs/heads", input=b"", check=False)
    assert (
        ours
        == (proc.stdout, proc.stderr, proc.returncode)
        == (
            b"",
            b"fatal: unknown arguments supplied with --stdin\n",
            128,
        )
    )


def test_for_each_ref_through_the_entry_point(git: Git, scenarios: Scenarios) -> None:
    repo = scenarios["rich-sha1"]
    ours = run_ours_process(repo, [FE, "--include-root-refs"])
    proc = git.run("-C", str(repo), FE, "--include-root-refs")
    assert ours == (proc.stdout, proc.stderr, 0)
    assert b"refs/heads/caf\xe9\n" in ours[0]


def test_unsupported_atoms_and_options_are_named(scenarios: Scenarios) -> None:
    repo = scenarios["rich-sha1"]
    for atom in ("upstream", "push:track", "describe", "worktreepath", "trailers", "signature"):
        out, err, code = run_ours(repo, [FE, f"--format=%({atom})"])
        base = atom.split(":")[0]
        assert (out, err, code) == (b"", f"fatal: %({base}) is not supported by aioreftable\n"
                                    .encode(), 128)  # fmt: skip
    out, err, code = run_ours(repo, [FE, "--merged"])
    assert (out, code) == (b"", 128)
    assert err == b"fatal: --merged is not supported by aioreftable for-each-ref\n"


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("refs/heads/*", "refs/heads/a", True),
        ("refs/heads/*", "refs/heads/a/b", False),
        ("refs/**/b", "refs/b", True),
        ("refs/**/b", "refs/a/c/b", True),
        ("**/b", "b", True),
        ("refs/**", "refs/a/b", True),
        ("refs/a**", "refs/ab/c", False),
        ("refs/[a-c]", "refs/b", True),
        ("refs/[!a-c]", "refs/d", True),
        ("refs/[!a-c]", "refs/b", False),
        ("refs?x", "refs/x", False),
        ("refs/\\*", "refs/*", True),
        ("refs/\\*", "refs/a", False),
        ("refs/[[:upper:]]", "refs/A", True),
        ("refs/[", "refs/[", False),
        ("refs/[]]", "refs/]", True),
    ],
)
def test_wildmatch(pattern: str, text: str, expected: bool) -> None:
    assert wildmatch(pattern.encode(), text.encode(), WM_PATHNAME) is expected


def test_versioncmp() -> None:
    """glibc's documented strverscmp order, which git's versioncmp keeps."""
    names = [b"000", b"00", b"01", b"010", b"09", b"0", b"1", b"9", b"10"]
    got = sorted(reversed(names), key=functools.cmp_to_key(versioncmp))
    assert got == names
    assert versioncmp(b"v1.9", b"v1.10") < 0 < versioncmp(b"v1.10", b"v1.9-rc1")


def test_for_each_ref_with_a_missing_object(
    git: Git, git_new: Git, scenarios: Scenarios, tmp_path: Path
) -> None:
    """Listed like any ref (no existence check); git dies on the first value that needs
    the object: after the lines before it in the listing's order (2.55; 2.47 printed
    none), before any line when sorting."""
    repo = scenarios.copy("rich-sha1", tmp_path / "repo")
    blob = git.run("hash-object", "-w", "--stdin", cwd=repo, input=b"soon gone\n").stdout
    oid = blob.decode().strip()
    git("update-ref", "refs/tags/ghost", oid, cwd=repo)
    (repo / ".git" / "objects" / oid[:2] / oid[2:]).unlink()
    fatal = f"fatal: missing object {oid} for refs/tags/ghost\n".encode()
    for oracle, argv in (
        (git, ["--format=%(refname)"]),
        (git, ["--format=%(objectname) %(refname)", "refs/tags"]),
        (git_new, []),
        (git_new, ["--format=%(objecttype) %(refname)", "refs/tags/"]),
        (git_new, ["--sort=-refname", "--format=%(objecttype) %(refname)", "refs/tags/"]),
    ):
        ours, theirs = run_both(oracle, repo, [FE, *argv])
        assert ours == theirs, argv
    assert run_ours(repo, [FE, "--format=%(objecttype)", "refs/tags/"]) == (b"blob\n", fatal, 128)
