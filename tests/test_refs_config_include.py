"""git's includes and conditional includes (gitdir, gitdir/i, onbranch, hasconfig), each
case compared with ``git config list --show-scope --show-origin`` on the same files."""

from __future__ import annotations

import random
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refs_helpers import make_twins, object_ids

from aioreftable import ConfigError, UnsupportedConfigWarning, discover, open_ref_store
from aioreftable._refs._config import (
    ConfigEntry,
    given_git_dir,
    load_config,
    read_config,
    read_store_config,
)
from aioreftable._refs._store import read_head_ref
from aioreftable._repo import RepositoryLayout
from aioreftable.wildmatch import WM_CASEFOLD, WM_PATHNAME, wildmatch

pytestmark = pytest.mark.anyio

Row = tuple[str, str, str, str | None]


@dataclass
class Env:
    """A temporary HOME as the only global config; git runs in ``start`` with
    ``PWD=start`` (as from a shell), so that it sees a symlinked path as given."""

    tmp: Path
    home: Path

    def overrides(self, start: Path, **extra: str | None) -> dict[str, str | None]:
        return {
            "HOME": str(self.home),
            "GIT_CONFIG_GLOBAL": None,
            "XDG_CONFIG_HOME": None,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_PARAMETERS": None,
            "GIT_CONFIG_COUNT": None,
            "PWD": str(start),
            **extra,
        }

    def ours(self, git: Git, start: Path, **extra: str | None) -> dict[str, str]:
        merged = {**git.env, **self.overrides(start, **extra)}
        return {k: v for k, v in merged.items() if v is not None}

    def write(self, name: str, text: str) -> Path:
        path = self.home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@pytest.fixture
def env(tmp_path: Path) -> Env:
    home = tmp_path / "home"
    home.mkdir()
    return Env(tmp_path, home)


def git_list(git: Git, env: Env, start: Path, **extra: str | None) -> list[Row] | str:
    """git's entries (origins resolved), or its fatal message."""
    args = ("config", "list", "--show-scope", "--show-origin", "-z")
    proc = git.run(*args, cwd=start, env=env.overrides(start, **extra), check=False)
    if proc.returncode:
        assert proc.returncode == 128, proc.stderr
        return proc.stderr.decode("utf-8", "surrogateescape").split("fatal: ", 1)[1].rstrip("\n")
    fields = proc.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]
    rows: list[Row] = []
    for scope, origin, item in zip(fields[::3], fields[1::3], fields[2::3], strict=True):
        key, newline, value = item.partition("\n")
        if origin.startswith("file:"):  # relative to where git moved (the top of the tree)
            name = origin.removeprefix("file:")
            base = next((d for d in (start, *start.parents) if (d / name).exists()), start)
            origin = str((base / name).resolve())
        rows.append((scope, origin, key, value if newline else None))
    return rows


def rows_of(entries: list[ConfigEntry]) -> list[Row]:
    return [
        (e.scope, "command line:" if e.origin == "command line" else str(Path(e.origin).resolve()),
         e.key, e.value)
        for e in entries
    ]  # fmt: skip


async def store_config(start: Path, environ: Mapping[str, str]) -> list[ConfigEntry]:
    """The entries as open_ref_store reads them: HEAD for ``onbranch:`` through the stacks."""
    layout = discover(start, environ)
    return await read_store_config(layout, environ, start, lambda: read_head_ref(layout, environ))


def our_list(git: Git, env: Env, start: Path, **extra: str | None) -> list[Row] | str:
    """Our entries as the ref store reads them (without a HEAD: see the onbranch tests)."""
    environ = env.ours(git, start, **extra)
    layout = discover(start, environ)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no UnsupportedConfigWarning for any condition
            given = given_git_dir(start, layout, environ)
            return rows_of(read_config(layout, environ, given_git_dir=given))
    except ConfigError as exc:
        return str(exc)


def quoted(condition: str) -> str:
    """A subsection as git's config parser reads it back."""
    return condition.replace("\\", "\\\\").replace('"', '\\"')


