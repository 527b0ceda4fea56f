"""Config, committer identity and init_repo, each checked against git."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import DATA, Git

from aioreftable import RefnameError, UnsupportedRepositoryError, discover
from aioreftable._refs import DateError, committer_identity, init_repo, load_config, parse_date
from aioreftable._refs._config import ConfigError, parse_bool, parse_int
from aioreftable.lowlevel import TableReader


def git_ident(git: Git, repo: Path, env: dict[str, str]) -> str:
    """`git var GIT_COMMITTER_IDENT` with exactly ``env`` (no fixture identity mixed in)."""
    proc = subprocess.run(
        [git.path, "var", "GIT_COMMITTER_IDENT"], cwd=repo, env=env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


def our_ident(repo: Path, env: dict[str, str]) -> str:
    ident = committer_identity(env, load_config(discover(repo)))
    sign = "-" if ident.tz < 0 else "+"
    return f"{ident.name.decode()} <{ident.email.decode()}> {ident.time} {sign}{abs(ident.tz):04d}"


DATES = [
    "1112354055 +0200",
    "@1112354055 -0830",
    "1112354055 +1400",
    "2005-04-07T22:13:13+02:00",
    "2005-04-07T22:13:13Z",
    "2005-04-07 22:13:13 -0500",
    "Thu, 07 Apr 2005 22:13:13 +0200",
    "Thu, 7 Apr 2005 22:13:13 -0830",
]


@pytest.mark.parametrize("date", DATES)
def test_dates_match_git(git: Git, git_repo: Callable[..., Path], date: str) -> None:
    repo = git_repo()
    env = {**git.env, "GIT_COMMITTER_DATE": date}
    assert our_ident(repo, env) == git_ident(git, repo, env)


@pytest.mark.parametrize(
    ("name", "email"),
    [
        ("C O Mitter", "committer@example.com"),
        ("  <Crud>;, ", " <crud@example.com>. "),
        ('Ch\u00e9rie "Quoted" O\'Hara', "x@y"),
        ("Dr. Who.", "who@tardis."),
    ],
)
def test_identity_crud_matches_git(
    git: Git, git_repo: Callable[..., Path], name: str, email: str
) -> None:
    repo = git_repo()
    env = {**git.env, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    assert our_ident(repo, env) == git_ident(git, repo, env)


def test_identity_from_config(git: Git, git_repo: Callable[..., Path]) -> None:
    repo = git_repo()
    git("config", "user.name", "Config User", cwd=repo)
    git("config", "user.email", "config@example.com", cwd=repo)
    env = {k: v for k, v in git.env.items() if not k.startswith("GIT_COMMITTER_")}
    env["GIT_COMMITTER_DATE"] = "1112354055 +0200"
    assert our_ident(repo, env) == git_ident(git, repo, env)
    git("config", "committer.name", "Committer Override", cwd=repo)
    assert our_ident(repo, env) == git_ident(git, repo, env)
    assert our_ident(repo, env).startswith("Committer Override <config@example.com>")


def test_parse_date_rejects_garbage() -> None:
    with pytest.raises(DateError):
        parse_date("not a date")
    assert parse_date("1112354055 -0830") == (1112354055, -830)


def test_config_values_match_git(git: Git, git_repo: Callable[..., Path]) -> None:
    repo = git_repo()
    cfg = repo / ".git" / "config"
    cfg.write_text(
        cfg.read_text()
        + "[reftable]\n\tblockSize = 8k\n\trestartInterval = 010\n\tindexObjects = off\n"
        + "\tgeometricFactor = 3\n\tlockTimeout = -1\n"
        + "[core]\n\tlogAllRefUpdates = always\n\tsharedRepository = group\n"
        + '[user]\n\tname = "Quoted \\"Name\\"" ; comment\n\temail = q@example.com # c\n'
    )
    c = load_config(discover(repo))
    assert c.block_size == int(git("config", "--type=int", "reftable.blocksize", cwd=repo))
    assert c.restart_interval == int(
        git("config", "--type=int", "reftable.restartinterval", cwd=repo)
    )
    assert c.index_objects is (
        git("config", "--type=bool", "reftable.indexobjects", cwd=repo).strip() == "true"
    )
    assert (c.block_size, c.restart_interval, c.index_objects) == (8192, 8, False)
    assert (c.geometric_factor, c.lock_timeout, c.log_all_ref_updates) == (3, None, "always")
    assert c.user_name == git("config", "user.name", cwd=repo).strip() == 'Quoted "Name"'
    assert c.user_email == "q@example.com"
    assert c.file_mode(0o022) == 0o664 and c.file_mode(0o027) == 0o660
    assert c.should_autocreate_reflog("refs/tags/x")
    assert c.stack_options().write_options.block_size == 8192


def test_config_value_rules() -> None:
    assert parse_bool("k", None) and parse_bool("k", "Yes") and parse_bool("k", "1")
    assert not parse_bool("k", "") and not parse_bool("k", "off")
    assert parse_int("k", "1g") == 1 << 30 and parse_int("k", "0x10") == 16
    with pytest.raises(ConfigError):
        parse_bool("k", "maybe")
    with pytest.raises(ConfigError):
        parse_int("k", "12q")


def test_autocreate_reflog_rules(git: Git, git_repo: Callable[..., Path]) -> None:
    work = load_config(discover(git_repo()))
    assert work.should_autocreate_reflog("refs/heads/x")
    assert work.should_autocreate_reflog("HEAD")
    assert not work.should_autocreate_reflog("refs/tags/x")
    bare = load_config(discover(git_repo(name="bare.git", bare=True)))
    assert bare.bare and not bare.should_autocreate_reflog("refs/heads/x")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "reftable" not in p.parts)


@pytest.mark.parametrize(("object_format", "bare"), [("sha1", False), ("sha256", True)])
def test_init_repo_matches_git_init(
    git: Git, tmp_path: Path, object_format: str, bare: bool
) -> None:
    ours = tmp_path / "ours"
    theirs = tmp_path / "theirs"
    anyio.run(init_repo, ours, object_format, "trunk", bare)
    args = [
        "init",
        "-q",
        "--template=",
        "--ref-format=reftable",
        f"--object-format={object_format}",
    ]
    git(*args, "-b", "trunk", *(["--bare"] if bare else []), str(theirs))
    gd_ours, gd_theirs = (ours, theirs) if bare else (ours / ".git", theirs / ".git")
    assert _tree(gd_ours) == _tree(gd_theirs)
    for name in ("HEAD", "config", "refs/heads"):
        assert (gd_ours / name).read_bytes() == (gd_theirs / name).read_bytes(), name
    ours_table = [p for p in (gd_ours / "reftable").iterdir() if p.suffix == ".ref"]
    theirs_table = [p for p in (gd_theirs / "reftable").iterdir() if p.suffix == ".ref"]
    assert len(ours_table) == len(theirs_table) == 1
    assert ours_table[0].read_bytes() == theirs_table[0].read_bytes()
    assert stat.S_IMODE(ours_table[0].stat().st_mode) == stat.S_IMODE(
        theirs_table[0].stat().st_mode
    )
    assert git("symbolic-ref", "HEAD", cwd=gd_ours).strip() == "refs/heads/trunk"
    assert git("refs", "verify", cwd=gd_ours) == ""


def test_git_commits_in_our_repository(git: Git, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    anyio.run(init_repo, repo)
    (repo / "file").write_text("hello\n")
    git("add", "file", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    assert git("log", "--format=%s", cwd=repo).strip() == "first"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).strip() == "main"
    assert git("fsck", "--strict", cwd=repo).strip() == ""
    assert git("refs", "verify", cwd=repo) == ""
    # re-initialising keeps the refs, like git init does
    before = git("show-ref", "--head", cwd=repo)
    anyio.run(init_repo, repo)
    assert git("show-ref", "--head", cwd=repo) == before


def test_init_repo_refusals(git: Git, tmp_path: Path) -> None:
    with pytest.raises(RefnameError):
        anyio.run(init_repo, tmp_path / "x", "sha1", "bad..name")
    git("init", "-q", "--ref-format=files", str(tmp_path / "files"))
    with pytest.raises(UnsupportedRepositoryError):
        anyio.run(init_repo, tmp_path / "files")
    for unknown in ("md5", "SHA1", ""):
        with pytest.raises(ValueError, match="unknown hash algorithm"):
            anyio.run(init_repo, tmp_path / "y", unknown)
    assert not (tmp_path / "y").exists()


def test_initial_table_is_git_fixture_e1(tmp_path: Path) -> None:
    anyio.run(init_repo, tmp_path / "r")
    (table,) = (tmp_path / "r" / ".git" / "reftable").glob("*.ref")
    assert table.read_bytes() == (DATA / "git_head_symref.ref").read_bytes()
    head = TableReader.from_path(table).ref(b"HEAD")
    assert head is not None and head.target == b"refs/heads/main"
    assert os.access(table, os.R_OK)


def test_config_includes(git: Git, git_repo: Callable[..., Path]) -> None:
    import warnings

    repo = git_repo()
    extra = repo / "extra.config"
    extra.write_text("[reftable]\n\tblockSize = 1024\n")
    git("config", "include.path", str(extra), cwd=repo)
    assert git("config", "reftable.blocksize", cwd=repo).strip() == "1024"
    assert load_config(discover(repo)).block_size == 1024  # followed, like git
    cond = repo / "cond.config"
    cond.write_text("[reftable]\n\trestartInterval = 5\n")
    git("config", f"includeIf.gitdir:{repo}/.git.path", str(cond), cwd=repo)
    assert git("config", "reftable.restartinterval", cwd=repo).strip() == "5"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # conditional includes are followed, no warning
        config = load_config(discover(repo))
    assert config.restart_interval == 5  # like git (tests/test_refs_config_include.py)


TRICKY_CONFIG = r"""
[core]
	repositoryformatversion = 1
	bare = false
