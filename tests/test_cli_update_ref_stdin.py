"""`aioreftable update-ref --stdin` against git's: sessions answered line for line (stdout,
stderr, exit status) and the same refs, reflogs and `git refs verify` afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_scenarios import Scenarios, scenarios
from conftest import Git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_update_ref import Twins, git_env, ours, state, theirs

__all__ = ["git_env", "scenarios"]  # the fixtures, imported to be used here

STDIN = ("--stdin",)
MSG = ("-m", "session", "--stdin")

# (arguments, stdin): run in this order on both twins (git 2.47: the classic protocol)
SESSIONS: list[tuple[tuple[str, ...], str]] = [
    # every command kind, committed at the end of input
    (MSG, "create refs/heads/a {c0}\nupdate refs/heads/b {c1}\nverify refs/heads/main {c2}\n"),
    (MSG, "update refs/heads/a {c1} {c0}\ndelete refs/heads/b {c1}\nverify refs/heads/b\n"),
    (
        STDIN,
        "update refs/heads/c HEAD\nupdate refs/tags/t refs/tags/v1\ncreate refs/tags/u {tree}\n",
    ),
    (STDIN, "update refs/heads/c {c0} \n"),  # an empty old value: must not exist
    (STDIN, 'update "refs/heads/q\\165oted" {c0}\ndelete "refs/heads/c"\n'),
    (MSG, 'create "refs/heads/\\303\\251t\\303\\251" {C0}\ncreate "refs/heads/\\377" {c1}\n'),
    (MSG, 'update "refs/heads/\\377" {c2} {c1}\nverify "refs/heads/\\303\\251t\\303\\251" {c0}\n'),
    (MSG, 'update "refs/heads/\\377" {c0} {c1}\n'),  # the name in git's error, as bytes
    (MSG, "update refs/heads/tab\t{c0}\n"),  # a tab ends an argument too
    (MSG, "update refs/heads/crlf {c0}\r\n"),  # CR is no terminator: extra input
    (STDIN, 'update "refs/heads/\\001\\033[31m" {c0}\n'),  # control characters as "?"
    (STDIN, "frobnicate " + "x" * 5000 + "\n"),  # git's message is cut at 4095 bytes
    # transactions: start/prepare/commit, abort, several in one session, EOF aborts
    (MSG, "start\nupdate refs/heads/a {c2}\nprepare\ncommit\n"),
    (MSG, "start\nupdate refs/heads/a {c0}\nabort\n"),
    (MSG, "start\nupdate refs/heads/a {c0}\nprepare\nabort\n"),
    (MSG, "start\ncreate refs/heads/t1 {c0}\ncommit\nstart\ncreate refs/heads/t2 {c1}\ncommit\n"),
    (MSG, "start\ncreate refs/heads/never {c0}\n"),
    (MSG, "start\ncreate refs/heads/never {c0}\nprepare\n"),
    (MSG, "update refs/heads/t1 {c1}\ncommit\n"),  # an implicit transaction, closed
    # failures mid-transaction: git's fatal text and status, nothing applied
    (MSG, "start\ncreate refs/heads/f1 {c0}\nverify refs/heads/a {c0}\ncommit\n"),
    (MSG, "create refs/heads/f1 {c0}\ncreate refs/heads/a {c0}\n"),
    (MSG, "create refs/heads/f1 {c0}\nupdate refs/heads/a {c1} {c0}\n"),
    (MSG, "create refs/heads/f1 {c0}\ndelete refs/heads/nothing {c0}\n"),
    (MSG, "create refs/heads/f1 {c0}\nupdate refs/heads/f2 {missing}\n"),
    (MSG, "create refs/heads/f1 {c0}\nupdate refs/heads/f2 {tag}\n"),
    (MSG, "create refs/heads/f1 {c0}\ncreate refs/heads/a/b {c0}\n"),
    (MSG, "create refs/heads/f1 {c0}\ncreate refs/heads/f1/b {c0}\n"),
    (MSG, "create refs/heads/f1 {c0}\nupdate refs/heads/f1 {c1}\n"),
    (MSG, "create refs/heads/f1 {c0}\nupdate HEAD {c1}\nupdate refs/heads/main {c0}\n"),
    (MSG, "create refs/heads/f1 {c0}\ndelete foo\n"),
    (MSG, "create refs/heads/f1 {c0}\nupdate FETCH_HEAD {c0}\n"),
    # protocol errors
    (STDIN, "update refs/heads/a {c0}"),  # no final LF: extra input
    (STDIN, "update refs/heads/a"),
    (STDIN, "\n"),
    (STDIN, " update refs/heads/a {c0}\n"),
    (STDIN, "frobnicate refs/heads/a\n"),
    (STDIN, "update\n"),
    (STDIN, "update \n"),
    (STDIN, "update refs/heads/a\n"),
    (STDIN, "update refs/heads/a {c0} {c1} extra\n"),
    (STDIN, "update refs/heads/a  {c0}\n"),
    (STDIN, "update refs/heads/a nope\n"),
    (STDIN, "update refs/heads/a {c0} nope\n"),
    (STDIN, "update refs/heads/a refs/heads/dangling\n"),
    (STDIN, "update refs/heads/a..b {c0}\n"),
    (STDIN, 'update "refs/heads/a {c0}\n'),
    (STDIN, 'update "refs/heads/a"x {c0}\n'),
    (STDIN, 'update "refs/heads/\\q" {c0}\n'),
    (STDIN, "create refs/heads/z {null}\n"),
    (STDIN, "create refs/heads/z\n"),
    (STDIN, "delete refs/heads/a {null}\n"),
    (STDIN, "delete\n"),
    (STDIN, "verify refs/heads/a {c0} x\n"),
    (STDIN, "option deref\n"),
    (STDIN, "option no-deref x\n"),
    (STDIN, "start x\n"),
    (STDIN, "start\nstart\n"),
    (STDIN, "start\nprepare\nupdate refs/heads/a {c0}\n"),
    (STDIN, "start\ncommit\nupdate refs/heads/a {c0}\n"),
    (STDIN, "update refs/heads/z {c0}\nstart\n"),
    (STDIN, "start"),  # no LF: unknown command
    (STDIN, "symref-delete refs/heads/s\n"),
    (STDIN, "symref-verify refs/heads/s\n"),
    (STDIN, "symref-update refs/heads/s\n"),
    (STDIN, "symref-update refs/heads/s refs/heads/a bogus x\n"),
    (STDIN, "symref-update refs/heads/s refs/heads/a oid\n"),
    (STDIN, "symref-update refs/heads/s refs/heads/a oid nope\n"),
    (STDIN, "symref-update refs/heads/s refs/heads/a ref a..b\n"),
    (STDIN, "symref-create refs/heads/s\n"),
    # no-deref, symrefs
    (MSG, "option no-deref\nsymref-create refs/heads/s refs/heads/a\n"),
    (MSG, "symref-update refs/heads/s2 refs/heads/t1\nsymref-verify refs/heads/s2\n"),
    (MSG, "option no-deref\nsymref-verify refs/heads/s refs/heads/a\n"),
    (MSG, "option no-deref\nsymref-verify refs/heads/s refs/heads/t1\n"),
    (MSG, "option no-deref\nsymref-update refs/heads/s refs/heads/t1 ref refs/heads/a\n"),
    (MSG, "option no-deref\nsymref-update refs/heads/s refs/heads/a ref refs/heads/a\n"),
    (MSG, "option no-deref\nsymref-update refs/heads/s refs/heads/a oid {c0}\n"),
    (MSG, "option no-deref\nsymref-update refs/heads/a refs/heads/t2 ref refs/heads/x\n"),
    (MSG, "update refs/heads/s {c0}\n"),  # through the symref: moves t1
    (MSG, "option no-deref\nupdate refs/heads/s {c1}\nupdate refs/heads/t2 {c0}\n"),
    (MSG, "symref-create refs/heads/s3 refs/heads/t2\noption no-deref\ndelete refs/heads/s3\n"),
    (MSG, "option no-deref\nsymref-delete refs/heads/dangling refs/heads/other\n"),
    (MSG, "option no-deref\nsymref-delete refs/heads/dangling refs/heads/nowhere\n"),
    (MSG, "option no-deref\nupdate HEAD {c0}\n"),  # detaches HEAD
    (MSG, "symref-update HEAD refs/heads/main\n"),  # ...which deref mode then follows
    (("--no-deref", "-m", "nd", "--stdin"), "update HEAD {c1}\n"),
    (MSG, "option no-deref\nsymref-update HEAD refs/heads/main\nupdate refs/heads/a {c1}\n"),
    (("--create-reflog", "--stdin"), "create refs/tags/logged {c0}\n"),
]

Z_SESSIONS: list[tuple[tuple[str, ...], str]] = [
    (("-z", *MSG), "create refs/heads/za\0{c0}\0update refs/heads/zb\0{c1}\0\0"),
    (("-z", *MSG), "update refs/heads/zb\0{c2}\0{c1}\0delete refs/heads/za\0{c0}\0"),
    (("-z", *MSG), "update refs/heads/zc\0\0\0"),  # warns: treating as zero
    (("-z", *MSG), "start\0create refs/heads/zd\0{c0}\0prepare\0commit\0"),
    (("-z", *MSG), "verify refs/heads/zb\0{c2}\0verify refs/heads/nope\0\0"),
    (("-z", *MSG), "option no-deref\0symref-update refs/heads/zs\0refs/heads/zb\0\0"),
    (("-z", *MSG), "update refs/heads/ze\0{c0}"),  # end of input in the record
    (("-z", *MSG), "update refs/heads/ze\0"),
    (("-z", *MSG), "update refs/heads/ze x\0{c0}\0\0"),
    (("-z", *MSG), "update refs/heads/ze\0{c0}\0\0junk\0"),
    (("-z", *MSG), "\0"),
    (("-z", *MSG), "create refs/heads/ze\0{c0}\0create refs/heads/zb\0{c0}\0"),
    (("-z", *MSG), "start\0abort\0"),
    (("-z", *MSG), "update refs/heads/zf\0{c0}\0x\0"),
]


# Failures git reports at `prepare` (Transaction.prepare / Batch.prepare lock and check
# there too): the same fatal line at the same point, nothing applied
PREPARE_FAILURES: list[tuple[tuple[str, ...], str]] = [
    (MSG, "start\ncreate refs/heads/f1 {c0}\nverify refs/heads/a {c0}\nprepare\ncommit\n"),
    (MSG, "start\ncreate refs/heads/f1 {c0}\ncreate refs/heads/main {c0}\nprepare\nabort\n"),
    (MSG, "start\nupdate refs/heads/f1 {c0} {c1}\nprepare\n"),
    (MSG, "start\ncreate refs/heads/f1 {c0}\ncreate refs/heads/f1/x {c0}\nprepare\ncommit\n"),
    (MSG, "start\nprepare\ncommit\n"),  # an empty transaction prepares
    (MSG, "start\ncreate refs/heads/f2 {c0}\nprepare\nupdate refs/heads/f3 {c0}\n"),
    (MSG, "start\ncreate refs/heads/f2 {c0}\nprepare\nabort\nstart\nprepare\ncommit\n"),
    (MSG, "start\ncreate refs/heads/f4 {c0}\nprepare\ncommit\n"),
]


def test_prepare_matches_git(git: Git, git_env: None, tmp_path: Path) -> None:
    twins = Twins(git, tmp_path)
    failures = run_sessions(twins, PREPARE_FAILURES)
    assert failures == 5


def test_prepare_holds_the_locks_until_commit(git: Git, git_env: None, tmp_path: Path) -> None:
    """After `prepare: ok` the stack is locked (git's own update-ref fails to lock it, as
    it does while git's update-ref --stdin is prepared); `commit` writes and releases."""
    import subprocess
    import sys

    twins = Twins(git, tmp_path)
    c0 = twins.ids["c0"]
    answers = {}
    for name, argv in (
        ("theirs", [git.path, "update-ref", "--stdin"]),
        ("ours", [sys.executable, "-m", "aioreftable", "update-ref", "--stdin"]),
    ):
        repo = getattr(twins, name)
        with subprocess.Popen(
            argv, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=git.env
        ) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(f"start\ncreate refs/heads/p {c0}\nprepare\n".encode())
                proc.stdin.flush()
                lines = [proc.stdout.readline(), proc.stdout.readline()]
                blocked = git.run("update-ref", "refs/heads/q", c0, cwd=repo, check=False)
                proc.stdin.write(b"commit\n")
                proc.stdin.close()
                lines.append(proc.stdout.readline())
                assert proc.wait(timeout=60) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
        after = git.run("update-ref", "refs/heads/q", c0, cwd=repo, check=False)
        answers[name] = (lines, blocked.returncode, blocked.stderr, after.returncode)
    assert answers["ours"] == answers["theirs"]
    got_lines, code, err, status_after = answers["ours"]
    assert got_lines == [b"start: ok\n", b"prepare: ok\n", b"commit: ok\n"]
    assert code == 128 and b"cannot lock ref" in err and status_after == 0
    assert twins.records(twins.ours) == twins.records(twins.theirs)


def run_sessions(twins: Twins, sessions: list[tuple[tuple[str, ...], str]]) -> int:
    """Each session on both twins (the same answers and records after each), then git's
    view of both; how many sessions failed."""
    failures = 0
    for args, template in sessions:
        code, _, _ = twins.check(args, template)
        failures += code != 0
    twins.check_state()
    return failures


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_stdin_sessions_match_git(
    git: Git, git_new: Git, git_env: None, tmp_path: Path, fmt: str
) -> None:
    """Every command kind and protocol error, transactions committed, aborted and failing
    midway, symrefs and no-deref: the same answers, refs, reflogs and verify as git 2.47."""
    twins = Twins(git, tmp_path, fmt, verifier=git_new)
    failures = run_sessions(twins, SESSIONS)
    assert failures > 40  # the refusals really were refused (and matched git's)


def test_stdin_nul_sessions_match_git(
    git: Git, git_new: Git, git_env: None, tmp_path: Path
) -> None:
    twins = Twins(git, tmp_path, verifier=git_new)
    failures = run_sessions(twins, Z_SESSIONS)
    assert 3 < failures < len(Z_SESSIONS)


def test_stdin_interactive_answers(git: Git, git_env: None, tmp_path: Path) -> None:
    """Each answer is written when its command is read (a client waits for it)."""
    import subprocess
    import sys

    twins = Twins(git, tmp_path)
    with subprocess.Popen(
        [sys.executable, "-m", "aioreftable", "update-ref", "--stdin"],
        cwd=twins.ours,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(b"start\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == b"start: ok\n"
            proc.stdin.write(twins.fill("create refs/heads/live {c0}\nprepare\n"))
            proc.stdin.flush()
            assert proc.stdout.readline() == b"prepare: ok\n"
            proc.stdin.write(b"commit\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == b"commit: ok\n"
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert git("rev-parse", "refs/heads/live", cwd=twins.ours).strip() == twins.ids["c0"]


def test_stdin_interrupted_session_ends_at_once(git: Git, git_env: None, tmp_path: Path) -> None:
    """Ctrl-C while waiting for the next command ends the process at once (status 130),
    with nothing written, though stdin stays open (no thread is left reading it)."""
    import signal
    import subprocess
    import sys
    import time

    twins = Twins(git, tmp_path)
    before = twins.records(twins.ours)
    # Python's own SIGINT handler even where the test runner's SIGINT is ignored
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from aioreftable.cli import main; sys.exit(main(['update-ref', '--stdin']))"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=twins.ours,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(twins.fill("start\ncreate refs/heads/never {c0}\n"))
            proc.stdin.flush()
            assert proc.stdout.readline() == b"start: ok\n"
            time.sleep(0.3)  # now waiting for the next command
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
    assert twins.records(twins.ours) == before


# -- --batch-updates (git 2.55) -----------------------------------------------------------

BATCH = ("-m", "batch", "--batch-updates", "--stdin")
BATCH_SESSIONS: list[tuple[tuple[str, ...], str]] = [
    (BATCH, "create refs/heads/a {c0}\ncreate refs/heads/b {c1}\n"),
    # each kind of rejection next to updates that commit
    (BATCH, "create refs/heads/a {c1}\ncreate refs/heads/n1 {c0}\n"),
    (BATCH, "update refs/heads/a {c2} {c1}\nupdate refs/heads/n2 {c0}\n"),
    (BATCH, "update refs/heads/nope {c2} {c1}\nupdate refs/heads/n3 {c0}\n"),
    (BATCH, "update refs/heads/n4 {missing}\nupdate refs/heads/n5 {c0}\n"),
    (BATCH, "create refs/heads/n6 {tag}\ncreate refs/heads/n7 {c0}\n"),
    (BATCH, "create refs/heads/a/x {c0}\ncreate refs/heads/n8 {c0}\n"),
    (BATCH, "option no-deref\nsymref-update refs/heads/b refs/heads/a ref refs/heads/x\n"),
    (BATCH, "symref-create refs/heads/s refs/heads/a\nsymref-create refs/heads/s2 refs/heads/b\n"),
    (BATCH, "option no-deref\nsymref-update refs/heads/s refs/heads/b ref refs/heads/x\n"),
    (BATCH, "start\nupdate refs/heads/a {c2} {c0}\ncreate refs/heads/n9 {c0}\ncommit\n"),
    (BATCH, "start\nupdate refs/heads/a {c2} {c1}\nprepare\ncommit\n"),
    (BATCH, "update refs/heads/a {missing}\nupdate refs/heads/b {c2} {c1}\n"),
    # generic errors still fail the whole batch
    (BATCH, "create refs/heads/g1 {c0}\nupdate refs/heads/a..b {c0}\n"),
    (BATCH, "create refs/heads/g1 {c0}\ncreate refs/heads/g1 {c1}\n"),
    (BATCH, "create refs/heads/g1 {c0}\ndelete foo\n"),
    (BATCH, "create refs/heads/g1 {c0}\nupdate FETCH_HEAD {c0}\n"),
    # several rejections in one batch: git's order (queue time, prepare, D/F checks)
    (
        BATCH,
        "create refs/heads/a/x {c0}\nupdate refs/heads/a {c2} {c1}\n"
        "create refs/heads/n10 {missing}\ncreate refs/heads/b {c0}\ncreate refs/heads/n11 {c0}\n",
    ),
    (BATCH, "create refs/heads/p/q {c0}\ncreate refs/heads/p {c0}\ncreate refs/heads/r {tag}\n"),
    (BATCH, "create refs/heads/m7/x {c0}\ncreate refs/heads/m7 {c0}\n"),
    (BATCH, "delete refs/heads/a {c2}\ndelete refs/heads/nope {c1}\nverify refs/heads/b {c2}\n"),
    (BATCH, "update refs/heads/u1 {c0} {null}\nupdate refs/heads/a {c0} {null}\n"),
    (BATCH, "option no-deref\nsymref-verify refs/heads/s refs/heads/zz\n"),
    (
        BATCH,
        "start\ncreate refs/heads/m5 {c0}\nupdate refs/heads/a {c0} {c1}\ncommit\n"
        "start\ncreate refs/heads/m5 {c0}\ncommit\n",
    ),
    (
        ("-z", *BATCH),
        "create refs/heads/z1\0{c0}\0update refs/heads/a\0{c1}\0{c0}\0"
        "create refs/heads/z2\0{missing}\0",
    ),
    (("--create-reflog", *BATCH), "create refs/tags/lg {c0}\ncreate refs/tags/lg2 {missing}\n"),
    (BATCH, "create refs/heads/a {c0}\nabort\n"),
    # nothing rejected
    (BATCH, "update refs/heads/a {c1}\n"),
]


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_batch_updates_match_git_255(
    git: Git, git_new: Git, git_env: None, tmp_path: Path, fmt: str
) -> None:
    """--batch-updates: `rejected` lines and their errors as git 2.55 prints them while
    the other updates commit; the same refs, reflogs and verify afterwards."""
    twins = Twins(git, tmp_path, fmt, oracle=git_new)
    rejected = 0
    for args, template in BATCH_SESSIONS:
        _, out, _ = twins.check(args, template)
        rejected += out.count("rejected ")
    twins.check_state()
    assert rejected >= 10


SYMREF_SESSIONS: list[tuple[tuple[str, ...], str]] = [
    (MSG, "symref-create refs/heads/s refs/heads/main\nsymref-create refs/heads/s refs/x\n"),
    (MSG, "option no-deref\nsymref-verify refs/heads/s refs/heads/main\n"),
    (MSG, "option no-deref\nsymref-update refs/heads/s refs/tags/v1 oid {c2}\n"),
    (MSG, "option no-deref\nsymref-delete refs/heads/s refs/tags/v1\n"),
    (MSG, "symref-update HEAD refs/heads/other\n"),
]


def test_symref_commands_match_git_255(
    git: Git, git_new: Git, git_env: None, tmp_path: Path
) -> None:
    twins = Twins(git, tmp_path, oracle=git_new)
    run_sessions(twins, SYMREF_SESSIONS)


# -- random sessions ----------------------------------------------------------------------

NAMES = ["refs/heads/main", "refs/heads/r", "refs/heads/r/s", "refs/tags/t", "HEAD", "refs/heads/q"]
VALUES = ["{c0}", "{c1}", "{c2}", "{null}", "{tag}", "HEAD", ""]


@st.composite
def commands(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    value = draw(st.sampled_from(VALUES))
    old = draw(st.sampled_from([*VALUES, None]))
    target = draw(st.sampled_from(NAMES[:-1]))
    kind = draw(
        st.sampled_from(
            [
                *("create", "update", "delete", "verify", "option"),
                *("symref-update", "symref-create", "symref-delete", "symref-verify"),
            ]
        )
    )
    if kind == "option":
        return "option no-deref\n"
    if kind == "symref-update":
        expected = draw(st.sampled_from(["", f" ref {target}", f" oid {value or '{c0}'}"]))
        return f"symref-update {name} {target}{expected}\n"
    if kind == "symref-create":
        return f"symref-create {name} {target}\n"
    if kind in ("symref-delete", "symref-verify"):
        return f"{kind} {name}{draw(st.sampled_from(['', f' {target}']))}\n"
    tail = "" if old is None else f" {old}"
    if kind in ("delete", "verify"):
        return f"{kind} {name}{tail}\n"
    return f"{kind} {name} {value}{tail}\n"


FRAMINGS = ["", "start\n{}commit\n", "start\n{}prepare\ncommit\n", "start\n{}abort\n"]


@st.composite
def sessions(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(commands(), min_size=1, max_size=5)))
    framing = draw(st.sampled_from(FRAMINGS))
    return framing.format(body) if framing else body


@pytest.fixture
def random_twins(git: Git, git_new: Git, git_env: None, tmp_path: Path) -> Iterator[Twins]:
    twins = Twins(git, tmp_path, verifier=git_new)
    yield twins
    twins.check_state()  # git's view of both after all the examples


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(session=sessions())
def test_random_sessions_match_git(random_twins: Twins, session: str) -> None:
    """Random sessions on the same twins (their states stay equal, so they accumulate);
    `prepare` locks and checks as git's does."""
    want, got = random_twins.step(MSG, session)
    assert got == want, session
    assert random_twins.records(random_twins.ours) == random_twins.records(random_twins.theirs)


FIELDS = {"update": 3, "create": 2, "delete": 2, "verify": 2, "symref-update": 4}


def nul_form(session: str) -> str:
    """A text session in -z form: the command and its name, then each further field
    NUL-terminated, absent optional fields empty (symref commands as they come)."""
    out = []
    for line in session.splitlines():
        command, _, rest = line.partition(" ")
        words = rest.split(" ") if rest else []
        if not words:
            out.append(command + "\0")
            continue
        fields = words[1:] + [""] * (FIELDS.get(command, 0) - 1 - len(words[1:]))
        out.append(f"{command} {words[0]}\0" + "".join(f + "\0" for f in fields))
    return "".join(out)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(session=sessions())
def test_random_nul_sessions_match_git(random_twins: Twins, session: str) -> None:
    """The random sessions again, with -z."""
    want, got = random_twins.step(("-z", *MSG), nul_form(session))
    assert got == want, session
    assert random_twins.records(random_twins.ours) == random_twins.records(random_twins.theirs)


# git's object names through RefStore.get_oid: short names by the dwim rules, `@`, unique
# abbreviated ids, git's warnings (ambiguous refname, dangling symref): run on both twins
SHORT_NAMES: list[tuple[tuple[str, ...], str]] = [
    (("refs/heads/x1", "main"), ""),
    (("refs/heads/x1", "heads/main", "main"), ""),
    (("refs/tags/x3", "v1"), ""),  # the tag object
    (("refs/heads/x3", "v1"), ""),  # ...which a branch refuses
    (("refs/heads/x4", "@"), ""),
    (("refs/heads/x5", "{c0_7}", ""), ""),
    (("refs/heads/x5", "{c1_4}", "{c0_6}"), ""),
    (("refs/heads/x5", "{c2}", "{c0_6}"), ""),  # wrong old value
    (("refs/heads/x6", "dangling"), ""),  # warns: ignoring dangling symref
    (("refs/heads/x7", "nothing"), ""),
    (("refs/heads/x7", "{c2}", "nothing"), ""),
    (("refs/tags/main", "{c1}"), ""),
    (("refs/heads/x8", "main"), ""),  # refs/tags/main wins, with git's warning
    (("refs/heads/{c2_8}", "{c0}"), ""),  # a branch named like an abbreviated id
    (("refs/heads/x9", "{c2_8}"), ""),  # the branch, with git's warning
    (("-d", "refs/heads/x1", "x1"), ""),
    (("-d", "refs/heads/x2", "lw"), ""),  # wrong old value: error
    (MSG, "create refs/heads/y1 heads/main\ncreate refs/heads/y2 {c0_7}\n"),
    (MSG, "verify refs/heads/y1 @\nupdate refs/heads/y3 dangling\n"),
    (MSG, "update refs/heads/y4 v1\n"),
    (MSG, "start\nupdate refs/tags/y5 v1 \ncreate refs/heads/y6 {c2_8}\ncommit\n"),
    (MSG, "update refs/heads/y2 {c1_5} {c0_7}\nupdate refs/heads/y7 tags/main\n"),
    (MSG, "update refs/heads/y8 origin\n"),
    (
        MSG,
        "create refs/remotes/origin/main {c1}\n"
        "symref-create refs/remotes/origin/HEAD refs/remotes/origin/main\n",
    ),
    (MSG, "update refs/heads/y8 origin\n"),  # refs/remotes/origin/HEAD
    (("-z", *MSG), "create refs/heads/y9\0heads/main\0create refs/heads/y10\0@\0"),
    (MSG, "option no-deref\nsymref-update refs/heads/y1 refs/heads/x5 oid {c2_6}\n"),
]


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_short_names_and_abbreviated_ids_match_git(
    git: Git, git_new: Git, git_env: None, tmp_path: Path, fmt: str
) -> None:
    """The forms refused before the library had git's dwim rules and abbreviations now
    answer as git 2.47 does (output, status, records; then git's view of both twins)."""
    twins = Twins(git, tmp_path, fmt, verifier=git_new)
    for name in ("c0", "c1", "c2"):
        for n in (4, 5, 6, 7, 8):
            twins.ids[f"{name}_{n}"] = twins.ids[name][:n]
    failures = run_sessions(twins, SHORT_NAMES)
    assert failures >= 5  # the refusals among them really were refused, as git's


def test_revision_expressions_are_refused(git: Git, git_env: None, tmp_path: Path) -> None:
    """The forms git resolves and we do not (the library has no revision syntax): refused
    with git's text for a name that resolves to nothing; nothing is written."""
    twins = Twins(git, tmp_path)
    before = state(git, twins.ours)
    for name in ["HEAD~1", "v1^{}", "main@{1}", "@{-1}", "HEAD:x", ":/c0"]:
        data = f"update refs/heads/x {name}\n".encode()
        assert ours(twins.ours, STDIN, data) == (
            128,
            "",
            f"fatal: update refs/heads/x: invalid <new-oid>: {name}\n",
        )
        assert ours(twins.ours, ("refs/heads/x", name)) == (
            128,
            "",
            f"fatal: {name}: not a valid SHA1\n",
        )
        assert theirs(git, twins.theirs, ("refs/heads/x", name))[0] in (0, 128)
    assert state(git, twins.ours) == before


def test_ours_reads_nothing_from_an_empty_stdin(git: Git, git_env: None, tmp_path: Path) -> None:
    twins = Twins(git, tmp_path)
    assert ours(twins.ours, STDIN, b"") == (0, "", "")


def test_locked_and_missing_worktree_stacks(git: Git, git_env: None, tmp_path: Path) -> None:
    """git's backend texts where ours say more: a stack someone holds locked, a write into
    a linked worktree that does not exist; and sessions run in a linked worktree."""
    twins = Twins(git, tmp_path)
    for repo in (twins.theirs, twins.ours):
        git("config", "reftable.lockTimeout", "0", cwd=repo)
        git(
            "worktree",
            "add",
            "-q",
            "--detach",
            str(repo.parent / f"{repo.name}-wts" / "wt"),
            cwd=repo,
        )
    lock_sessions: list[tuple[tuple[str, ...], str]] = [
        (MSG, "update refs/heads/a {c0}\n"),
        (MSG, "start\nupdate refs/heads/a {c0}\ncommit\n"),
        (("refs/heads/a", "{c0}"), ""),
        (("-d", "refs/heads/main"), ""),
    ]
    for repo in (twins.theirs, twins.ours):
        (repo / ".git" / "reftable" / "tables.list.lock").write_bytes(b"")
    for args, template in lock_sessions:
        code, _, err = twins.check(args, template)
        assert code in (1, 128) and "cannot lock references" in err
    for repo in (twins.theirs, twins.ours):
        (repo / ".git" / "reftable" / "tables.list.lock").unlink()
    nope: list[tuple[tuple[str, ...], str]] = [
        (MSG, "update worktrees/nope/refs/bisect/z {c0}\n"),
        (MSG, "start\nupdate worktrees/nope/refs/bisect/z {c0}\ncommit\n"),
        (("worktrees/nope/refs/bisect/z", "{c0}"), ""),
        (STDIN, "update refs/heads/q worktrees/nope/HEAD\n"),
    ]
    run_sessions(twins, nope)
    in_worktree: list[tuple[tuple[str, ...], str]] = [
        (MSG, "update refs/bisect/x {c0}\nupdate refs/worktree/y {c1}\nupdate HEAD {c0}\n"),
        (MSG, "update main-worktree/HEAD {c1}\nverify refs/bisect/x {c0}\n"),
        (MSG, "update worktrees/wt/refs/bisect/z {c0}\n"),
        (MSG, "create refs/heads/from-wt {c2}\nupdate refs/bisect/x {c2} {c1}\n"),
        (("-d", "refs/bisect/x"), ""),
        (MSG, "option no-deref\nsymref-update HEAD refs/heads/main\n"),
    ]
    twins.theirs, twins.ours = (
        r.parent / f"{r.name}-wts" / "wt" for r in (twins.theirs, twins.ours)
    )
    for args, template in in_worktree:
        want, got = twins.step(args, template)
        assert got == want, template
    assert state(git, twins.ours) == state(git, twins.theirs)


# No symref, no HEAD and not HEAD's branch: a rejected update through one of them is a
# known difference; each name once: git 2.55 rejects a bad new value before the update
# joins the batch, so a second update of that name is no duplicate there (docs/cli.md)
BATCH_NAMES = ["refs/heads/r", "refs/heads/r/s", "refs/tags/t", "refs/heads/q", "refs/heads/q/p"]
BATCH_VALUES = ["{c0}", "{c1}", "{c2}", "{null}", "{tag}", "{missing}"]


@st.composite
def batch_sessions(draw: st.DrawFn) -> str:
    lines = []
    names = draw(st.lists(st.sampled_from(BATCH_NAMES), min_size=1, max_size=5, unique=True))
    for name in names:
        kind = draw(st.sampled_from(["create", "update", "delete", "verify"]))
        value = draw(st.sampled_from(BATCH_VALUES[:-1] if kind == "create" else BATCH_VALUES))
        old = draw(st.sampled_from([*BATCH_VALUES[:4], None]))
        tail = "" if old is None else f" {old}"
        if kind == "create":
            value = "{c0}" if value == "{null}" else value
            lines.append(f"create {name} {value}\n")
        elif kind == "delete":
            lines.append(f"delete {name}{'' if old == '{null}' else tail}\n")
        elif kind == "verify":
            lines.append(f"verify {name}{tail}\n")
        else:
            lines.append(f"update {name} {value}{tail}\n")
    framing = draw(st.sampled_from(["", "start\n{}commit\n"]))
    body = "".join(lines)
    return framing.format(body) if framing else body


@pytest.fixture
def batch_twins(git: Git, git_new: Git, git_env: None, tmp_path: Path) -> Iterator[Twins]:
    twins = Twins(git, tmp_path, oracle=git_new)
    yield twins
    twins.check_state()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(session=batch_sessions())
def test_random_batches_match_git_255(batch_twins: Twins, session: str) -> None:
    """Random --batch-updates sessions against git 2.55 on the same twins."""
    batch_twins.check(BATCH, session)


# -- the shared scenario repositories (tests/cli_scenarios.py) ---------------------------

SCENARIO_SESSIONS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "rich-sha256": [
        (MSG, "update refs/heads/alias2 {c0}\n"),  # through a chain of two symrefs
        (MSG, "option no-deref\nupdate refs/heads/alias {c1}\nverify refs/heads/alias2 {c1}\n"),
        (MSG, "create refs/heads/gone {c2}\nupdate refs/tags/tree refs/tags/v1.0\n"),
        (MSG, 'update "refs/heads/caf\\351" {c0}\ndelete refs/heads/dangling\n'),
        (MSG, "update refs/remotes/origin/HEAD {c0}\nupdate ORIG_HEAD {c1}\n"),
        (MSG, "delete refs/bisect/bad\nverify refs/heads/v1.9 refs/heads/v1.9-rc1\n"),
        (MSG, "create refs/heads/a/b/c {c0}\n"),  # D/F with an existing ref
        (MSG, "delete refs/heads/a/b\ncreate refs/heads/a/b/c {c0}\n"),
        (MSG, "start\nupdate refs/heads/feature/a {c2} {c1}\ncommit\n"),
        (MSG, "update refs/heads/wt-branch {c0}\n"),  # checked out in the linked worktree
    ],
    "tombstones-sha1": [
        (MSG, "update refs/heads/r/00 {c0}\ndelete refs/heads/r/01\ncreate refs/heads/r/02 {c1}\n"),
        (MSG, "create refs/heads/r/00/x {c0}\n"),
        (MSG, "delete refs/heads/r/03\ndelete refs/heads/r/07\nverify refs/heads/r/04 {c2}\n"),
    ],
    "bare-sha256": [
        (MSG, "update HEAD {c0}\ncreate refs/heads/x HEAD\n"),  # the unborn branch is born
        (("--create-reflog", *MSG), "update refs/heads/b0 {c2}\n"),
        (MSG, "option no-deref\nsymref-update HEAD refs/heads/b1\ndelete refs/heads/x\n"),
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIO_SESSIONS))
def test_sessions_on_scenario_repositories(
    git: Git, git_new: Git, git_env: None, scenarios: Scenarios, tmp_path: Path, name: str
) -> None:
    """Sessions on twins of the shared scenarios (many tables, tombstones, chained and
    dangling symrefs, a non-UTF-8 name, a linked worktree, bare SHA-256), and in the rich
    one's linked worktree."""
    repos = (scenarios.build(name, tmp_path / "theirs"), scenarios.build(name, tmp_path / "ours"))
    twins = Twins(git, tmp_path, verifier=git_new, repos=repos)
    run_sessions(twins, SCENARIO_SESSIONS[name])
    if name.startswith("rich"):
        twins.theirs, twins.ours = (Path(f"{repo}.wt") for repo in repos)
        for args, template in [
            (MSG, "update HEAD {c0}\nupdate refs/worktree/wt-only {c1}\n"),
            (MSG, "update refs/bisect/good {c2} {c0}\n"),
            (MSG, "update main-worktree/HEAD {c1}\nupdate refs/bisect/good {c2}\n"),
        ]:
            want, got = twins.step(args, template)
            assert got == want, template
        assert state(git, twins.ours, git_new) == state(git, twins.theirs, git_new)