def conditional_includes(env: Env, conditions: list[str], name: str = "hit") -> str:
    """One ``[includeIf]`` per condition, each including its own file that sets
    ``<name>.c<n>``: which of them git followed shows in its list."""
    out = []
    for n, condition in enumerate(conditions):
        env.write(f"inc/{name}{n}", f"[{name}]\n\tc{n} = {quoted(condition)}\n")
        out.append(f'[includeIf "{quoted(condition)}"]\n\tpath = inc/{name}{n}\n')
    return "".join(out)


def hits(rows: list[Row] | str, name: str = "hit") -> set[str]:
    assert isinstance(rows, list), rows
    return {key.split(".", 1)[1] for _, _, key, _ in rows if key.startswith(name + ".")}


def init(git: Git, path: Path, branch: str = "main") -> Path:
    git("init", "-q", "--ref-format=reftable", "-b", branch, str(path))
    return path


# -- gitdir: and gitdir/i: --------------------------------------------------------------------


@pytest.fixture
def symlinked(git: Git, env: Env) -> tuple[Path, Path]:
    """``~/real/work/Repo`` and the same repository through the symlink ``~/link``."""
    real = env.home / "real"
    init(git, real / "work" / "Repo")
    (real / "work" / "Repo" / "sub").mkdir()
    (env.home / "link").symlink_to(real)
    return real, env.home / "link"


def test_gitdir_conditions_match_git(git: Git, env: Env, symlinked: tuple[Path, Path]) -> None:
    real, link = symlinked
    upper = str(real).upper()
    conditions = [
        f"gitdir:{real}/work/Repo/.git",
        f"gitdir:{real}/work/",  # a final / is /**
        f"gitdir:{real}/work",  # ... without it the whole path must match
        f"gitdir:{link}/work/",  # only through the symlink as given
        "gitdir:work/Repo/",  # relative: **/ in front
        "gitdir:Repo/.git",
        "gitdir:repo/.git",
        "gitdir/i:repo/.git",
        f"gitdir:{upper}/work/",
        f"gitdir/i:{upper}/WORK/",
        f"gitdir/i:{str(link).upper()}/work/",
        "gitdir:./real/work/",  # relative to the including file's real directory
        "gitdir:./link/work/",
        "gitdir:~/real/work/",
        f"gitdir:{real}/w?rk/R*/.git",
        f"gitdir:{real}/**/.git",
        f"gitdir:{real}/*/.git",
        f"gitdir:{real}/w[a-p]rk/",
        f"gitdir:{real}/w[!o]rk/",
        f"gitdir:{real}/w\\ork/",
        "gitdir:other/",
        "GitDir:work/",  # unknown conditions (the prefix is case sensitive) are false
        "unknown:x",
        "",
    ]
    env.write(".gitconfig", conditional_includes(env, conditions) + "[after]\n\tx = 1\n")
    seen = {}
    for name, start in [
        ("real", real / "work" / "Repo"),
        ("link", link / "work" / "Repo"),
        ("link .git", link / "work" / "Repo" / ".git"),
        ("link subdir", link / "work" / "Repo" / "sub"),  # git sees only the real path
    ]:
        want = git_list(git, env, start)
        assert our_list(git, env, start) == want, name
        seen[name] = hits(want)
    assert seen["link"] == seen["link .git"]
    assert seen["link subdir"] == seen["real"]
    assert {"c0", "c1", "c4", "c5", "c7", "c9", "c11", "c13"} <= seen["real"]
    assert {"c2", "c3", "c6", "c8", "c10", "c12", "c20", "c21", "c22"}.isdisjoint(seen["real"])
    assert seen["link"] - seen["real"] == {"c3", "c10", "c12"}  # the path as given, like git


