"""Migration benchmark: ``aioreftable.migrate_refs`` against ``git refs migrate``.

    python benchmarks/bench_migrate.py                       # 100,000 refs, long reflogs
    python benchmarks/bench_migrate.py --refs 20000 --runs 3

Builds one files-backend repository with git (commits and annotated tags by fast-import,
packed by ``git pack-refs``) and adds the bulk directly as git's own files: ``--refs``
branches in packed-refs, each with a reflog of ``--entries`` lines, and ``--long-logs``
refs with ``--long-entries`` lines each (zones vary). Then, on fresh copies, times:

- files -> reftable: ours (in process) and git's (``git refs migrate``), and
- reftable -> files: ours and git's, from the table our run wrote,

and checks each result with git (the same ``for-each-ref``; ``git refs verify`` clean).
Needs a git that migrates reflogs (>= 2.48; AIOREFTABLE_TEST_GIT_NEW or git on PATH).
Prints one table: wall seconds (median of ``--runs``), CPU seconds of our process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioreftable import migrate_refs

GIT_ENV = {
    "GIT_AUTHOR_NAME": "A U Thor",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "C O Mitter",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "1112354055 +0200",
    "GIT_COMMITTER_DATE": "1112354055 +0200",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "LC_ALL": "C",
    "TZ": "UTC",
}
BASE_TIME = 1_700_000_000
ZONES = ("+0000", "+0200", "-0530", "+1400", "-1200", "+0545")
HEADER = b"# pack-refs with: peeled fully-peeled sorted \n"


def run_git(
    git: str, *args: str, cwd: Path, input: bytes | None = None, env: Mapping[str, str] = GIT_ENV
) -> bytes:
    proc = subprocess.run(
        [git, *args], cwd=cwd, input=input, capture_output=True, env={**os.environ, **env}
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def _fast_import(git: str, repo: Path, commits: int, tags: int) -> None:
    parts = []
    for i in range(commits):
        msg = f"commit {i}\n".encode()
        parts.append(
            f"commit refs/heads/main\nmark :{i + 1}\n"
            f"committer C O Mitter <committer@example.com> {BASE_TIME + i} +0200\n"
            f"data {len(msg)}\n".encode() + msg + b"\n"
        )  # fmt: skip
    for t in range(tags):
        msg = f"tag {t}\n".encode()
        parts.append(
            f"tag ann/v{t:05d}\nfrom :{t % commits + 1}\n"
            f"tagger T Agger <tagger@example.com> {BASE_TIME + t} +0100\n"
            f"data {len(msg)}\n".encode() + msg + b"\n"
        )  # fmt: skip
    run_git(git, "fast-import", "--quiet", cwd=repo, input=b"".join(parts))


def _reflog(oids: list[bytes], start: int, count: int, null: bytes) -> bytes:
    lines = []
    old = null
    for j in range(count):
        new = oids[(start + j) % len(oids)]
        zone = ZONES[(start + j) % len(ZONES)]
        lines.append(
            b"%s %s C O Mitter <committer@example.com> %d %s\tupdate %d\n"
            % (old, new, BASE_TIME + j * 60, zone.encode(), j)
        )
        old = new
    return b"".join(lines)


def build_big_repo(
    git: str,
    path: Path,
    *,
    refs: int,
    entries: int = 2,
    long_logs: int = 2,
    long_entries: int = 1000,
    commits: int = 200,
    tags: int = 100,
    log_every: int = 1,
) -> None:
    """A files-backend repository: ``refs`` branches (packed; every ``log_every``-th with
    a reflog of ``entries`` lines), ``long_logs`` more branches with ``long_entries``
    lines, annotated tags."""
    run_git(git, "init", "-q", "--ref-format=files", "-b", "main", str(path), cwd=path.parent)
    _fast_import(git, path, commits, tags)
    run_git(git, "pack-refs", "--all", cwd=path)
    git_dir = path / ".git"
    listed = run_git(git, "rev-list", "main", cwd=path).split()
    null = b"0" * len(listed[0])
    packed = (git_dir / "packed-refs").read_bytes().split(b"\n", 1)[1]
    chunks: dict[bytes, bytes] = {}
    for chunk in packed.replace(b"\n^", b"\0^").splitlines():
        name = chunk.split(b"\0")[0].split(b" ", 1)[1]
        chunks[name] = chunk.replace(b"\0", b"\n") + b"\n"
    logs = git_dir / "logs" / "refs" / "heads" / "b"
    logs.mkdir(parents=True, exist_ok=True)
    for i in range(refs + long_logs):
        name = b"refs/heads/b/%07d" % i
        chunks[name] = b"%s %s\n" % (listed[i % len(listed)], name)
        if i >= refs:
            (logs / f"{i:07d}").write_bytes(_reflog(listed, i, long_entries, null))
        elif i % log_every == 0:
            (logs / f"{i:07d}").write_bytes(_reflog(listed, i, entries, null))
    body = b"".join(chunks[name] for name in sorted(chunks))
    (git_dir / "packed-refs").write_bytes(HEADER + body)


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def _timed_ours(repo: Path, to: str) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    anyio.run(lambda: migrate_refs(repo, to=to))  # type: ignore[arg-type]
    return time.perf_counter() - start, time.process_time() - cpu


def _timed_git(git: str, repo: Path, to: str) -> float:
    start = time.perf_counter()
    run_git(git, "refs", "migrate", f"--ref-format={to}", cwd=repo)
    return time.perf_counter() - start


def _same(git: str, a: Path, b: Path) -> None:
    fmt = "--format=%(refname) %(objectname) %(*objectname) %(symref)"
    if run_git(git, "for-each-ref", fmt, cwd=a) != run_git(git, "for-each-ref", fmt, cwd=b):
        raise SystemExit(f"for-each-ref differs: {a} {b}")
    for name in ("refs/heads/main", "refs/heads/b/0000000"):
        show = ("reflog", "show", "--date=raw", "--format=%gD %H %gs", name, "--")
        if run_git(git, *show, cwd=a) != run_git(git, *show, cwd=b):
            raise SystemExit(f"reflog of {name} differs: {a} {b}")
    verify = subprocess.run([git, "refs", "verify"], cwd=a, capture_output=True)
    if verify.returncode or verify.stderr.strip():
        raise SystemExit(f"git refs verify: {verify.stderr.decode()}")


def find_git() -> str:
    found = os.environ.get("AIOREFTABLE_TEST_GIT_NEW") or shutil.which("git")
    if not found:
        raise SystemExit("no git (set AIOREFTABLE_TEST_GIT_NEW)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refs", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=2, help="reflog lines per branch")
    parser.add_argument("--long-logs", type=int, default=4)
    parser.add_argument("--long-entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    git = find_git()
    version = run_git(git, "version", cwd=Path.cwd()).decode().strip()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        source = root / "source"
        source.mkdir()
        build_big_repo(
            git, source, refs=args.refs, entries=args.entries, long_logs=args.long_logs,
            long_entries=args.long_entries,
        )  # fmt: skip
        built = time.perf_counter() - start
        total = args.refs * args.entries + args.long_logs * args.long_entries
        print(f"{version}; {args.refs:,} refs, {total:,} reflog entries; built in {built:.1f} s")
        for run in range(args.runs):
            ours = _copy(source, root / f"ours-{run}")
            theirs = _copy(source, root / f"git-{run}")
            wall, cpu = _timed_ours(ours, "reftable")
            rows.setdefault("files -> reftable, ours", []).append(wall)
            rows.setdefault("files -> reftable, ours (CPU)", []).append(cpu)
            rows.setdefault("files -> reftable, git", []).append(
                _timed_git(git, theirs, "reftable")
            )
            _same(git, ours, theirs)
            back_ours = _copy(ours, root / f"ours-back-{run}")
            back_git = _copy(ours, root / f"git-back-{run}")
            wall, cpu = _timed_ours(back_ours, "files")
            rows.setdefault("reftable -> files, ours", []).append(wall)
            rows.setdefault("reftable -> files, ours (CPU)", []).append(cpu)
            rows.setdefault("reftable -> files, git", []).append(_timed_git(git, back_git, "files"))
            _same(git, back_ours, back_git)
            _same(git, back_ours, source)
            for path in (ours, theirs, back_ours, back_git):
                shutil.rmtree(path)
    print("| migration | median s | runs |")
    print("|---|---:|---|")
    for name, values in rows.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {statistics.median(values):.2f} | {runs} |")


if __name__ == "__main__":
    main()
