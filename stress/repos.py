"""The repositories of a run: created with real git (commits for counter values, counters,
preloaded refs, config), and the leftover files a killed writer can leave in a stack."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .profiles import Profile

COUNTER_PREFIX = "refs/heads/stress-counter-"


def git_env() -> dict[str, str]:
    """The environment of every git and worker process: a fixed identity, no user config."""
    env = dict(os.environ)
    env.update(
        {
            "GIT_AUTHOR_NAME": "Stress Harness",
            "GIT_AUTHOR_EMAIL": "stress@example.com",
            "GIT_COMMITTER_NAME": "Stress Harness",
            "GIT_COMMITTER_EMAIL": "stress@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
    )
    return env


def find_git() -> str:
    """git as CI finds it: AIOREFTABLE_TEST_GIT, else ``git`` on PATH (>= 2.45 checked by
    the caller through ``git_version``)."""
    return os.environ.get("AIOREFTABLE_TEST_GIT") or "git"


def git_version(git: str) -> tuple[int, int]:
    out = subprocess.run([git, "--version"], capture_output=True, text=True, check=True).stdout
    parts = out.split()[2].split(".")
    return int(parts[0]), int(parts[1])


def run_git(git: str, repo: Path, *args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(
        [git, *args], cwd=repo, input=data, capture_output=True, env=git_env(), check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode().strip()}")
    return proc.stdout.decode()


def worktree_of(repo: Path) -> Path:
    """Where a repository's linked worktree lives (beside it)."""
    return repo.parent / (repo.name + "-wt")


def counter_names(profile: Profile) -> list[str]:
    return [f"{COUNTER_PREFIX}{i}" for i in range(profile.counters)]


def make_chain(git: str, repo: Path, length: int) -> list[str]:
    """``length`` commits, each the parent of the next (git fast-import); their ids."""
    lines = []
    for n in range(length):
        msg = f"c{n}\n".encode()
        lines.append(b"commit refs/stress/chain\n")
        lines.append(f"mark :{n + 1}\n".encode())
        lines.append(b"committer Stress Harness <stress@example.com> 1700000000 +0000\n")
        lines.append(f"data {len(msg)}\n".encode() + msg + b"\n")
    marks = repo / ".git" / "stress-marks"
    run_git(git, repo, "fast-import", "--quiet", f"--export-marks={marks}", data=b"".join(lines))
    by_mark: dict[int, str] = {}
    for line in marks.read_text().splitlines():
        mark, oid = line.split()
        by_mark[int(mark[1:])] = oid
    marks.unlink()
    return [by_mark[n + 1] for n in range(length)]


def create_repo(git: str, repo: Path, profile: Profile) -> list[str]:
    """A reftable repository ready for ``profile``; returns the chain of commit ids."""
    repo.mkdir(parents=True)
    run_git(git, repo, "init", "-q", "--ref-format=reftable", "-b", "main", ".")
    run_git(git, repo, "config", "reftable.lockTimeout", str(profile.lock_timeout_ms))
    chain = make_chain(git, repo, profile.chain_length)
    stdin = [f"create {name} {chain[0]}\n" for name in counter_names(profile)]
    run_git(
        git, repo, "update-ref", "-m", "stress: counter", "--stdin", data="".join(stdin).encode()
    )
    if profile.preload_refs:
        stdin = [
            f"create refs/preload/{n:06d} {chain[n % len(chain)]}\n"
            for n in range(profile.preload_refs)
        ]
        run_git(git, repo, "update-ref", "--stdin", data="".join(stdin).encode())
    if profile.worktree:
        run_git(git, repo, "worktree", "add", "-q", "--detach", str(worktree_of(repo)), chain[0])
    if profile.stale_table_lock:
        tables = (repo / ".git" / "reftable" / "tables.list").read_text().split()
        (repo / ".git" / "reftable" / (tables[0] + ".lock")).write_bytes(b"")
    return chain


@dataclass
class Leftovers:
    """Files of one stack that only an interrupted writer leaves behind."""

    list_lock: list[str]
    table_locks: list[str]
    our_temps: list[str]
    git_temps: list[str]
    unlisted_tables: list[str]

    def total(self) -> int:
        return (
            len(self.list_lock)
            + len(self.table_locks)
            + len(self.our_temps)
            + len(self.git_temps)
            + len(self.unlisted_tables)
        )


def scan(stack_dir: Path) -> Leftovers:
    """What lies in ``stack_dir`` besides ``tables.list`` and the listed tables."""
    try:
        listed = set((stack_dir / "tables.list").read_text().split())
    except FileNotFoundError:
        listed = set()
    found = Leftovers([], [], [], [], [])
    for name in sorted(os.listdir(stack_dir)):
        if name == "tables.list.lock":
            found.list_lock.append(name)
        elif name.endswith(".ref.lock"):
            found.table_locks.append(name)
        elif ".temp.aioreftable-" in name:
            found.our_temps.append(name)
        elif ".temp." in name:
            found.git_temps.append(name)
        elif name.endswith(".ref") and name not in listed:
            found.unlisted_tables.append(name)
    return found


def remove_abandoned_locks(stack_dir: Path, found: Leftovers) -> int:
    """The harness's policy, applied only while no writer of the run is alive or every
    live one is paused outside the library (so no live process holds a lock): every lock
    file then belongs to a killed process and is proven abandoned; remove it. Temp files
    and unlisted tables stay for ``clean()``/``pack_refs()`` (they block nobody)."""
    removed = 0
    for name in found.list_lock + found.table_locks:
        try:
            (stack_dir / name).unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