def test_gitdir_of_a_linked_worktree_and_a_bare_repository(git: Git, env: Env) -> None:
    main = init(git, env.tmp / "main")
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=main)
    git("worktree", "add", "-q", "-b", "side", str(env.tmp / "wt"), cwd=main)
    bare = init(git, env.tmp / "bare.git")
    git("config", "core.bare", "true", cwd=bare)
    conditions = [
        "gitdir:main/.git/",
        "gitdir:main/.git",
        "gitdir:worktrees/wt",
        "gitdir:**/worktrees/*",
        "gitdir:bare.git",
        f"gitdir:{env.tmp}/",
    ]
    env.write(".gitconfig", conditional_includes(env, conditions))
    for start in (main, env.tmp / "wt", bare):
        want = git_list(git, env, start)
        assert our_list(git, env, start) == want, start
    assert hits(git_list(git, env, env.tmp / "wt")) == {"c0", "c2", "c3", "c5"}


def test_glob_characters_in_the_path(git: Git, tmp_path: Path) -> None:
    """``./`` takes the including file's directory literally; ``~/`` and a written path are
    patterns, so their ``[`` and ``*`` are wildcards (git's rules, not a path comparison)."""
    home = tmp_path / "h[o]me*"
    home.mkdir()
    env = Env(tmp_path, home)
    repo = init(git, home / "work" / "r")
    sub = env.write("sub/inner.inc", conditional_includes(env, ["gitdir:./../work/"], "in"))
    conditions = [
        "gitdir:./work/",
        "gitdir:~/work/",
        f"gitdir:{home}/work/",
        f"gitdir:{tmp_path}/h?o?me?/work/",
        f"gitdir:{tmp_path}/h\\[o\\]me\\*/work/",
        "gitdir:./WORK/",
        "gitdir/i:./WORK/",
        "gitdir:",  # empty: **/**
        "onbranch:",
    ]
    env.write(".gitconfig", conditional_includes(env, conditions) + f"[include]\n\tpath = {sub}\n")
    want = git_list(git, env, repo)
    assert our_list(git, env, repo) == want
    assert hits(want) == {"c0", "c3", "c4", "c6", "c7"}
    assert hits(want, "in") == set()  # ../ is not resolved: the pattern is literal


def test_symlinked_gitconfig_like_a_dotfiles_checkout(git: Git, env: Env) -> None:
    """``~/.gitconfig`` a symlink into a dotfiles directory: a relative include is taken
    from the path as named (``~``), a ``./`` condition from the file's real directory."""
    dotfiles = env.tmp / "dotfiles"
    dotfiles.mkdir()
    repo = init(git, env.home / "work" / "r")
    init(git, dotfiles / "work" / "r2")
    for where in (env.home, dotfiles):
        (where / "rel.inc").write_text(f"[rel]\n\tfrom = {where.name}\n")
    text = conditional_includes(env, ["gitdir:./work/", f"gitdir:{env.home}/work/"])
    (dotfiles / "gitconfig").write_text(text + "[include]\n\tpath = rel.inc\n")
    (env.home / ".gitconfig").symlink_to(dotfiles / "gitconfig")
    for start in (repo, dotfiles / "work" / "r2"):
        want = git_list(git, env, start)
        assert our_list(git, env, start) == want
    assert hits(git_list(git, env, repo)) == {"c1"}
    assert hits(git_list(git, env, dotfiles / "work" / "r2")) == {"c0"}
    assert ("rel.from", "home") in [(r[2], r[3]) for r in git_list(git, env, repo)]


def test_conditions_on_the_command_line(git: Git, env: Env) -> None:
    repo = init(git, env.tmp / "repo")
    target = env.write("inc/x", "[from]\n\tcli = 1\n")
    extra = {
        "GIT_CONFIG_PARAMETERS": f"'includeIf.gitdir:repo/.path'='{target}' "
        f"'includeIf.hasconfig:remote.*.url:a*.path'='{target}' 'remote.r.url'='abc'",
    }
    want = git_list(git, env, repo, **extra)
    assert our_list(git, env, repo, **extra) == want
    assert [row[2] for row in want].count("from.cli") == 2


