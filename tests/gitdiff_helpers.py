"""Helpers for the differential tests against a real git (tests only).

Three groups:

* building repositories with git (``Case``, ``build_repo``, ``fast_import_commits``);
* dumping what git sees (``git_*``) and what our codec sees (``our_*``) in the same shape,
  so a test is one ``assert ours == gits``;
* reading and writing a repository's stack synchronously with the low-level codec
  (``open_stack``, ``install_stack``; re-encoding is ``format_helpers.reencode``). The
  library's async stack is a separate module; these tests exercise only the codec.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conftest import Git

from aioreftable._format._writer import HashName
from aioreftable.lowlevel import (
    LogRecord,
    MergedTable,
    RefRecord,
    RefValueType,
    TableReader,
    TableWriter,
    WriteOptions,
)

# --------------------------------------------------------------------------------------
# stacks on disk


def gitdir_of(repo: Path) -> Path:
    """The git directory of a (bare or non-bare) repository."""
    return repo / ".git" if (repo / ".git").is_dir() else repo


def table_names(repo: Path) -> list[str]:
    """The names in ``reftable/tables.list``, oldest first."""
    text = (gitdir_of(repo) / "reftable" / "tables.list").read_text()
    assert text == "" or text.endswith("\n"), "tables.list must end in LF"
    return [line for line in text.split("\n") if line]


@contextlib.contextmanager
def open_stack(repo: Path) -> Iterator[MergedTable]:
    """The repository's stack as a MergedTable (tables.list order); closes the readers."""
    directory = gitdir_of(repo) / "reftable"
    readers: list[TableReader] = []
    try:
        for name in table_names(repo):
            readers.append(TableReader.from_path(directory / name))
        yield MergedTable(readers)
    finally:
        for r in readers:
            r.close()


def table_file_name(min_update_index: int, max_update_index: int, suffix: int) -> str:
    """git's table name: ``0x<min:012x>-0x<max:012x>-<8 hex>.ref``."""
    return f"0x{min_update_index:012x}-0x{max_update_index:012x}-{suffix & 0xFFFFFFFF:08x}.ref"


def write_table(
    refs: Sequence[RefRecord],
    logs: Sequence[LogRecord],
    min_update_index: int,
    max_update_index: int,
    options: WriteOptions,
) -> bytes:
    w = TableWriter(options)
    w.set_limits(min_update_index, max_update_index)
    w.add_refs(refs)
    w.add_logs(logs)
    return w.finish()


