"""Refname rules against `git check-ref-format`, and the routing/safety helpers."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import Git

from aioreftable import RefnameError
from aioreftable._refs import (
    check_refname_format,
    is_per_worktree_ref,
    parse_worktree_ref,
    reflog_message,
    refname_is_safe,
)
from aioreftable._refs._refname import require_refname

PIECES = [
    "refs", "heads", "tags", "main", "a", "x.y", ".", "..", "...", "@", "@{", "{", "}", "*",
    ".lock", "a.lock", "lock", "-", "_", "~", "^", ":", "?", "[", "]", "\\", " ", "\t", "\x01",
    "\x7f", "é", "ü\u00df", "日本", "/", "//", "HEAD", "@{0}", "foo@bar", "v1.0", "x*y", "\x1f",
    "$", "!", "#", "%", "&", "(", "'", '"', ",", ";", "<", ">", "=", "+", "|", "`",
]  # fmt: skip


def generate(n: int, seed: int = 20261123) -> list[tuple[str, bool, bool]]:
    rng = random.Random(seed)
    out: set[tuple[str, bool, bool]] = set()
    while len(out) < n:
        parts = rng.choices(PIECES, k=rng.randint(1, 6))
        if rng.random() < 0.7:
            parts.insert(0, rng.choice(["refs/", "refs/heads/", "refs/tags/", ""]))
        name = "".join(parts)
        if not name or name.startswith("-"):  # would be read as an option by git
            continue
        out.add((name, rng.random() < 0.5, rng.random() < 0.3))
    return sorted(out)


def test_check_refname_format_agrees_with_git_on_10000_names(git: Git) -> None:
    cases = generate(10_000)

    def git_says(case: tuple[str, bool, bool]) -> bool:
        name, onelevel, pattern = case
        args = ["check-ref-format"]
        if onelevel:
            args.append("--allow-onelevel")
        if pattern:
            args.append("--refspec-pattern")
        proc = git.run(*args, name, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        return proc.returncode == 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(git_says, cases))
    disagree = [
        (case, want)
        for case, want in zip(cases, verdicts, strict=True)
        if check_refname_format(case[0], allow_onelevel=case[1], refspec_pattern=case[2]) != want
    ]
    assert not disagree, disagree[:20]
    assert 1000 < sum(verdicts) < 9000  # the generator exercises both outcomes


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("refs/heads/main", True),
        ("refs/heads/a/b/c", True),
        ("HEAD", False),
        ("refs/heads/a..b", False),
        ("refs/heads/a.lock", False),
        ("refs/heads/.hidden", False),
        ("refs/heads/x.", False),
        ("refs/heads/@{u}", False),
        ("refs/heads/@", True),
        ("@", False),
        ("refs//heads", False),
        ("refs/heads/", False),
        ("refs/heads/a b", False),
        ("refs/heads/*", False),
    ],
)
def test_check_refname_format_examples(name: str, ok: bool) -> None:
    assert check_refname_format(name) is ok


def test_refspec_pattern_allows_one_star() -> None:
    assert check_refname_format("refs/heads/*", refspec_pattern=True)
    assert check_refname_format("refs/heads/foo*", refspec_pattern=True)
    assert not check_refname_format("refs/*/x/*", refspec_pattern=True)


def test_refname_is_safe() -> None:
    assert refname_is_safe("refs/heads/x")
    assert refname_is_safe("refs/heads/a..b")  # odd but normalized
    assert refname_is_safe("ORIG_HEAD")
    assert not refname_is_safe("../../my-private-file")
    assert not refname_is_safe("refs/../x")
    assert not refname_is_safe("refs/heads//x")
    assert not refname_is_safe("refs/")
    assert not refname_is_safe("refs/x/")
    assert not refname_is_safe("Head")
    assert not refname_is_safe("")


@pytest.mark.parametrize(
    "name", ["refs/heads/\x00", "refs/heads/x\x00y", "HEAD\x00", "\x00", "refs/heads/\ud800"]
)
def test_nul_and_unencodable_names_fail_every_rule(name: str) -> None:
    """git's C strings end at a NUL: ``refs/heads/x\\0y`` would be ``refs/heads/x``."""
    assert not refname_is_safe(name)
    assert not check_refname_format(name, allow_onelevel=True)
    for rule in ("format", "safe", "symref", "readable"):
        with pytest.raises(RefnameError):
            require_refname(name, rule)


@pytest.mark.parametrize(
    ("name", "passes"),
    [
        ("refs/heads/x", {"format", "safe", "symref", "readable"}),
        ("HEAD", {"format", "safe", "symref", "readable"}),
        ("foo", {"format", "readable"}),
        ("refs/heads/a..b", {"safe", "readable"}),
        ("refs/heads/\x7f", {"safe", "readable"}),
        ("worktrees/../x", set()),
        ("refs/heads/a/../b", set()),
    ],
)
def test_require_refname_rules(name: str, passes: set[str]) -> None:
    for rule in ("format", "safe", "symref", "readable"):
        if rule in passes:
            require_refname(name, rule)
        else:
            with pytest.raises(RefnameError, match="invalid ref name") as info:
                require_refname(name, rule)
            assert info.value.refnames == (name,)
    with pytest.raises(TypeError):
        require_refname(b"refs/heads/x")  # type: ignore[arg-type]


def test_worktree_routing() -> None:
    assert parse_worktree_ref("HEAD") == ("current", None, "HEAD")
    assert parse_worktree_ref("refs/bisect/bad") == ("current", None, "refs/bisect/bad")
    assert parse_worktree_ref("refs/heads/main") == ("shared", None, "refs/heads/main")
    assert parse_worktree_ref("main-worktree/HEAD") == ("main", None, "HEAD")
    assert parse_worktree_ref("main-worktree/refs/heads/x") == (
        "shared",
        None,
        "main-worktree/refs/heads/x",
    )
    assert parse_worktree_ref("worktrees/wt/HEAD") == ("other", "wt", "HEAD")
    assert parse_worktree_ref("worktrees/wt/refs/rewritten/1") == (
        "other",
        "wt",
        "refs/rewritten/1",
    )
    assert parse_worktree_ref("worktrees/x/refs/heads/y") == (
        "shared",
        None,
        "worktrees/x/refs/heads/y",
    )
    assert is_per_worktree_ref("ORIG_HEAD") and is_per_worktree_ref("refs/worktree/x")
    assert not is_per_worktree_ref("refs/heads/HEAD")


def test_reflog_message_normalization() -> None:
    assert reflog_message("  multi\nline   msg  ", 4096) == b"multi line msg"
    assert reflog_message("", 4096) == b""
    assert reflog_message("\t\tx\t\ty\r\n", 4096) == b"x y"
    assert reflog_message("a" * 5000, 4096) == b"a" * 2048
