"""git's config layers and the committer identity, each checked against git on a twin."""

from __future__ import annotations

import os
import pwd
import socket
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import pytest
from conftest import Git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refs_helpers import make_twins, object_ids

import aioreftable._refs._ident as ident_module
from aioreftable import ConfigError, RefStore, discover, open_ref_store
from aioreftable._refs._config import command_line_config, load_config, read_config
from aioreftable._refs._ident import resolve_committer
from aioreftable.lowlevel import TableReader

pytestmark = pytest.mark.anyio

Row = tuple[str, str, str, str | None]  # scope, origin, key, value (None: no "=")
KeyValue = tuple[str, str | None]

DATE = "1112354055 +0200"
# What the conftest's git runner fixes and these tests must control themselves (None: unset).
CLEAN: dict[str, str | None] = {
    key: None
    for key in (
        "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL",
        "XDG_CONFIG_HOME", "HOME",
    )
}  # fmt: skip

SYSTEM = (
    "[core]\n\tlogAllRefUpdates = false\n[reftable]\n\tblockSize = 2048\n[layer]\n\tsystem = 1\n"
)
XDG = (
    "[user]\n\tname = Xdg Name\n\temail = xdg@example.com\n"
    "[core]\n\tlogAllRefUpdates = always\n[layer]\n\txdg = 1\n"
)
HOME = "[user]\n\tname = Home Name\n[reftable]\n\trestartInterval = 3\n[layer]\n\thome = 1\n"
DOT_CONFIG = "[layer]\n\tdotconfig = 1\n"  # $HOME/.config/git/config (no XDG_CONFIG_HOME)
OTHER_GLOBAL = "[layer]\n\tother = 1\n[user]\n\tname = Other Global\n"
WORKTREE = "[committer]\n\temail = worktree@example.com\n[layer]\n\tworktree = 1\n"


@dataclass
class Layers:
    root: Path
    env: dict[str, str | None]  # overrides for the git runner (None removes a key)

    def effective(self, git: Git, **extra: str | None) -> dict[str, str]:
        """The exact environment git runs with, for our side too."""
        merged = {**git.env, **self.env, **extra}
        return {k: v for k, v in merged.items() if v is not None}

    def run(
        self, git: Git, *args: str, cwd: Path, input: str | None = None, **extra: str | None
    ) -> str:
        env = {**self.env, **extra}
        return git.run("-C", str(cwd), *args, input=input, env=env).stdout.decode()


def git_c_parameters(git: Git, cwd: Path, *pairs: str) -> str:
    """GIT_CONFIG_PARAMETERS exactly as ``git -c ...`` exports it to the commands it runs."""
    args = [arg for pair in pairs for arg in ("-c", pair)]
    alias = "alias.penv=!printenv GIT_CONFIG_PARAMETERS"
    out = git.run(*args, "-c", alias, "penv", cwd=cwd, env=CLEAN).stdout.decode()
    return out.removesuffix("\n")


@pytest.fixture
def layers(git: Git, tmp_path: Path) -> Layers:
    """System, XDG, ~/.gitconfig and command-line config in a temporary HOME."""
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "config").write_text(DOT_CONFIG)
    (home / ".gitconfig").write_text(HOME)
    (home / "other.gitconfig").write_text(OTHER_GLOBAL)
    (home / "included.config").write_text("[layer]\n\tincluded = 1\n[user]\n\tname = Inc\n")
    xdg = tmp_path / "xdg"
    (xdg / "git").mkdir(parents=True)
    (xdg / "git" / "config").write_text(XDG)
    system = tmp_path / "system.gitconfig"
    system.write_text(SYSTEM)
    params = git_c_parameters(
        git, tmp_path, "user.name=Param Name", "layer.Sub.Key=it's a '!' value", "flag.only"
    )
    assert "'user.name'='Param Name'" in params  # the new-style quoting of git -c
    env: dict[str, str | None] = {
        **CLEAN,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(xdg),
        "GIT_CONFIG_SYSTEM": str(system),
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "reftable.geometricFactor",
        "GIT_CONFIG_VALUE_0": "100",
        "GIT_CONFIG_KEY_1": "Layer.Count.KEY",
        "GIT_CONFIG_VALUE_1": "",
        "GIT_CONFIG_PARAMETERS": params,
        "GIT_COMMITTER_DATE": DATE,
    }
    return Layers(tmp_path, env)


