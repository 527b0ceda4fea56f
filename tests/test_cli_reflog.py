"""`aioreftable reflog` against `git reflog` (show, list, exists, delete, expire, drop) and
the expiry dates against git's approxidate: same stdout, stderr, exit status and, for the
writing subcommands, the same reflogs and refs afterwards (git 2.47, and 2.55 where 2.47
differs: drop, and 2.55's messages)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_scenarios import Outcome, Scenarios, run_git, run_ours, run_ours_process, scenarios
from conftest import Git
from gitdiff_helpers import open_stack, our_live_logs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioreftable import DateError
from aioreftable._refs._approxidate import (
    EXPIRE_ALL,
    approxidate,
    approxidate_careful,
    parse_expiry_date,
)

__all__ = ["scenarios"]  # the session fixture, imported for pytest

NOW = 1764640000  # GIT_TEST_DATE_NOW of every date comparison (2025-12-02 01:46:40 UTC)


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    """Relative dates are computed in local time, as git does: both sides in UTC."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", "UTC")
        mp.setenv("GIT_TEST_DATE_NOW", str(NOW))
        time.tzset()
        yield
    time.tzset()


# -- dates -------------------------------------------------------------------------------
def git_approxidates(git: Git, cwd: Path, texts: list[str]) -> list[int]:
    """git's approxidate of each text (rev-parse --since: one process for all)."""
    out = git("rev-parse", *(f"--since={t}" for t in texts), cwd=cwd, env=_date_env())
    values = [int(line.split("=", 1)[1]) for line in out.splitlines()]
    assert len(values) == len(texts), (texts, out)
    return values


def _date_env() -> dict[str, str]:
    return {"GIT_TEST_DATE_NOW": str(NOW), "TZ": "UTC"}


DATES = [
    "2.weeks.ago", "2 weeks ago", "1.day.ago", "3.hours.ago", "5.minutes.ago", "10.seconds.ago",
    "1.month.ago", "3.months.ago", "13.months.ago", "2.years.ago", "1.year", "6 months ago",
    "one.week.ago", "ten.days.ago", "last.week", "last friday", "2.fridays.ago",
    "yesterday", "10am yesterday", "3pm", "12:30", "noon", "midnight", "tea",
    "2005-04-07", "2005-04-07 22:13:13", "2005-04-07T22:13:13Z", "2005-04-07T22:13:13.5Z",
    "2005-04-07 22:13:13 +0200", "2005-04-07 22:13 -05:30", "2005-04-07 10:00 PST",
    "Thu, 07 Apr 2005 22:13:13 +0200", "Thu Apr 7 22:13:13 2005 +0200", "April 7 2005",
    "Dec 6, 1992", "7.4.2005", "04/07/2005", "2005.04.07", "20050407", "20050407T2213",
    "@1112911993", "1112911993", "@1112911993 +0200", "now", "never", "2005-13-45",
    "1970-01-01", "2099-12-31", "31.12.99", "1/2/3", "12.30.2005",
]  # fmt: skip


def test_approxidate_matches_git_for_many_forms(git: Git, tmp_path: Path) -> None:
    git("init", "-q", str(tmp_path / "r"))
    want = git_approxidates(git, tmp_path / "r", DATES)
    got = [approxidate(text, NOW) for text in DATES]
    assert dict(zip(DATES, got, strict=True)) == dict(zip(DATES, want, strict=True))


def test_dates_new_in_git_2_53_match_the_newer_git(git_new: Git, tmp_path: Path) -> None:
    """``today`` and the deferred day of ``noon``/``tea``/``yesterday`` (date.c in 2.55)."""
    git_new("init", "-q", str(tmp_path / "r"))
    texts = ["today", "noon today", "yesterday noon", "tea yesterday", "midnight",
             "noon yesterday", "5pm today", "today 3am"]  # fmt: skip
    want = git_approxidates(git_new, tmp_path / "r", texts)
    assert [approxidate(t, NOW) for t in texts] == want


_WORDS = ["ago", "day", "days", "week", "weeks", "month", "months", "year", "years", "hour",
          "minutes", "seconds", "last", "yesterday", "noon", "tea", "midnight", "PM", "am",
          "friday", "Mon", "January", "dec", "UTC", "PST", "CEST", "one", "two", "ten",
          "never", "now", "T", "Z", "x"]  # fmt: skip