[extensions]
	refstorage = reftable
[Section "Sub.Section"]
	key = value with spaces   ; trailing comment
	quoted = "a \"quoted\" value # not a comment"
	escapes = tab\there newline\nend backslash\\done
	continued = first \
second
	empty =
	novalue
	MixedCase = Yes
[section.dotted]
	key = 1k
[user]
	name = "  Padded Name  "
	email = e@example.com # comment
"""


def test_dulwich_config_parser_agrees_with_git_config_list(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    from dulwich.config import ConfigFile

    repo = git_repo()
    (repo / ".git" / "config").write_text(TRICKY_CONFIG)
    want: dict[str, str | None] = {}
    for line in git("config", "--list", "--local", "-z", cwd=repo).split("\0"):
        if line:
            key, _, text = line.partition("\n")
            want[key] = text if "\n" in line else None
    cfg = ConfigFile.from_path(str(repo / ".git" / "config"))
    got: dict[str, str] = {}
    for section in cfg.sections():
        head = section[0].decode().lower()
        if len(section) > 1:
            head += "." + section[1].decode()
        for name, raw in cfg.items(section):
            got[f"{head}.{name.decode().lower()}"] = raw.decode()
    for key, value in want.items():
        if value is None:
            assert key in got  # a key without a value (dulwich reports it as true)
        else:
            assert got[key] == value, key
    assert set(got) == set(want) and len(want) == 13
    config = load_config(discover(repo))
    assert config.user_name == "  Padded Name  " and config.user_email == "e@example.com"