def test_relative_condition_on_the_command_line_is_false(git: Git, env: Env) -> None:
    repo = init(git, env.tmp / "repo")
    target = env.write("inc/x", "[from]\n\tcli = 1\n")
    extra = {
        "GIT_CONFIG_PARAMETERS": f"'includeIf.gitdir:./.path'='{target}' "
        f"'includeIf.gitdir:repo/.path'='{target}'"
    }
    want = git_list(git, env, repo, **extra)
    assert our_list(git, env, repo, **extra) == want
    assert [row[2] for row in want].count("from.cli") == 1


# -- wildmatch ------------------------------------------------------------------------------


def char_pattern(rng: random.Random, c: str) -> str:
    """A piece of pattern that may (or nearly) match the character ``c``."""
    other = c.swapcase() if c.isalpha() else "z"
    return rng.choice([
        c, c, other, "?", "*", "**", f"[{c}]", f"[!{c}]", f"[{other}]", f"[^{other}]",
        f"\\{c}", f"\\{other}", "[[:upper:]]", "[[:lower:]]", "[[:alpha:]]", "[[:punct:]]",
        "[a-z]", "[A-Z]", "[]]", "[", "/", "**/", "/**", "",
    ])  # fmt: skip


def random_patterns(seed: int, count: int, texts: list[str]) -> list[str]:
    """Patterns made from the texts by replacing each character by a random piece."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        rate = 2 / len(text)
        out.append("".join(char_pattern(rng, c) if rng.random() < rate else c for c in text))
    return out


def test_wildmatch_casefold_against_gitdir_i(git: Git, env: Env) -> None:
    """Random patterns after the real path, under gitdir: and gitdir/i: (WM_CASEFOLD)."""
    repo = init(git, env.tmp / "A")
    patterns = random_patterns(7, 150, ["A/.git", "a/.git/"])
    conditions = [f"{kind}{env.tmp}/{p}" for p in patterns for kind in ("gitdir:", "gitdir/i:")]
    env.write(".gitconfig", conditional_includes(env, conditions))
    want = git_list(git, env, repo)
    assert our_list(git, env, repo) == want
    found = hits(want)
    assert 10 < len(found) < len(conditions) - 10  # both outcomes are exercised
    casefold_only = {f"c{n + 1}" for n in range(0, len(conditions), 2)} & found
    assert casefold_only - {f"c{n + 1}" for n in range(0, len(conditions), 2) if f"c{n}" in found}


@pytest.mark.parametrize(
    ("pattern", "text", "flags", "expected"),
    [
        (b"foo/**/bar", b"foo/bar", WM_PATHNAME, True),
        (b"foo/**/bar", b"foo/x/y/bar", WM_PATHNAME, True),
        (b"foo/*/bar", b"foo/x/y/bar", WM_PATHNAME, False),
        (b"foo*", b"foo/bar", WM_PATHNAME, False),
        (b"foo*", b"foo/bar", 0, True),
        (b"**", b"a/b", WM_PATHNAME, True),
        (b"a**b", b"a/b", WM_PATHNAME, False),
        (b"[[:upper:]]", b"a", WM_PATHNAME | WM_CASEFOLD, True),
        (b"\\A", b"a", WM_CASEFOLD, False),  # git folds the backslash, not what it escapes
        (b"[a-c]", b"B", WM_CASEFOLD, True),
        (b"[!/]", b"/", WM_PATHNAME, False),
        (b"[]", b"]", 0, False),
        (b"a[", b"a[", 0, False),
        (b"[[:a]", b"a", 0, True),  # "[:" without ":]" is a plain '[' in the set
        (b"[[:a]", b"[", 0, True),
        (b"[[:a]", b"b", 0, False),
    ],
)
def test_wildmatch_corner_cases(pattern: bytes, text: bytes, flags: int, expected: bool) -> None:
    """Cases git's own tests pin down (t3070), and git's casefold quirks."""
    assert wildmatch(pattern, text, flags) is expected


# -- onbranch: ------------------------------------------------------------------------------

BRANCH_PATTERNS = [
    "main", "ma*", "m?in", "*", "**", "feature/", "feature/*", "feature/**", "**/x",
    "feature/*/x", "feature/**/x", "[mf]*", "[!m]*", "MAIN", "b", "a", "wt", "w[s-u]",
]  # fmt: skip


def head_states(git: Git, repo: Path) -> Iterator[str]:
    """Moves HEAD: unborn main, a deep branch, a symref chain, detached."""
    yield "unborn main"
    git("symbolic-ref", "HEAD", "refs/heads/feature/deep/x", cwd=repo)
    yield "feature/deep/x"
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    git("symbolic-ref", "refs/heads/a", "refs/heads/b", cwd=repo)
    git("symbolic-ref", "HEAD", "refs/heads/a", cwd=repo)
    yield "a -> b"
    git("update-ref", "--no-deref", "HEAD", "refs/heads/feature/deep/x", cwd=repo)
    yield "detached"


async def test_onbranch_matches_git(git: Git, env: Env) -> None:
    repo = init(git, env.tmp / "repo")
    conditions = [
        f"onbranch:{p}"
        for p in BRANCH_PATTERNS + random_patterns(3, 120, ["main", "feature/deep/x", "b"])
    ]
    env.write(".gitconfig", conditional_includes(env, conditions))
    seen = {}
    for state in head_states(git, repo):
        want = git_list(git, env, repo)
        environ = env.ours(git, repo)
        ours = rows_of(await store_config(repo, environ))
        assert ours == want, state
        seen[state] = hits(want)
    assert {"c0", "c1", "c2", "c3", "c4", "c11"} <= seen["unborn main"]
    assert {"c4", "c5", "c7", "c8", "c9", "c10"} <= seen["feature/deep/x"]
    assert {"c6", "c12"}.isdisjoint(seen["feature/deep/x"])  # * does not match a /
    assert "c14" in seen["a -> b"] and "c15" not in seen["a -> b"]  # the last name counts
    assert seen["detached"] == set()


async def test_onbranch_in_a_linked_worktree_reads_its_own_head(git: Git, env: Env) -> None:
    main = init(git, env.tmp / "main")
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=main)
    wt = env.tmp / "wt"
    git("worktree", "add", "-q", "-b", "wt", str(wt), cwd=main)
    conditions = [f"onbranch:{p}" for p in BRANCH_PATTERNS]
    env.write(".gitconfig", conditional_includes(env, conditions))
    for start in (main, wt):
        want = git_list(git, env, start)
        environ = env.ours(git, start)
        ours = rows_of(await store_config(start, environ))
        assert ours == want, start
    assert "c16" in hits(git_list(git, env, wt))


async def test_onbranch_follows_head_into_another_worktree_like_git(git: Git, env: Env) -> None:
    """HEAD a symref to ``worktrees/<id>/HEAD``: git's resolve reads that worktree's stack
    and names its branch (the one resolve loop routes it; a missing worktree: no branch)."""
    main = init(git, env.tmp / "main")
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=main)
    git("worktree", "add", "-q", "-b", "feature", str(env.tmp / "wt"), cwd=main)
    env.write(".gitconfig", conditional_includes(env, ["onbranch:feature", "onbranch:main"]))
    for target, hit in [("worktrees/wt/HEAD", {"c0"}), ("worktrees/gone/HEAD", set())]:
        git("update-ref", "--stdin", "--no-deref", cwd=main, input=f"symref-update HEAD {target}\n")
        want = git_list(git, env, main)
        assert hits(want) == hit, target
        assert rows_of(await store_config(main, env.ours(git, main))) == want, target


async def test_store_settings_from_an_onbranch_include(git: Git, env: Env) -> None:
    """open_ref_store reads HEAD for the condition; the included settings are the store's."""
    repo = init(git, env.tmp / "repo")
    env.write("main.inc", "[reftable]\n\tblockSize = 1024\n[user]\n\tname = On Main\n")
    env.write(".gitconfig", '[includeIf "onbranch:main"]\n\tpath = main.inc\n')
    get = git.run("config", "reftable.blockSize", cwd=repo, env=env.overrides(repo))
    assert get.stdout.decode().strip() == "1024"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with open_ref_store(repo, env=env.ours(git, repo)) as store:
            assert (store.config.block_size, store.config.user_name) == (1024, "On Main")
    git("symbolic-ref", "HEAD", "refs/heads/other", cwd=repo)
    async with open_ref_store(repo, env=env.ours(git, repo)) as store:
        assert (store.config.block_size, store.config.user_name) == (4096, None)