_SEPARATORS = [" ", ".", "-", "/", ":", ",", "+", "@", "  "]
_piece = st.one_of(
    st.sampled_from(_WORDS),
    st.integers(0, 3000).map(str),
    st.integers(1_000_000_000, 1_900_000_000).map(str),
    st.sampled_from(
        [
            "2005-04-07",
            "1999-12-31",
            "04/07/2005",
            "22:13:13",
            "10:00",
            "+0200",
            "-0530",
            "T10",
            "12.30.2005",
        ]
    ),
)
_date_text = st.lists(st.tuples(_piece, st.sampled_from(_SEPARATORS)), min_size=1, max_size=5).map(
    lambda parts: "".join(p + s for p, s in parts).strip()
)


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_date_text, min_size=150, max_size=150))
def test_approxidate_matches_git_on_generated_dates(
    git: Git, tmp_path: Path, texts: list[str]
) -> None:
    """One batch of 150 generated dates (one git process): our approxidate equals git's,
    and the careful parse refuses exactly what git's expiry refuses (a text where nothing
    was recognized: git's approxidate returns now for it)."""
    texts = [t for t in texts if t and not t.startswith("-")]
    repo = tmp_path / "r"
    if not repo.exists():
        git("init", "-q", str(repo))
    want = git_approxidates(git, repo, texts)
    for text, expected in zip(texts, want, strict=True):
        assert approxidate(text, NOW) == expected, text
        try:
            careful = approxidate_careful(text, NOW)
        except DateError:
            assert expected == NOW, text
        else:
            assert careful == expected, text


def test_expiry_words() -> None:
    assert parse_expiry_date("never", NOW) == parse_expiry_date("false", NOW) == 0
    assert parse_expiry_date("now", NOW) == parse_expiry_date("all", NOW) == EXPIRE_ALL
    assert parse_expiry_date("2.weeks.ago", NOW) == NOW - 14 * 86400
    with pytest.raises(DateError):
        parse_expiry_date("garbage", NOW)
    with pytest.raises(DateError):
        parse_expiry_date("friday", NOW)  # a weekday needs a number ("last friday")


# -- read commands on the scenario repositories ------------------------------------------
READ_ARGS: list[tuple[str, ...]] = [
    (),
    ("show",),
    ("HEAD",),
    ("show", "HEAD"),
    ("show", "refs/heads/main"),
    ("show", "refs/heads/feature/a"),
    ("show", "refs/heads/alias"),  # a symref's own reflog
    ("show", "refs/heads/dangling"),
    ("show", "refs/tags/v2.0"),
    ("show", "refs/heads/nope"),
    ("show", "refs/heads/caf\udce9"),
    ("show", "-n", "1"),
    ("show", "-n1", "refs/heads/main"),
    ("show", "-1"),
    ("show", "--max-count=2", "HEAD"),
    ("show", "-n", "x"),
    ("show", "HEAD@{0}"),
    ("show", "HEAD@{1}"),
    ("show", "HEAD@{99}"),
    ("show", "refs/heads/main@{0}"),
    ("show", "refs/heads/nope@{0}"),
    ("show", "--format=%H %h %gD %gs <%gn> <%ge>%n%%%x41", "HEAD"),
    ("show", "--format=[%gd] %q %gt", "HEAD"),
    ("show", "--pretty=format:%h", "refs/heads/main"),
    ("show", "--pretty=tformat:%H", "refs/heads/main"),
    ("show", "--oneline", "refs/heads/main"),
    ("show", "--format=oneline"),
    ("show", "--pretty=nonsense"),
    ("show", "--bogus"),
    ("list",),
    ("list", "x"),
    ("exists", "HEAD"),
    ("exists", "refs/heads/main"),
    ("exists", "refs/tags/v2.0"),
    ("exists", "refs/heads/nope"),
    ("exists", "refs/heads/alias"),
    ("exists", "a..b"),
    ("exists",),
    ("exists", "--bogus"),
    ("exists", "refs/heads/main", "ignored"),
    # short names: git's dwim rules (RefStore.dwim_ref, dwim_log), %gd shortened
    ("show", "main"),
    ("show", "heads/main"),
    ("show", "--format=%gd|%gD", "refs/heads/main"),
    ("show", "--format=%gd|%gD", "main@{0}"),
    ("show", "@"),
    ("show", "nope"),
    ("exists", "main"),
]
SCENARIO_NAMES = ["rich-sha1", "rich-sha256", "worktree-sha1", "empty-sha1", "bare-sha256",
                  "tombstones-sha1"]  # fmt: skip


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_read_commands_match_git(git: Git, scenarios: Scenarios, name: str) -> None:
    repo = scenarios[name]
    mismatches = []
    for args in READ_ARGS:
        argv = ["reflog", *args]
        ours, theirs = run_ours(repo, argv), run_git(git, repo, argv, env=_date_env())
        if ours != theirs:
            mismatches.append((args, ours, theirs))
    assert mismatches == []