def with_worktree_config(git: Git, layers: Layers, repo: Path) -> None:
    layers.run(git, "config", "extensions.worktreeConfig", "true", cwd=repo)
    layers.run(git, "config", "reftable.blockSize", "1024", cwd=repo)
    layers.run(git, "config", "--unset", "core.logAllRefUpdates", cwd=repo)  # git init's
    (repo / ".git" / "config.worktree").write_text(WORKTREE)


def git_config_list(git: Git, layers: Layers, repo: Path, **extra: str | None) -> list[Row]:
    """``git config list --show-scope --show-origin -z`` as (scope, origin, key, value)."""
    out = layers.run(
        git, "config", "list", "--show-scope", "--show-origin", "-z", cwd=repo, **extra
    )
    fields = out.split("\0")[:-1]
    rows: list[Row] = []
    for scope, origin, item in zip(fields[::3], fields[1::3], fields[2::3], strict=True):
        key, newline, value = item.partition("\n")
        if origin.startswith("file:"):
            origin = str((repo / origin.removeprefix("file:")).resolve())
        rows.append((scope, origin, key, value if newline else None))
    return rows


def our_config_list(layers: Layers, git: Git, repo: Path, **extra: str | None) -> list[Row]:
    entries = read_config(discover(repo), layers.effective(git, **extra))
    return [
        (e.scope, "command line:" if e.origin == "command line" else str(Path(e.origin).resolve()),
         e.key, e.value)
        for e in entries
    ]  # fmt: skip