async def test_onbranch_reads_head_once_and_files_off_the_loop(
    git: Git, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioreftable._refs._config as config_module
    import aioreftable._refs._store as store_module

    repo = init(git, env.tmp / "repo")
    env.write(".gitconfig", conditional_includes(env, ["onbranch:main", "onbranch:x", "x:y"]))
    loop_thread = threading.get_ident()
    file_threads: list[int] = []
    head_reads: list[int] = []
    read_file, read_head = config_module._read_file, store_module.read_head_ref

    def spy_file(path: str) -> bytes | None:
        file_threads.append(threading.get_ident())
        return read_file(path)

    async def spy_head(layout: RepositoryLayout, environ: Mapping[str, str]) -> str | None:
        head_reads.append(threading.get_ident())
        return await read_head(layout, environ)

    monkeypatch.setattr(config_module, "_read_file", spy_file)
    monkeypatch.setattr(store_module, "read_head_ref", spy_head)
    async with open_ref_store(repo, env=env.ours(git, repo)) as store:
        assert store.config.user_name is None
    assert head_reads == [loop_thread]  # once, through the stack, for both conditions
    # ~/.config/git/config (missing), ~/.gitconfig, the repository's config, inc/hit0
    assert len(file_threads) == 4 and loop_thread not in file_threads
    env.write(".gitconfig", "[user]\n\tname = No Condition\n")
    async with open_ref_store(repo, env=env.ours(git, repo)):
        pass
    assert len(head_reads) == 1  # no onbranch: HEAD is not read


# -- hasconfig:remote.*.url: ------------------------------------------------------------------


def test_hasconfig_remote_url_matches_git(git: Git, env: Env) -> None:
    repo = init(git, env.tmp / "repo")
    git("config", "remote.origin.url", "https://example.com/org/repo.git", cwd=repo)
    git("config", "remote.other.pushurl", "ssh://push.example.com/x", cwd=repo)
    conditions = [
        "hasconfig:remote.*.url:https://example.com/org/**",
        "hasconfig:remote.*.url:https://example.com/*",
        "hasconfig:remote.*.url:https://example.com/*/*",
        "hasconfig:remote.*.url:ssh://push.example.com/**",  # a pushurl is not a url
        "hasconfig:remote.*.url:ssh://cli/**",  # set later, on the command line: counts
        "hasconfig:remote.*.url:**",
        "hasconfig:remote.origin.url:**",  # only remote.*.url is known
    ]
    env.write(".gitconfig", conditional_includes(env, conditions))
    extra = {"GIT_CONFIG_PARAMETERS": "'remote.cli.url'='ssh://cli/x'"}
    want = git_list(git, env, repo, **extra)
    assert our_list(git, env, repo, **extra) == want
    assert hits(want) == {"c0", "c2", "c4", "c5"}


def test_remote_url_in_a_hasconfig_include_is_fatal_like_git(git: Git, env: Env) -> None:
    repo = init(git, env.tmp / "repo")
    env.write("inner.inc", '[remote "x"]\n\turl = https://x\n')
    env.write("outer.inc", "[include]\n\tpath = inner.inc\n")
    env.write(".gitconfig", '[includeIf "hasconfig:remote.*.url:nomatch"]\n\tpath = outer.inc\n')
    want = git_list(git, env, repo)
    assert isinstance(want, str) and "remote URLs cannot be configured" in want
    assert our_list(git, env, repo) == want


# -- nesting, relative paths, depth ---------------------------------------------------------


def test_nested_includes_match_git(git: Git, env: Env) -> None:
    repo = init(git, env.tmp / "repo")
    env.write(
        "sub/a.inc", "[a]\n\tx = 1\n[include]\n\tpath = b.inc\n\tpath = ~/c.inc\n[a]\n\ty = 2\n"
    )
    env.write("sub/b.inc", f'[b]\n\tx = 1\n[includeIf "gitdir:{repo}/"]\n\tpath = ../d.inc\n')
    env.write("c.inc", "[c]\n\tx = 1\n[include]\n\tpath = missing.inc\n")
    env.write("d.inc", "[user]\n\tname = From D\n")
    env.write(
        ".gitconfig", "[user]\n\tname = Before\n[include]\n\tpath = sub/a.inc\n[z]\n\tz = 1\n"
    )
    want = git_list(git, env, repo)
    assert our_list(git, env, repo) == want
    keys = [row[2] for row in want if row[0] == "global"]
    assert keys == [
        "user.name", "include.path", "a.x", "include.path", "b.x", "includeif.gitdir:"
        f"{repo}/.path", "user.name", "include.path", "c.x", "include.path", "a.y", "z.z",
    ]  # fmt: skip
    config = load_config(discover(repo), env.ours(git, repo))
    assert config.user_name == "From D"  # in place: after "Before"


@pytest.mark.parametrize(
    "files",
    [
        {".gitconfig": "[include]\n\tpath = .gitconfig\n"},  # a loop: the depth limit
        {
            ".gitconfig": "[include]\n\tpath = a\n",
            "a": "[include]\n\tpath = b\n",
            "b": '[includeIf "gitdir:/"]\n\tpath = a\n',
        },
        {".gitconfig": "[include]\n\tpath = dir\n", "dir/x": ""},  # a directory
        {".gitconfig": "[include]\n\tpath\n"},  # no value
        {".gitconfig": "[include]\n\tpath = ~nosuchuser/x\n"},
        {".gitconfig": "[a]\n\tb = 1\n[include]\n\tpath = bad\n", "bad": '[x]\n\ty = "\n'},
    ],
    ids=["loop", "loop via includeIf", "directory", "no value", "unknown user", "bad file"],
)
def test_include_errors_like_git(git: Git, env: Env, files: dict[str, str]) -> None:
    repo = init(git, env.tmp / "repo")
    for name, text in files.items():
        env.write(name, text)
    want = git_list(git, env, repo)
    assert isinstance(want, str), want
    ours = our_list(git, env, repo)
    assert isinstance(ours, str)
    if "depth" in want:
        assert ours == want
    else:  # git prints the cause as a separate error line; ours is one message
        assert want in ours


def test_prefix_path_is_reported(git: Git, env: Env) -> None:
    """``%(prefix)/`` is git's install prefix, which we cannot know: /usr, with a warning."""
    repo = init(git, env.tmp / "repo")
    env.write(".gitconfig", "[include]\n\tpath = %(prefix)/no/such/file\n")
    environ = env.ours(git, repo)
    with pytest.warns(UnsupportedConfigWarning, match=r"%\(prefix\) taken as /usr"):
        entries = read_config(discover(repo, environ), environ)
    assert ("include.path", "%(prefix)/no/such/file") in [(e.key, e.value) for e in entries]


# -- the file parser ------------------------------------------------------------------------

FRAGMENTS = [
    "[a]\n", "[A]\n", '[b "Sub"]\n', '[b "s\\"q\\\\ x"]\n', "[c.D]\n", '[d "x]\n', "[e f]\n",
    "[]\n", '[g  "t"]\n', "k = v\n", "K=v\n", "k\n", "k =\n", 'k = "q ; x"\n', "k = a\\tb\\n\n",
    "k = x \\\n  y\n", 'k = "open\n', "k = bad\\q\n", "  k  =   spaced  out  \n", "# c\n",
    "; c\n", "k = v # c\n", "k = v\r\n", "k-1 = v\n", "1k = v\n", "k.x = v\n", "k = \"a\"b\"c\"\n",
    "\tk = tab\t\n", "k = é\n", "k = v\\", "\n", "k = \"\\\n\"\n", "[a]k=inline\n",
]  # fmt: skip


def test_parser_matches_git_on_random_files(git: Git, env: Env) -> None:
    """Seeded random files of good and bad lines: the same entries or the same fatal line."""
    repo = init(git, env.tmp / "repo")
    rng = random.Random(11)
    outcomes = set()
    for n in range(60):
        text = "".join(rng.choices(FRAGMENTS, k=rng.randint(1, 8)))
        if n % 7 == 0:
            text = "\ufeff" + text
        env.write(".gitconfig", "[s]\n" + text if n % 2 else text)
        want = git_list(git, env, repo)
        assert our_list(git, env, repo) == want, repr(text)
        outcomes.add(isinstance(want, str))
    assert outcomes == {True, False}


BYTE_FRAGMENTS = [f.encode() for f in FRAGMENTS] + [
    b"k = \xff\xfe\n", b'[s "\xc3"]\n', b"\r", b"k = a\rb\n", b"[a.B.c]\n", b'[a "x\\y"]\n',
    b"[ a]\n", b'[a\t"t"]\n', b"\xef\xbb", b'k="\\""\n', b"k = a\\\r\nb\n", b"[x]]\n",
    b'[a "b" ]\n', b"k = 'single'\n", b"k= ;\n", b"#[a]\n", b"k = \"\\n\"\n",
]  # fmt: skip


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(BYTE_FRAGMENTS), min_size=1, max_size=8), st.booleans())
def test_parser_matches_git_on_any_bytes(
    git: Git, env: Env, pieces: list[bytes], bom: bool
) -> None:
    """Hypothesis: files of good, bad and non-UTF-8 pieces read like git's parser reads
    them, or refused at the same line."""
    repo = env.tmp / "repo"
    if not repo.exists():
        init(git, repo)
    (env.home / ".gitconfig").write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"".join(pieces))
    assert our_list(git, env, repo) == git_list(git, env, repo)