def test_show_reads_a_big_repository_like_git(git: Git, scenarios: Scenarios) -> None:
    repo = scenarios["many-sha1"]
    for args in (("list",), ("show", "refs/heads/sym"), ("exists", "refs/heads/b/00042")):
        argv = ["reflog", *args]
        assert run_ours(repo, argv) == run_git(git, repo, argv, env=_date_env()), args


USAGE_ARGS: list[tuple[str, ...]] = [
    ("-h",),
    ("show", "-h"),
    ("list", "-h"),
    ("exists", "-h"),
    ("delete", "-h"),
    ("expire", "-h"),
    ("drop", "-h"),
    ("expire", "--bogus"),
    ("expire", "-x"),
    ("expire", "-nx"),
    ("expire", "--no-expire=1"),
    ("expire", "--exp=now"),  # ambiguous: usage on stdout
    ("expire", "--expire"),
    ("expire", "--dry-run=x"),
    ("expire", "--expire=garbage", "HEAD"),
    ("expire", "--expire-unreachable=friday", "HEAD"),
    ("expire", "--all", "--bogus"),
    ("delete", "--bogus"),
    ("delete",),
    ("delete", "HEAD"),
    ("delete", "refs/heads/nope@{0}"),
    ("drop", "--all", "HEAD"),
    ("drop", "--bogus"),
    ("expire", "refs/heads/nope"),
    ("drop", "refs/heads/nope"),
]


@pytest.mark.parametrize("name", ["rich-sha1", "empty-sha1"])
def test_usage_and_errors_match_git_2_55(
    git_new: Git, scenarios: Scenarios, name: str, tmp_path: Path
) -> None:
    """Usage texts and parse-options errors as the newest git prints them (2.55 added
    ``drop`` and ``write`` to the usage, and renamed "points nowhere")."""
    src = scenarios[name]
    ours_repo = _fresh_copy(src, tmp_path / "ours")
    theirs_repo = _fresh_copy(src, tmp_path / "theirs")
    for args in USAGE_ARGS:
        argv = ["reflog", *args]
        assert run_ours(ours_repo, argv) == run_git(git_new, theirs_repo, argv, env=_date_env()), (
            args
        )
    # none of them wrote anything, on either side
    assert _state(git_new, ours_repo) == _state(git_new, theirs_repo) == _state(git_new, src)


def _fresh_copy(src: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, symlinks=True)
    return dest


UNSUPPORTED: list[tuple[str, ...]] = [
    ("show", "HEAD@{-1}"),  # the previous branch, not a reflog entry
    ("show", "HEAD@{u}"),
    ("show", "HEAD", "refs/heads/main"),
    ("show", "HEAD", "--", "path"),
    ("show", "--date=format:%Y"),
    ("show", "--graph"),
    ("show", "--pretty=medium"),
    ("show", "--format=%s"),
    ("show", "--format=%gN"),
    ("show", "HEAD~1"),
    ("expire", "--stale-fix", "HEAD"),
    ("write", "HEAD", "0", "0", "m"),
]


def test_unsupported_forms_are_refused_with_a_fatal_line(scenarios: Scenarios) -> None:
    repo = scenarios["rich-sha1"]
    for args in UNSUPPORTED:
        out, err, code = run_ours(repo, ["reflog", *args])
        assert (out, code) == (b"", 128), args
        assert err.startswith(b"fatal: ") and err.count(b"\n") == 1, (args, err)
        assert b"is not supported by aioreftable" in err, err


def test_entry_point_runs_reflog(git: Git, scenarios: Scenarios) -> None:
    repo = scenarios["rich-sha1"]
    argv = ["reflog", "show", "--format=%h %gD %gs", "refs/heads/main"]
    assert run_ours_process(repo, argv) == run_git(git, repo, argv, env=_date_env())