VARIANTS: dict[str, dict[str, str | None]] = {
    "all layers": {},
    "GIT_CONFIG_GLOBAL replaces both global files": {"GIT_CONFIG_GLOBAL": "OTHER"},
    "empty GIT_CONFIG_GLOBAL: no global config": {"GIT_CONFIG_GLOBAL": ""},
    "GIT_CONFIG_NOSYSTEM=1": {"GIT_CONFIG_NOSYSTEM": "1"},
    "GIT_CONFIG_NOSYSTEM=false still reads it": {"GIT_CONFIG_NOSYSTEM": "false"},
    "no XDG_CONFIG_HOME: ~/.config/git/config": {"XDG_CONFIG_HOME": None},
    "empty XDG_CONFIG_HOME: ~/.config/git/config": {"XDG_CONFIG_HOME": ""},
    "no HOME: XDG only": {"HOME": None},
    "no command line": {"GIT_CONFIG_COUNT": None, "GIT_CONFIG_PARAMETERS": None},
    "GIT_CONFIG_COUNT=0": {"GIT_CONFIG_COUNT": "0"},
    "include.path on the command line": {
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_2": "include.path",
        "GIT_CONFIG_VALUE_2": "~/included.config",
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_layers_match_git_config_list(
    git: Git, git_repo: Callable[..., Path], layers: Layers, variant: str
) -> None:
    repo = git_repo()
    with_worktree_config(git, layers, repo)
    extra = dict(VARIANTS[variant])
    if extra.get("GIT_CONFIG_GLOBAL") == "OTHER":
        extra["GIT_CONFIG_GLOBAL"] = str(Path(layers.env["HOME"] or "") / "other.gitconfig")
    want = git_config_list(git, layers, repo, **extra)
    assert our_config_list(layers, git, repo, **extra) == want
    assert want, "git saw no config at all"


def test_each_layer_is_read_and_wins_in_gits_order(
    git: Git, git_repo: Callable[..., Path], layers: Layers
) -> None:
    repo = git_repo()
    with_worktree_config(git, layers, repo)
    rows = git_config_list(git, layers, repo)
    assert [s for s in dict.fromkeys(r[0] for r in rows)] == [
        "system", "global", "local", "worktree", "command"
    ]  # fmt: skip
    config = load_config(discover(repo), layers.effective(git))
    get = {
        key: layers.run(git, "config", "--get", key, cwd=repo).strip()
        for key in ("user.name", "committer.email", "core.logallrefupdates")
    }
    assert (config.user_name, config.committer_email) == (get["user.name"], get["committer.email"])
    assert config.user_name == "Param Name"  # GIT_CONFIG_PARAMETERS over ~/.gitconfig over XDG
    assert config.log_all_ref_updates == get["core.logallrefupdates"] == "always"  # XDG > system
    assert (config.block_size, config.restart_interval, config.geometric_factor) == (1024, 3, 100)
    # config.worktree counts only with extensions.worktreeConfig (read from the repo's config)
    layers.run(git, "config", "extensions.worktreeConfig", "false", cwd=repo)
    proc = git.run("config", "--get", "committer.email", cwd=repo, env=layers.env, check=False)
    assert proc.returncode == 1 and proc.stdout == b""
    assert load_config(discover(repo), layers.effective(git)).committer_email is None


def reflog_idents(git: Git, layers: Layers, repo: Path, ref: str) -> list[str]:
    fmt = "--format=%gn <%ge> %gd %gs"
    return layers.run(git, "reflog", "show", "--date=raw", fmt, ref, "--", cwd=repo).splitlines()


def tables(repo: Path) -> list[tuple[str, bytes]]:
    """The stack's tables without their random name suffix, with their bytes."""
    stack = repo / ".git" / "reftable"
    names = (stack / "tables.list").read_text().split()
    return [(n.rsplit("-", 1)[0], (stack / n).read_bytes()) for n in names]


async def test_reflog_identity_and_table_settings_match_git(
    git: Git, tmp_path: Path, layers: Layers
) -> None:
    """Every setting comes from a different layer; git's update-ref on one twin and our
    transaction on the other write the same tables (identity, date, block size, restart
    interval, reflogs of tags via core.logAllRefUpdates=always, compaction by factor)."""
    theirs, ours = make_twins(git, tmp_path)
    ids = object_ids(git, theirs)
    for repo in (theirs, ours):
        with_worktree_config(git, layers, repo)
    env = layers.effective(git)
    batches = [
        [(f"refs/tags/t{n:02}", ids["c0"]) for n in range(20)]
        + [(f"refs/heads/b{n:02}", ids["c1"]) for n in range(20)],
        [("refs/heads/b00", ids["c2"])],
        [("refs/tags/t01", ids["c2"])],
    ]
    for n, batch in enumerate(batches):
        stdin = "".join(f"update {name} {oid}\n" for name, oid in batch)
        layers.run(git, "update-ref", "-m", f"batch {n}", "--stdin", cwd=theirs, input=stdin)
        async with (
            open_ref_store(ours, env=env) as store,
            store.transaction(message=f"batch {n}") as tx,
        ):
            for name, oid in batch:
                tx.update(name, oid)
    for ref in ("refs/tags/t01", "refs/heads/b00", "HEAD"):
        want = reflog_idents(git, layers, theirs, ref)
        assert reflog_idents(git, layers, ours, ref) == want
    assert reflog_idents(git, layers, ours, "refs/tags/t01")[0].startswith(
        "Param Name <worktree@example.com> "
    )
    assert [name for name, _ in tables(ours)] == [name for name, _ in tables(theirs)]
    assert tables(ours) == tables(theirs)
    header = tables(ours)[-1][1]
    assert int.from_bytes(header[5:8], "big") == 1024  # reftable.blockSize from config


def git_ident_via_reflog(git: Git, layers: Layers, repo: Path, **extra: str | None) -> str:
    """The identity git stores in a reflog record (not strict, unlike ``git var``; read from
    the table: ``%gn`` would show the login for an empty stored name)."""
    oid = layers.run(git, "rev-parse", "HEAD", cwd=repo, **extra).strip()
    layers.run(git, "update-ref", "-m", "x", "refs/heads/ident", oid, cwd=repo, **extra)
    stack = repo / ".git" / "reftable"
    newest = (stack / "tables.list").read_text().split()[-1]
    log = next(TableReader.from_path(stack / newest).iter_logs(b"refs/heads/ident"))
    return f"{log.name.decode()} <{log.email.decode()}>"


IDENT_CASES: dict[str, tuple[str, dict[str, str | None]]] = {
    "env wins over every layer": (
        "",
        {"GIT_COMMITTER_NAME": "Env N", "GIT_COMMITTER_EMAIL": "e@x"},
    ),
    "empty GIT_COMMITTER_NAME: login name": ("", {"GIT_COMMITTER_NAME": ""}),
    "empty GIT_COMMITTER_EMAIL stays empty": ("", {"GIT_COMMITTER_EMAIL": ""}),
    "committer.name over user.name": ("[committer]\n\tname = Cfg Committer\n", {}),
    "empty committer.name, user.name used": ("[committer]\n\tname =\n", {}),
    "EMAIL when no email is configured": ("", {"GIT_CONFIG_GLOBAL": "", "EMAIL": "mail@env"}),
    "no email anywhere: login@host": ("", {"GIT_CONFIG_GLOBAL": ""}),
    "author.* only: login name, empty email": (
        "[author]\n\tname = Auth Or\n\temail = author@x\n",
        {"GIT_CONFIG_PARAMETERS": None, "GIT_CONFIG_GLOBAL": "", "EMAIL": "mail@env"},
    ),
    "only-crud name": ('[user]\n\tname = " <;> "\n', {"GIT_CONFIG_PARAMETERS": None}),
}


@pytest.mark.parametrize("case", sorted(IDENT_CASES))
def test_identity_precedence_matches_git(
    git: Git, git_repo: Callable[..., Path], layers: Layers, case: str
) -> None:
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    local, extra = IDENT_CASES[case]
    with open(repo / ".git" / "config", "a") as f:
        f.write(local)
    env = layers.effective(git, **extra)
    committer = resolve_committer(env, load_config(discover(repo), env))
    ours = f"{committer.name.decode()} <{committer.email.decode()}>"
    assert ours == git_ident_via_reflog(git, layers, repo, **extra)


def test_conditional_include_in_global_config_is_followed(
    git: Git, git_repo: Callable[..., Path], layers: Layers
) -> None:
    repo = git_repo()
    home = Path(layers.env["HOME"] or "")
    (home / "cond").write_text("[reftable]\n\tblockSize = 512\n")
    with open(home / ".gitconfig", "a") as f:
        f.write(f'[includeIf "gitdir:{repo}/.git"]\n\tpath = {home / "cond"}\n')
    assert layers.run(git, "config", "reftable.blocksize", cwd=repo).strip() == "512"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(discover(repo), layers.effective(git))
    assert config.block_size == 512  # followed like git (tests/test_refs_config_include.py)


def test_core_bare_from_another_layer_keeps_a_work_tree(
    git: Git, git_repo: Callable[..., Path], layers: Layers
) -> None:
    """git decides bare-ness at discovery from the repository's own config; a core.bare from
    the command line does not stop reflogs of a work tree's branches (should_autocreate)."""
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    for key in ("core.bare", "core.logAllRefUpdates", "core.logallrefupdates"):
        git.run("config", "--unset", key, cwd=repo, check=False)
    extra = {
        "GIT_CONFIG_PARAMETERS": "'core.bare'='true'",
        "GIT_CONFIG_COUNT": None,
        "GIT_CONFIG_GLOBAL": "",  # no core.logAllRefUpdates=always from XDG
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    layers.run(git, "update-ref", "refs/heads/q", "HEAD", cwd=repo, **extra)
    logged = git.run("reflog", "exists", "refs/heads/q", cwd=repo, check=False).returncode == 0
    config = load_config(discover(repo), layers.effective(git, **extra))
    assert config.should_autocreate_reflog("refs/heads/q") is logged is True


def test_command_line_include_must_be_absolute(
    git: Git, git_repo: Callable[..., Path], layers: Layers
) -> None:
    repo = git_repo()
    extra = {"GIT_CONFIG_PARAMETERS": "'include.path'='included.config'"}
    proc = git.run("config", "list", cwd=repo, env={**layers.env, **extra}, check=False)
    assert proc.returncode == 128 and b"relative config includes" in proc.stderr
    with pytest.raises(ConfigError, match="relative config includes must come from files"):
        read_config(discover(repo), layers.effective(git, **extra))


def test_bad_nosystem_boolean_is_a_config_error(
    git: Git, git_repo: Callable[..., Path], layers: Layers
) -> None:
    repo = git_repo()
    extra = {"GIT_CONFIG_NOSYSTEM": "maybe"}
    proc = git.run("config", "list", cwd=repo, env={**layers.env, **extra}, check=False)
    message = "bad boolean environment value 'maybe' for 'GIT_CONFIG_NOSYSTEM'"
    assert proc.returncode == 128 and message.encode() in proc.stderr
    with pytest.raises(ConfigError, match=message):
        read_config(discover(repo), layers.effective(git, **extra))


# -- the command line ----------------------------------------------------------------------

BAD_COMMAND_LINES: list[dict[str, str]] = [
    {"GIT_CONFIG_COUNT": "x"},
    {"GIT_CONFIG_COUNT": " "},
    {"GIT_CONFIG_COUNT": "-1"},
    {"GIT_CONFIG_COUNT": "99999999999"},
    {"GIT_CONFIG_COUNT": "1"},
    {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b"},
    {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "nosection", "GIT_CONFIG_VALUE_0": "v"},
    {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.1b", "GIT_CONFIG_VALUE_0": "v"},
    {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a_b.c", "GIT_CONFIG_VALUE_0": "v"},
    {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.", "GIT_CONFIG_VALUE_0": "v"},
    {"GIT_CONFIG_PARAMETERS": "'a.b"},
    {"GIT_CONFIG_PARAMETERS": "a.b=c"},
    {"GIT_CONFIG_PARAMETERS": "'a.b'x"},
    {"GIT_CONFIG_PARAMETERS": "'a.b'='c'x"},
    {"GIT_CONFIG_PARAMETERS": "'a.b'=c"},
    {"GIT_CONFIG_PARAMETERS": "'=v'"},
    {"GIT_CONFIG_PARAMETERS": "'old'"},
    {"GIT_CONFIG_PARAMETERS": "''"},
]
GOOD_COMMAND_LINES: list[dict[str, str]] = [
    {"GIT_CONFIG_COUNT": ""},
    {"GIT_CONFIG_COUNT": " +1", "GIT_CONFIG_KEY_0": "A.Sub.Sect.K-1", "GIT_CONFIG_VALUE_0": ""},
    {"GIT_CONFIG_COUNT": "-0"},
    {"GIT_CONFIG_PARAMETERS": "'old.style=v=w'  'x.y'= 'q.z'='it'\\''s'\\!'' "},
    {"GIT_CONFIG_PARAMETERS": "'a.b'='1' 'a.b'='2'", "GIT_CONFIG_COUNT": "1",
     "GIT_CONFIG_KEY_0": "a.b", "GIT_CONFIG_VALUE_0": "0"},
    {"GIT_CONFIG_PARAMETERS": "'.x.y'='empty section'"},
    {"GIT_CONFIG_PARAMETERS": ""},
]  # fmt: skip


def git_command_config(git: Git, cwd: Path, env: Mapping[str, str]) -> list[KeyValue] | str:
    """git's command-line layer, or its error when it dies."""
    args = ("config", "list", "--show-scope", "-z")
    proc = git.run(*args, cwd=cwd, env={**CLEAN, "GIT_CONFIG_NOSYSTEM": "1", **env}, check=False)
    if proc.returncode:
        assert proc.returncode == 128
        return proc.stderr.decode()
    fields = proc.stdout.decode().split("\0")[:-1]
    rows: list[KeyValue] = []
    for scope, item in zip(fields[::2], fields[1::2], strict=True):
        key, newline, value = item.partition("\n")
        if scope == "command":
            rows.append((key, value if newline else None))
    return rows


@pytest.mark.parametrize("env", BAD_COMMAND_LINES, ids=str)
def test_malformed_command_line_config_is_a_config_error(
    git: Git, tmp_path: Path, env: dict[str, str]
) -> None:
    error = git_command_config(git, tmp_path, env)
    assert isinstance(error, str) and "unable to parse command-line config" in error
    with pytest.raises(ConfigError, match="unable to parse command-line config"):
        command_line_config(env)


@pytest.mark.parametrize("env", GOOD_COMMAND_LINES, ids=str)
def test_command_line_config_matches_git(git: Git, tmp_path: Path, env: dict[str, str]) -> None:
    ours = [(e.key, e.value) for e in command_line_config(env)]
    assert ours == git_command_config(git, tmp_path, env)


def sq_quote(text: str) -> str:
    """git's sq_quote_buf: '...' with ' and ! closed, backslashed and reopened."""
    return "'" + text.replace("'", "'\\''").replace("!", "'\\!'") + "'"


WORD = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,5}", fullmatch=True)
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)  # lone surrogates: not encodable as UTF-8
TEXT = st.characters(exclude_categories=SURROGATES, exclude_characters="\0")
SUBSECTION = st.none() | st.text(
    st.characters(exclude_categories=SURROGATES, exclude_characters="\0\n="), max_size=6
)
KEYS = st.builds(
    lambda s, sub, n: s if sub is None else f"{s.split('.')[0]}.{sub}.{n}",
    WORD.map(lambda w: w + ".name"),
    SUBSECTION,
    WORD,
)
VALUES = st.none() | st.text(TEXT, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_parameters_quoted_like_git_c_round_trip(pairs: list[tuple[str, str | None]]) -> None:
    """What git_config_push_split_parameter writes, parse_config_env_list reads back."""
    text = " ".join(sq_quote(k) + "=" + ("" if v is None else sq_quote(v)) for k, v in pairs)
    got = [(e.key, e.value) for e in command_line_config({"GIT_CONFIG_PARAMETERS": text})]
    want = []
    for key, value in pairs:
        first, last = key.find("."), key.rfind(".")
        want.append((key[:first].lower() + key[first:last] + key[last:].lower(), value))
    assert got == want


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_parameters_from_real_git_c(git: Git, tmp_path: Path, pairs: list[KeyValue]) -> None:
    """``git -c`` itself quotes the pairs; git and we read the same command-line layer."""
    specs = [k if v is None else f"{k}={v}" for k, v in pairs]
    params = git_c_parameters(git, tmp_path, *specs)
    env = {"GIT_CONFIG_PARAMETERS": params}
    ours = [(e.key, e.value) for e in command_line_config(env) if not e.key.startswith("alias.")]
    theirs = git_command_config(git, tmp_path, env)
    assert isinstance(theirs, list)
    assert ours == [row for row in theirs if not row[0].startswith("alias.")]


# -- identity resolution off the event loop ------------------------------------------------


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Records (call, thread id) of every passwd, /etc/mailname and DNS lookup; the host
    name has no dot and there is no mailname, so git's fallback needs getaddrinfo."""
    calls: list[tuple[str, int]] = []
    real_getpwuid, real_getaddrinfo = pwd.getpwuid, socket.getaddrinfo

    def getpwuid(uid: int) -> pwd.struct_passwd:
        calls.append(("getpwuid", threading.get_ident()))
        return real_getpwuid(uid)

    def getaddrinfo(*args: object, **kw: object) -> object:
        calls.append(("getaddrinfo", threading.get_ident()))
        return real_getaddrinfo("localhost", None)

    def mailname() -> None:
        calls.append(("mailname", threading.get_ident()))

    monkeypatch.setattr(pwd, "getpwuid", getpwuid)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostname", lambda: "nodot")
    monkeypatch.setattr(ident_module, "_read_mailname", mailname)
    yield calls


async def test_commits_resolve_the_identity_once_and_off_the_loop(
    git: Git, git_repo: Callable[..., Path], lookups: list[tuple[str, int]]
) -> None:
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    oid = git("rev-parse", "HEAD", cwd=repo).strip()
    env = {k: v for k, v in git.env.items() if k not in ("GIT_COMMITTER_EMAIL", "EMAIL")}
    env.pop("GIT_COMMITTER_NAME")
    loop_thread = threading.get_ident()

    async def commit(store: RefStore, name: str) -> None:
        async with store.transaction(message=name) as tx:
            tx.update(name, oid)

    async with open_ref_store(repo, env=env) as store:
        assert lookups == []  # nothing resolved for a store that only reads
        async with anyio.create_task_group() as tg:  # two first writers at once: one lookup
            for n in range(2):
                tg.start_soon(commit, store, f"refs/heads/b{n}")
        for n in range(2, 10):
            await commit(store, f"refs/heads/b{n}")
        await store.rename("refs/heads/b0", "refs/heads/renamed", "rename")
        entries = await store.reflog("refs/heads/b9")
    assert [call for call, _ in lookups].count("getaddrinfo") == 1
    assert [call for call, _ in lookups].count("mailname") == 1
    assert all(thread != loop_thread for _, thread in lookups), lookups
    assert entries[0].email == f"{pwd.getpwuid(os.getuid()).pw_name}@nodot.(none)"


async def test_each_commit_gets_its_own_date(
    git: Git, git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity is kept per store, the date is not: "now" for every commit, unless
    GIT_COMMITTER_DATE fixes it."""
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    oid = git("rev-parse", "HEAD", cwd=repo).strip()
    clock = iter([1_700_000_000.5, 1_700_000_100.0, 1_700_000_200.0])
    monkeypatch.setattr(ident_module, "_now", lambda: next(clock))
    env = {k: v for k, v in git.env.items() if k != "GIT_COMMITTER_DATE"}
    async with open_ref_store(repo, env=env) as store:
        for n in range(2):
            async with store.transaction(message=f"c{n}") as tx:
                tx.update(f"refs/heads/d{n}", oid)
        times = [(await store.reflog(f"refs/heads/d{n}"))[0].time for n in range(2)]
    assert times == [1_700_000_000, 1_700_000_100]
    async with open_ref_store(repo, env={**env, "GIT_COMMITTER_DATE": DATE}) as store:
        async with store.transaction(message="fixed") as tx:
            tx.update("refs/heads/d2", oid)
        entry = (await store.reflog("refs/heads/d2"))[0]
    assert (entry.time, entry.tz) == (1112354055, 200)


async def test_store_reads_global_config_on_open(
    git: Git, git_repo: Callable[..., Path], layers: Layers
) -> None:
    """open_ref_store honours the layers (the global reftable.restartInterval here)."""
    repo = git_repo()
    async with open_ref_store(repo, env=layers.effective(git)) as store:
        assert (store.config.restart_interval, store.config.block_size) == (3, 2048)
        assert store.config.user_name == "Param Name"


async def test_config_is_read_in_a_worker_thread(
    git: Git, git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo()
    import aioreftable._refs._config as config_module

    threads: list[int] = []
    real = config_module._read_file

    def spy(path: str) -> bytes | None:
        threads.append(threading.get_ident())
        return real(path)

    monkeypatch.setattr(config_module, "_read_file", spy)

    async with open_ref_store(repo, env=git.env):
        pass
    assert threads and threading.get_ident() not in threads