def install_stack(
    git: Git, src: Path, dst: Path, tables: Sequence[bytes], object_format: str
) -> None:
    """A fresh reftable repository at ``dst`` that borrows ``src``'s objects (alternates)
    and whose stack is exactly ``tables`` (oldest first)."""
    git("init", "-q", "--ref-format=reftable", f"--object-format={object_format}", str(dst))
    objects = gitdir_of(src) / "objects"
    (gitdir_of(dst) / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    stack_dir = gitdir_of(dst) / "reftable"
    for old in stack_dir.iterdir():
        old.unlink()
    names = []
    for i, data in enumerate(tables):
        r = TableReader.from_bytes(data)
        name = table_file_name(r.min_update_index, r.max_update_index, 0x5EED0000 + i)
        (stack_dir / name).write_bytes(data)
        names.append(name)
    (stack_dir / "tables.list").write_text("".join(n + "\n" for n in names))


# --------------------------------------------------------------------------------------
# byte comparison


def block_layout(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, type, bytes) of every block, log blocks inflated; for diagnosing diffs."""
    r = TableReader.from_bytes(data)
    return [(b.offset, b.typ, bytes(b.data)) for b in r.blocks()]


def compare_tables(theirs: bytes, ours: bytes) -> str:
    """'identical', 'zlib' (same blocks once log blocks are inflated) or a description."""
    if theirs == ours:
        return "identical"
    if block_layout(theirs) == block_layout(ours):
        return "zlib"
    n = next(
        (i for i, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b),
        min(len(theirs), len(ours)),
    )
    return f"differ: sizes {len(theirs)}/{len(ours)}, first difference at byte {n}"


# --------------------------------------------------------------------------------------
# what git sees

NUL = b"\0"


def git_for_each_ref(git: Git, repo: Path) -> list[tuple[bytes, bytes, bytes]]:
    out = git.run(
        "for-each-ref", "--format=%(refname)%00%(objectname)%00%(symref)", cwd=repo
    ).stdout
    rows = []
    for line in out.splitlines():
        name, oid, target = line.split(NUL)
        rows.append((name, oid, target))
    return rows


def git_show_ref(git: Git, repo: Path) -> list[bytes]:
    return git.run("show-ref", "-d", "--head", cwd=repo).stdout.splitlines()


def git_head(git: Git, repo: Path) -> bytes:
    return git.run("symbolic-ref", "HEAD", cwd=repo).stdout.rstrip(b"\n")


def git_reflog_names(git: Git, repo: Path) -> set[bytes]:
    return set(git.run("reflog", "list", cwd=repo).stdout.splitlines())


ReflogEntry = tuple[bytes, bytes, bytes, bytes, bytes, bytes]  # new, time, tz, name, email, msg


def git_reflogs(git: Git, repo: Path) -> dict[bytes, list[ReflogEntry]]:
    """Every reflog, newest first: (new id hex, time, tz, name, email, message sans LF).

    ``--date=raw`` makes ``%gD`` show ``<ref>@{<time> <tz>}``, which exposes both fields.
    """
    out = git.run(
        "log",
        "-g",
        "--all",
        "--date=raw",
        "--format=%gD%x00%H%x00%gn%x00%ge%x00%gs%x00",
        cwd=repo,
    ).stdout
    logs: dict[bytes, list[ReflogEntry]] = {}
    for line in out.split(b"\0\n"):
        if not line.strip():
            continue
        selector, new, name, email, subject = line.split(NUL)
        ref, _, date = selector.rpartition(b"@{")
        time, tz = date.rstrip(b"}").split(b" ")
        logs.setdefault(ref, []).append((new, time, tz, name, email, subject))
    return logs


# --------------------------------------------------------------------------------------
# what our codec sees


def resolve(merged: MergedTable, rec: RefRecord | None, depth: int = 0) -> RefRecord | None:
    """Follow symrefs to the record holding an object id (None when dangling)."""
    while rec is not None and rec.value_type == RefValueType.SYMREF:
        depth += 1
        if depth > 5 or rec.target is None:
            return None
        rec = merged.ref(rec.target)
    return rec


def our_for_each_ref(merged: MergedTable) -> list[tuple[bytes, bytes, bytes]]:
    rows = []
    for rec in merged.iter_refs(b"refs/"):
        target = resolve(merged, rec)
        assert target is not None and target.value is not None, rec
        symref = rec.target if rec.value_type == RefValueType.SYMREF else b""
        rows.append((rec.refname, target.value.hex().encode(), symref or b""))
    return rows


def our_show_ref(merged: MergedTable) -> list[bytes]:
    lines = []

    def emit(name: bytes, rec: RefRecord | None) -> None:
        target = resolve(merged, rec)
        assert target is not None and target.value is not None, rec
        lines.append(target.value.hex().encode() + b" " + name)
        # git peels from the iterated record only: a symref to a tag gets no ^{} line.
        if rec is not None and rec.value_type == RefValueType.VAL2:
            assert rec.target_value is not None
            lines.append(rec.target_value.hex().encode() + b" " + name + b"^{}")

    emit(b"HEAD", merged.ref(b"HEAD"))
    for rec in merged.iter_refs(b"refs/"):
        emit(rec.refname, rec)
    return lines


def our_head(merged: MergedTable) -> bytes:
    rec = merged.ref(b"HEAD")
    assert rec is not None and rec.value_type == RefValueType.SYMREF and rec.target
    return rec.target


def format_tz(tz_offset: int) -> bytes:
    """HHMM as stored (-830) -> b'-0830'."""
    sign = "-" if tz_offset < 0 else "+"
    return f"{sign}{abs(tz_offset):04d}".encode()


def is_marker(rec: LogRecord) -> bool:
    """A reflog existence marker: both ids null (git hides these)."""
    return not rec.old_id.strip(b"\0") and not rec.new_id.strip(b"\0")


def our_reflogs(merged: MergedTable) -> dict[bytes, list[ReflogEntry]]:
    logs: dict[bytes, list[ReflogEntry]] = {}
    for rec in merged.iter_logs():
        if is_marker(rec):
            continue
        msg = rec.message[:-1] if rec.message.endswith(b"\n") else rec.message
        logs.setdefault(rec.refname, []).append(
            (
                rec.new_id.hex().encode(),
                str(rec.time).encode(),
                format_tz(rec.tz_offset),
                rec.name,
                rec.email,
                msg,
            )
        )
    return logs


def our_live_logs(merged: MergedTable) -> dict[bytes, list[LogRecord]]:
    logs: dict[bytes, list[LogRecord]] = {}
    for rec in merged.iter_logs():
        if not is_marker(rec):
            logs.setdefault(rec.refname, []).append(rec)
    return logs


# --------------------------------------------------------------------------------------
# building repositories with git


@dataclass(frozen=True)
class Case:
    """One set of git settings for a differential repository."""

    object_format: HashName
    block_size: int
    restart_interval: int
    index_objects: bool
    packed: bool  # True: `git pack-refs` at the end; False: keep every table

    @property
    def id(self) -> str:
        return (
            f"{self.object_format}-bs{self.block_size}-ri{self.restart_interval}-"
            f"{'idx' if self.index_objects else 'noidx'}-{'packed' if self.packed else 'stacked'}"
        )

    @property
    def options(self) -> WriteOptions:
        return WriteOptions(
            block_size=self.block_size,
            restart_interval=self.restart_interval,
            index_objects=self.index_objects,
            hash=self.object_format,
        )

    def config_args(self) -> list[str]:
        return [
            "-c", f"reftable.blockSize={self.block_size}",
            "-c", f"reftable.restartInterval={self.restart_interval}",
            "-c", f"reftable.indexObjects={'true' if self.index_objects else 'false'}",
        ]  # fmt: skip


@dataclass
class BuiltRepo:
    path: Path
    case: Case
    commits: list[str]
    env: dict[str, str] = field(default_factory=dict)


IDENTITIES = [
    ("C O Mitter", "committer@example.com"),
    ("Zoë Ünïcødé", "zoe@example.org"),
    ("Robot", "robot@ci.example.net"),
]
TIMEZONES = ["-0830", "+0200", "+0000", "+0545", "-1200", "+1400", "-0330", "+0930"]
BASE_TIME = 1112354055


def fast_import_commits(
    git: Git, repo: Path, count: int, *, branch: str = "refs/heads/main", tags: int = 0
) -> list[str]:
    """``count`` commits on ``branch`` (one fast-import process), plus ``tags`` annotated tags
    ``refs/tags/ann/vNNNN`` on them; returns the commits' hex ids, oldest first."""
    parts = []
    for i in range(count):
        msg = f"commit {i}\n".encode()
        parts.append(
            f"commit {branch}\nmark :{i + 1}\n"
            f"committer C O Mitter <committer@example.com> {BASE_TIME + i} +0200\n"
            f"data {len(msg)}\n".encode()
            + msg
            + b"\n"
        )
    for t in range(tags):
        msg = f"annotated tag {t}\n".encode()
        tz = TIMEZONES[t % len(TIMEZONES)]
        parts.append(
            f"tag ann/v{t:04d}\nfrom :{(t * 7) % count + 1}\n"
            f"tagger T Agger <tagger@example.com> {BASE_TIME + t} {tz}\n"
            f"data {len(msg)}\n".encode()
            + msg
            + b"\n"
        )
    marks = repo / "marks.txt"
    git.run("fast-import", "--quiet", f"--export-marks={marks}", cwd=repo, input=b"".join(parts))
    oids: dict[int, str] = {}
    for line in marks.read_text().splitlines():
        mark, oid = line.split()
        oids[int(mark[1:])] = oid
    marks.unlink()
    return [oids[i + 1] for i in range(count)]


def stdin_batch(
    git: Git, repo: Path, lines: Sequence[str], message: str, env: dict[str, str]
) -> None:
    """One `git update-ref --stdin` transaction (one table)."""
    data = "".join(line + "\n" for line in lines).encode()
    git.run("update-ref", "-m", message, "--stdin", cwd=repo, input=data, env=env)


def build_repo(git: Git, path: Path, case: Case, n_refs: int = 3000) -> BuiltRepo:
    """A repository with thousands of refs of every kind, tombstones, symrefs, annotated
    tags (and a tag of a tag), and long reflogs from several identities and time zones."""
    env = {} if case.packed else {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
    git(*case.config_args(), "init", "-q", "--ref-format=reftable",
        f"--object-format={case.object_format}", "-b", "main", str(path), env=env)  # fmt: skip
    for key, value in (
        ("reftable.blockSize", str(case.block_size)),
        ("reftable.restartInterval", str(case.restart_interval)),
        ("reftable.indexObjects", "true" if case.index_objects else "false"),
    ):
        git("config", key, value, cwd=path)
    commits = fast_import_commits(git, path, 400, tags=60)
    # Long names must fit a block with the file header: keep them shorter for tiny blocks.
    long_len = 150 if case.block_size < 1000 else 230
    quarter = n_refs // 4

    def oid(i: int) -> str:
        return commits[(i * 31) % len(commits)]

    batch1 = []
    for i in range(quarter):
        batch1.append(f"create refs/heads/feature/{i:05d} {oid(i)}")
        batch1.append(f"create refs/pull/{i}/head {oid(i + 1)}")
        batch1.append(f"create refs/remotes/origin/topic-{i:05d} {oid(i + 2)}")
    for i in range(quarter // 4):
        batch1.append(f"create refs/heads/deep/a/b/c/d/e/f/g/h/i/j/{i:04d} {oid(i + 3)}")
        batch1.append(f"create refs/tags/long/{'x' * long_len}-{i:04d} {oid(i + 4)}")
        batch1.append(f"create refs/heads/ünïcødé/ブランチ-{i:04d} {oid(i + 5)}")
        batch1.append(f"create refs/tags/日本語/タグ-{i:04d} {oid(i + 6)}")
    stdin_batch(git, path, batch1, "batch one", env)

    batch2 = []
    for i in range(quarter):
        batch2.append(f"create refs/tags/lw/{i:05d} {oid(i + 7)}")
        if i % 5 == 0:
            batch2.append(f"update refs/heads/feature/{i:05d} {oid(i + 100)} {oid(i)}")
        if i % 7 == 0:
            batch2.append(f"delete refs/pull/{i}/head {oid(i + 1)}")
    stdin_batch(git, path, batch2, "batch two: lightweight tags, updates and deletions", env)

    # Deleting refs that have reflogs writes log tombstones too.
    batch3 = [f"delete refs/heads/feature/{i:05d}" for i in range(3, quarter, 10)]
    stdin_batch(git, path, batch3, "batch three", env)

    git("tag", "-a", "-m", "release", "v1.0", commits[-2], cwd=path, env=env)
    git("tag", "-a", "-m", "tag of a tag", "v1.0-signed", "refs/tags/v1.0", cwd=path, env=env)
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/topic-00001",
        cwd=path, env=env)  # fmt: skip
    git("symbolic-ref", "refs/heads/alias", "refs/heads/main", cwd=path, env=env)
    git("symbolic-ref", "refs/tags/latest", "refs/tags/v1.0-signed", cwd=path, env=env)

    # git truncates messages to block_size/2; a sha256 record with 128 of them would not fit
    # a 256-byte block at all ("entry too large").
    tiny_sha256 = case.block_size < 1000 and case.object_format == "sha256"
    messages = [
        "rebase (finish): returning to refs/heads/main",
        "  leading,   inner \t whitespace   and trailing  ",
        "ünïcødé message ☃ with non-ASCII",
        "",
        "long " + "message " * (6 if tiny_sha256 else 80),
        "commit (amend): fix the frobnicator",
    ]
    for step in range(24):
        name, email = IDENTITIES[step % len(IDENTITIES)]
        tz = TIMEZONES[step % len(TIMEZONES)]
        step_env = {
            **env,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": f"{BASE_TIME + 3600 * step + 17} {tz}",
        }
        ref = ("HEAD", "refs/heads/topic", "refs/heads/main")[step % 3]
        msg = f"step {step}: {messages[step % len(messages)]}"
        git("update-ref", "-m", msg, ref, commits[(step * 13) % len(commits)],
            cwd=path, env=step_env)  # fmt: skip
    git("update-ref", "-m", "doomed", "refs/heads/doomed", commits[5], cwd=path, env=env)
    git("update-ref", "-m", "doomed again", "refs/heads/doomed", commits[6], cwd=path, env=env)
    git("update-ref", "-d", "refs/heads/doomed", cwd=path, env=env)
    if case.packed:
        git("pack-refs", "--all", cwd=path)
    return BuiltRepo(path, case, commits, env)