# -- writing commands on twins -------------------------------------------------------------
def _history(git: Git, path: Path, fmt: str) -> None:
    """Reflogs over days: amended, reset and deleted branches (unreachable entries), a
    merge, a tag's reflog with a non-commit entry, an empty message, refs/stash."""
    git("init", "-q", "--ref-format=reftable", f"--object-format={fmt}", "-b", "main", str(path))
    git("config", "core.logAllRefUpdates", "always", cwd=path)
    day = 86400
    base = 1112354055

    def at(n: int, *args: str) -> None:
        when = f"{base + n * day} +0200"
        git(*args, cwd=path, env={"GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when})

    at(0, "commit", "-q", "--allow-empty", "-m", "one")
    at(1, "commit", "-q", "--allow-empty", "-m", "two")
    at(2, "checkout", "-q", "-b", "side")
    at(3, "commit", "-q", "--allow-empty", "-m", "three")
    at(4, "commit", "-q", "--allow-empty", "--amend", "-m", "three amended")
    at(5, "tag", "-a", "-m", "tag", "v1")
    at(6, "update-ref", "-m", "to a tag", "refs/tags/moving", "refs/tags/v1")
    at(7, "update-ref", "-m", "to a commit", "refs/tags/moving", "HEAD")
    at(8, "update-ref", "refs/heads/nomsg", "HEAD")
    at(9, "checkout", "-q", "-b", "gone")
    at(10, "commit", "-q", "--allow-empty", "-m", "gone one")
    at(11, "checkout", "-q", "main")
    at(12, "branch", "-q", "-D", "gone")
    at(13, "checkout", "-q", "-b", "reset")
    at(14, "commit", "-q", "--allow-empty", "-m", "r1")
    at(15, "commit", "-q", "--allow-empty", "-m", "r2")
    at(16, "reset", "-q", "--hard", "HEAD~2")
    at(17, "checkout", "-q", "main")
    at(18, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    at(19, "update-ref", "-m", "stash entry", "refs/stash", "refs/heads/side")
    at(20, "update-ref", "-m", "stash entry 2", "refs/stash", "refs/heads/main")
    at(21, "symbolic-ref", "refs/heads/link", "refs/heads/side")
    quiet = ("-c", "core.logAllRefUpdates=false", "symbolic-ref")
    at(22, *quiet, "refs/heads/quiet", "refs/heads/side")
    at(23, *quiet, "refs/heads/quiet2", "refs/heads/quiet")  # a chain, no reflogs
    for ago, tz in ((20 * day, "+0945"), (2 * day, "+0000"), (3600, "-0530"), (30, "+0100")):
        when = {"GIT_COMMITTER_DATE": f"{NOW - ago} {tz}"}  # near "now": git's human dates
        git("update-ref", "-m", f"{ago}s before now", "refs/heads/recent", "HEAD", cwd=path,
            env=when)  # fmt: skip
    latin = {"GIT_COMMITTER_NAME": "Jos\udce9"}  # not UTF-8: printed as stored
    git("update-ref", "-m", "caf\udce9", "refs/heads/latin", "HEAD", cwd=path, env=latin)


WRITE_ARGS: list[tuple[str, ...]] = [
    ("delete", "HEAD@{1}"),
    ("delete", "--rewrite", "HEAD@{1}"),
    ("delete", "--rewrite", "refs/heads/side@{1}"),  # the amend's old id becomes "two"
    ("delete", "--rewrite", "--updateref", "refs/heads/side@{0}"),
    ("delete", "--updateref", "refs/heads/reset@{0}"),
    ("delete", "--dry-run", "--verbose", "HEAD@{2}"),
    ("delete", "-n", "HEAD@{2}"),
    ("delete", "--verbose", "HEAD@{1}", "refs/heads/side@{0}", "refs/heads/main@{9}"),
    ("delete", "HEAD@{99}"),
    ("delete", "HEAD@{+1}"),
    ("delete", "HEAD@{-1}"),
    ("delete", "HEAD@{}"),
    ("delete", "HEAD@{x}"),
    ("delete", "HEAD@{2005-04-10}"),
    ("delete", "--verbose", "refs/heads/link@{0}"),  # a symref without its own reflog
    ("delete", "refs/tags/moving@{1}"),
    ("delete", "--verbose", "refs/heads/latin@{0}"),
    ("delete", "--verbose", "refs/heads/quiet@{1}"),  # a symref without a reflog: its target's
    ("expire", "--expire=now", "--all"),
    ("expire", "--expire=all", "--verbose", "HEAD"),
    ("expire", "--expire=never", "--expire-unreachable=now", "--all", "--verbose"),
    ("expire", "--expire=never", "--expire-unreachable=now", "--verbose", "HEAD",
     "refs/heads/reset", "refs/heads/side", "refs/tags/moving", "refs/stash"),
    ("expire", "--expire=2005-04-10", "--expire-unreachable=2005-04-15", "--verbose", "--all"),
    ("expire", "--expire=2005-04-10", "--expire-unreachable=2005-04-15", "--all", "-n",
     "--verbose"),
    ("expire", "--expire-unreachable=now", "--rewrite", "--updateref", "--all"),  # all go
    ("expire", "--expire=never", "--expire-unreachable=now", "--rewrite", "--updateref",
     "--verbose", "--all"),
    ("expire", "--expire=2005-04-12", "--rewrite", "--updateref", "refs/heads/reset"),
    ("expire", "--verbose", "--all"),  # git's defaults: 90 and 30 days before now
    ("expire", "--verbose", "refs/stash"),  # never expires unless told
    ("expire", "--expire=now", "refs/stash"),
    ("expire", "--expire=1.year.ago", "--expire-unreachable=never", "--all"),
    ("expire", "--all", "--single-worktree", "--expire=now"),
    ("expire", "--expire=now", "refs/heads/link"),
    ("expire", "--expire=now", "refs/heads/quiet"),
    ("expire", "--expire=now", "refs/heads/nope", "HEAD"),
    ("expire", "--expire=now", "refs/tags/v1"),
    ("delete", "refs/heads/quiet2@{0}"),  # a chain of symrefs without reflogs
    ("delete", "--verbose", "main@{1}"),  # short names: git's dwim_log
    ("delete", "--verbose", "quiet2@{0}", "link@{0}", "stash@{1}"),
    ("expire", "--expire=now", "--verbose", "side", "stash", "quiet2"),
    ("expire", "--expire=now", "nope", "gone"),
]  # fmt: skip
NEW_ONLY_ARGS: list[tuple[str, ...]] = [
    ("drop", "refs/heads/side"),
    ("drop", "HEAD", "refs/tags/moving", "refs/heads/nope"),
    ("drop", "--all"),
    ("drop", "--all", "--single-worktree"),
    ("drop", "refs/heads/link"),
    ("drop", "refs/heads/quiet"),
    ("expire", "--expire=now", "refs/heads/nope", "HEAD"),  # 2.55's message
    ("drop", "side", "quiet2", "nope"),
    ("expire", "--expire=now", "nope", "gone"),
]


def _state(git: Git, repo: Path) -> bytes:
    """What git sees afterwards: reflog names, every reflog (one walk over all of them: an
    entry missing or added shifts the numbers of the others), refs, refs verify; and the
    live log records of the stack with their old ids."""
    names = [os.fsdecode(n) for n in git.run("reflog", "list", cwd=repo).stdout.split()]
    refs = git.run("for-each-ref", "--format=%(refname) %(objectname) %(symref)", cwd=repo)
    walk = git.run("log", "-g", "--format=%H %gD %gs|%gn|%ge|%gd", *names, "--",
                   cwd=repo, check=False)  # fmt: skip
    verify = git.run("refs", "verify", cwd=repo, check=False)
    parts = [b"\n".join(map(os.fsencode, names)), refs.stdout, walk.stdout, walk.stderr]
    with open_stack(repo) as merged:  # the old ids too, which no git format prints
        for name, logs in sorted(our_live_logs(merged).items()):
            parts += [name, *(b"%s %s %s" % (r.old_id.hex().encode(), r.new_id.hex().encode(),
                                              r.message) for r in logs)]  # fmt: skip
    return b"\n".join([*parts, verify.stdout, verify.stderr, bytes([verify.returncode])])


@pytest.fixture(scope="module", params=["sha1", "sha256"])
def history(
    request: pytest.FixtureRequest, git: Git, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    fmt: str = request.param
    path = tmp_path_factory.mktemp("reflog-history") / fmt
    _history(git, path, fmt)
    return path


def _twins(src: Path, tmp_path: Path, n: int) -> tuple[Path, Path]:
    a, b = tmp_path / f"theirs{n}", tmp_path / f"ours{n}"
    shutil.copytree(src, a, symlinks=True)
    shutil.copytree(src, b, symlinks=True)
    return a, b


def _compare_writes(git: Git, src: Path, tmp_path: Path, cases: list[tuple[str, ...]]) -> None:
    mismatches: list[tuple[tuple[str, ...], Outcome, Outcome]] = []
    for n, args in enumerate(cases):
        theirs_repo, ours_repo = _twins(src, tmp_path, n)
        argv = ["reflog", *args]
        theirs = run_git(git, theirs_repo, argv, env=_date_env())
        ours = run_ours(ours_repo, argv, env=_date_env())
        if ours != theirs:
            mismatches.append((args, ours, theirs))
            continue
        if _state(git, ours_repo) != _state(git, theirs_repo):
            mismatches.append((args, (b"state", b"", 0), (b"differs", b"", 0)))
    assert mismatches == []


HISTORY_READ_ARGS: list[tuple[str, ...]] = [
    ("show",),
    ("show", "HEAD@{3}"),
    ("show", "-n", "3", "HEAD@{2}"),
    ("show", "refs/heads/quiet"),  # a symref without a reflog shows its target's
    ("show", "refs/heads/quiet@{1}"),
    ("show", "refs/heads/quiet@{9}"),
    ("show", "refs/heads/link@{0}"),
    ("show", "refs/tags/moving"),  # an entry whose new id is a tag: not shown, still counted
    ("show", "refs/tags/moving@{1}"),
    ("show", "refs/stash"),
    ("show", "--format=[%gs] %gD", "refs/heads/nomsg"),
    ("show", "--format=%h %gd %gs", "HEAD"),
    ("show", "refs/heads/latin"),
    ("show", "--format=%gs|%gn|%ge", "refs/heads/latin"),
    ("show", "@{1}"),
    ("show", "@{99}"),
    ("list",),
    ("show", "HEAD@{2005-04-08}"),  # a date selector: the newest entry not after it
    ("show", "-n2", "HEAD@{2005-04-09.12:00}"),
    ("show", "HEAD@{2000-01-01}"),  # before the reflog: a warning, nothing shown
    ("show", "HEAD@{2030-01-01}"),
    ("show", "HEAD@{1.year.ago}"),
    ("show", "refs/heads/quiet@{2005-04-10}"),
    ("show", "@{2005-04-10}"),
    ("show", "--format=%gd %gD", "HEAD@{2005-04-09}"),
    ("show", "--date=nonsense"),
    ("show", "--date="),
    ("show", "--date=isox"),
    ("show", "--relative-date", "-3"),
    *[
        ("show", f"--date={mode}", "refs/heads/recent")
        for mode in (
            "default",
            "iso",
            "iso8601",
            "iso-strict",
            "iso8601-strict",
            "rfc",
            "rfc2822",
            "short",
            "raw",
            "unix",
            "relative",
            "human",
            "local",
            "iso-local",
            "raw-local",
            "human-local",
            "auto:iso",
        )
    ],
    ("show", "--date", "iso", "-2", "HEAD"),
    ("show", "--date=human", "HEAD@{2}"),
    ("exists", "refs/heads/quiet"),
    ("exists", "refs/heads/link"),
    # short names (git's dwim rules, read_complete_reflog), chains of symrefs, %gd
    ("show", "refs/heads/quiet2"),  # a chain without reflogs: the end's reflog
    ("show", "refs/heads/quiet2@{1}"),
    ("show", "--format=%gd|%gD|%gs", "quiet2"),
    ("show", "side"),
    ("show", "heads/side"),
    ("show", "--format=%gd|%gD", "side"),
    ("show", "--format=%gd|%gD", "refs/heads/side"),
    ("show", "--format=%h %gd", "quiet"),
    ("show", "link@{0}"),
    ("show", "@@{1}"),
    ("show", "v1"),  # a tag object: nothing shown
    ("show", "moving"),
    ("show", "moving@{1}"),
    ("show", "stash"),
    ("show", "gone"),  # deleted: no such revision
    ("show", "side@{9}"),
    ("show", "main@{2005-04-10}"),
    ("show", "--format=%gd", "stash@{0}"),
]


def test_history_reads_match_git(git: Git, history: Path) -> None:
    mismatches = []
    for args in HISTORY_READ_ARGS:
        argv = ["reflog", *args]
        ours, theirs = run_ours(history, argv), run_git(git, history, argv, env=_date_env())
        if ours != theirs:
            mismatches.append((args, ours, theirs))
    assert mismatches == []


def test_worktree_names_match_git(git: Git, scenarios: Scenarios) -> None:
    """Per-worktree names (worktrees/<id>/HEAD, main-worktree/HEAD) from both sides."""
    linked = scenarios["worktree-sha1"]
    main_repo = linked.parent / linked.name.removesuffix(".wt")
    wid = linked.name
    cases = [
        ("show", f"worktrees/{wid}/HEAD"),
        ("show", "main-worktree/HEAD"),
        ("show", "-n2", "main-worktree/HEAD@{1}"),
        ("exists", f"worktrees/{wid}/HEAD"),
        ("exists", "worktrees/nope/HEAD"),
        ("show", "worktrees/nope/HEAD"),
        ("show", "worktrees/nope/HEAD@{0}"),
        ("show", "refs/worktree/wt-only"),
        ("show", "refs/bisect/good"),
        ("show", "@{0}"),
        ("show", "@{1}"),
        ("list",),
    ]
    for repo in (main_repo, linked):
        for args in cases:
            argv = ["reflog", *args]
            assert run_ours(repo, argv) == run_git(git, repo, argv, env=_date_env()), (
                repo.name,
                args,
            )


def test_write_commands_match_git(git: Git, history: Path, tmp_path: Path) -> None:
    """Every case on sha1, every other one on sha256 (the suite's time budget)."""
    cases = [a for a in WRITE_ARGS if a not in NEW_ONLY_ARGS]
    if history.name == "sha256":
        cases = cases[::2]
    _compare_writes(git, history, tmp_path, cases)


def test_write_commands_match_git_2_55(git_new: Git, history: Path, tmp_path: Path) -> None:
    """``drop`` (new in 2.5x) and the expiry cases whose messages 2.55 changed, plus a
    sample of the others against the newer git too."""
    _compare_writes(git_new, history, tmp_path, [*NEW_ONLY_ARGS, *WRITE_ARGS[::4]])


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    total=st.integers(-2, 24),
    unreachable=st.integers(-2, 24),
    flags=st.sets(st.sampled_from(["--rewrite", "--updateref", "--verbose", "-n"])),
)
def test_expire_times_match_git(
    git: Git, history: Path, tmp_path_factory: pytest.TempPathFactory, total: int,
    unreachable: int, flags: set[str],
) -> None:  # fmt: skip
    """Expiry cut-offs anywhere in the history (days after its first entry; -1 never,
    -2 all), with any of the writing flags, for every reflog at once."""

    def when(day: int) -> str:
        return {-1: "never", -2: "all"}.get(day) or f"@{1112354055 + day * 86400 + 43200}"

    args = ("expire", f"--expire={when(total)}", f"--expire-unreachable={when(unreachable)}",
            *sorted(flags), "--all")  # fmt: skip
    _compare_writes(git, history, tmp_path_factory.mktemp("expire"), [args])


_TOKENS = ["show", "list", "exists", "delete", "expire", "drop", "write", "-n", "-1", "--",
           "-h", "--all", "--verbose", "--dry-run", "--rewrite", "--updateref", "--expire=now",
           "--expire-unreachable=never", "--expire=x", "--date=iso", "--date=", "--format=%h",
           "--pretty=oneline", "--bogus", "-x", "HEAD", "HEAD@{1}", "HEAD@{x}", "@{0}", "main",
           "refs/heads/side", "refs/heads/side@{0}", "refs/heads/nope", "refs/heads/quiet2",
           "a..b", "worktrees/nope/HEAD", "refs/heads/link@{2005-04-10}", "", "@", "@{",
           "refs/heads/caf\udce9"]  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(_TOKENS), max_size=5))
def test_any_command_line_ends_in_a_status_never_a_traceback(
    history: Path, tmp_path_factory: pytest.TempPathFactory, argv: list[str]
) -> None:
    """Random reflog command lines on one copy (writes pile up): each returns one of git's
    statuses; an exception escaping main() fails the test."""
    repo = tmp_path_factory.getbasetemp() / f"fuzz-{history.name}"
    if not repo.exists():
        shutil.copytree(history, repo, symlinks=True)
    _, err, code = run_ours(repo, ["reflog", *argv], env=_date_env())
    assert code in (0, 1, 128, 129, 255), (argv, code, err)
    assert b"Traceback" not in err