# -- the twin: reflog identity from an includeIf file ---------------------------------------


async def test_reflog_identity_from_conditional_include_matches_git(git: Git, env: Env) -> None:
    """The common work setup: ``[includeIf "gitdir:~/work/"]`` with the work identity, and
    an ``onbranch:`` include with the e-mail; git's reflog and table and ours agree."""
    work = env.home / "work"
    theirs, ours = make_twins(git, work)
    ids = object_ids(git, theirs)
    env.write(
        ".gitconfig-work",
        "[user]\n\tname = Work Name\n\temail = personal@x\n"
        "[reftable]\n\tblockSize = 1024\n\trestartInterval = 3\n",
    )
    env.write(".gitconfig-main", "[user]\n\temail = work@example.com\n")
    env.write(
        ".gitconfig",
        "[user]\n\tname = Personal\n"
        '[includeIf "gitdir:~/work/"]\n\tpath = ~/.gitconfig-work\n'
        '[includeIf "onbranch:main"]\n\tpath = .gitconfig-main\n'
        '[includeIf "gitdir:~/elsewhere/"]\n\tpath = ~/.gitconfig-nowhere\n',
    )
    extra = {"GIT_COMMITTER_NAME": None, "GIT_COMMITTER_EMAIL": None, "EMAIL": None}
    git.run(
        "update-ref", "-m", "x", "refs/heads/x", ids["c1"], cwd=theirs,
        env=env.overrides(theirs, **extra),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with (
            open_ref_store(ours, env=env.ours(git, ours, **extra)) as store,
            store.transaction(message="x") as tx,
        ):
            tx.update("refs/heads/x", ids["c1"])
    fmt = "--format=%gn <%ge> %gs"
    want = git("reflog", "show", fmt, "refs/heads/x", "--", cwd=theirs)
    assert git("reflog", "show", fmt, "refs/heads/x", "--", cwd=ours) == want
    assert want == "Work Name <work@example.com> x\n"
    newest = [newest_table(repo) for repo in (theirs, ours)]
    assert newest[0] == newest[1]  # the same bytes: block size, restart interval, identity
    assert int.from_bytes(newest[1][5:8], "big") == 1024


def newest_table(repo: Path) -> bytes:
    stack = repo / ".git" / "reftable"
    return (stack / (stack / "tables.list").read_text().split()[-1]).read_bytes()
