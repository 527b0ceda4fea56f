"""A git writer process: real ``git update-ref`` CAS increments of the shared counters,
updates of its own refs, ``git pack-refs`` and ``git reflog expire``, with the same ledger
and control protocol as the aioreftable workers.
``python -m stress.gitworker RUN_DIR GID INCARNATION``."""

from __future__ import annotations

import faulthandler
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from .ledger import Ledger
from .profiles import Profile
from .repos import counter_names, git_env

NULL = "0" * 40


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def pending_command(block: bool) -> str:
    if not block and not select.select([sys.stdin], [], [], 0)[0]:
        return ""
    return sys.stdin.readline().strip() or "stop"


def classify(stderr: str) -> tuple[str, str]:
    """(status, type) of a failed git command: n (nothing written) or u (unknown)."""
    if "but expected" in stderr or "is at " in stderr or "already exists" in stderr:
        return "n", "cas_conflict"
    if "lock" in stderr.lower():
        return "n", "git:LockError"
    return "u", "git:error"


class GitWriter:
    def __init__(self, run_dir: Path, gid: int, incarnation: int):
        run = json.loads((run_dir / "run.json").read_text())
        self.profile = Profile.from_dict(run["profile"])
        self.git: str = run["git"]
        self.repo: str = run["repos"][gid % len(run["repos"])]
        self.chain = (run_dir / "chain.txt").read_text().split()
        self.index = {oid: k for k, oid in enumerate(self.chain)}
        self.counters = counter_names(self.profile)
        self.tag = f"g{gid}-i{incarnation}"
        self.ledger = Ledger(run_dir / "ledgers" / f"{self.tag}.jsonl")
        self.rng = random.Random(f"{self.profile.seed}-g{gid}-{incarnation}")
        self.names = [f"refs/heads/stress-g/{self.tag}/r{n}" for n in range(4)]
        self.values: dict[str, str] = {}
        self.env = git_env()
        if not self.profile.git_autocompact:  # leave the compaction to the gc daemon
            self.env["GIT_TEST_REFTABLE_AUTOCOMPACTION"] = "false"
        self.acked = 0
        self.counts: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.last_sync = time.monotonic()
        self.pending = ""

    def git_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.git, *args], cwd=self.repo, capture_output=True, text=True, env=self.env
        )

    def poll(self) -> str:
        """A command the supervisor sent, kept until ``run`` handles it."""
        if not self.pending:
            self.pending = pending_command(block=False)
        return self.pending

    def next_command(self, block: bool) -> str:
        command = self.pending or pending_command(block)
        self.pending = ""
        return command

    def fail(self, kind: str, detail: str = "") -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.ledger.failure(kind, detail)

    def answer(self, op_id: int, proc: subprocess.CompletedProcess[str], start: float) -> bool:
        if proc.returncode == 0:
            self.ledger.ack(op_id, time.monotonic() - start)
            self.acked += 1
            return True
        status, kind = classify(proc.stderr)
        if proc.args[1] in ("pack-refs", "reflog"):  # no ref changes: nothing to doubt
            status, kind = "n", f"git:{proc.args[1]} failed"
        if status == "n":
            self.ledger.nack(op_id, kind)
        else:
            self.ledger.unknown(op_id, kind)
        self.fail(kind, f"{' '.join(proc.args[1:])}: rc {proc.returncode}: {proc.stderr.strip()}")
        return False

    def counter(self) -> None:
        counter = self.rng.choice(self.counters)
        start = time.monotonic()
        while not self.poll():  # a command from the supervisor ends the retries
            cur = self.git_run("rev-parse", "-q", "--verify", counter).stdout.strip()
            k = self.index.get(cur)
            if k is None:
                self.fail("violation:counter_value_unknown", f"git sees {counter} = {cur}")
                return
            if k + 1 >= len(self.chain):
                self.fail("chain_exhausted")
                return
            op_id = self.ledger.intent("inc", c=counter, frm=k)
            new, old = self.chain[k + 1], self.chain[k]
            proc = self.git_run(
                "update-ref", "-m", f"stress {self.tag} inc {k + 1}", counter, new, old
            )
            if self.answer(op_id, proc, start):
                return
            time.sleep(self.rng.random() / 100)

    def private(self) -> None:
        name = self.rng.choice(self.names)
        old = self.values.get(name)
        start = time.monotonic()
        if old is None or self.rng.random() < 0.7:
            value = self.rng.choice(self.chain)
            if value == old:
                return
            new: str | None = value
            args = ["update-ref", "-m", f"stress {self.tag}", name, value, old or NULL]
        else:
            new = None
            args = ["update-ref", "-d", name, old]
        op_id = self.ledger.intent("set", u=[[name, old, new]])
        if self.answer(op_id, self.git_run(*args), start):
            if new is None:
                self.values.pop(name, None)
            else:
                self.values[name] = new
        else:
            self.resync()

    def resync(self) -> None:
        for name in self.names:
            cur = self.git_run("rev-parse", "-q", "--verify", name).stdout.strip()
            if cur:
                self.values[name] = cur
            else:
                self.values.pop(name, None)

    def pack_refs(self) -> None:
        auto = self.rng.random() < 0.5
        op_id = self.ledger.intent("compact", full=not auto, git=True)
        start = time.monotonic()
        self.answer(op_id, self.git_run("pack-refs", *(["--auto"] if auto else [])), start)

    def expire(self) -> None:
        names = [n for n in self.names if n in self.values]
        if not names:
            return
        name = self.rng.choice(names)
        op_id = self.ledger.intent("expire", name=name, git=True)
        start = time.monotonic()
        self.answer(op_id, self.git_run("reflog", "expire", "--expire=now", name), start)

    def step(self) -> None:
        kinds, weights = self.profile.git_weight_list()
        kind = self.rng.choices(kinds, weights)[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        getattr(self, kind)()
        if time.monotonic() - self.last_sync > 0.1:
            os.fsync(self.ledger.fd)
            self.last_sync = time.monotonic()
            self.ledger.write(
                {
                    "k": "s",
                    "t": round(time.time(), 3),
                    "counts": self.counts,
                    "failures": self.failures,
                }
            )

    def run(self) -> None:
        quota = self.profile.ops_per_worker
        say("ready")
        command = ""
        while command != "stop":
            if quota and self.acked >= quota:
                say("done")
                command = self.next_command(block=True)
            else:
                command = self.next_command(block=False)
            if command == "pause":
                say("paused")
                while command not in ("resume", "stop"):
                    command = self.next_command(block=True)
                if command == "resume":
                    say("ready")
                continue
            if command != "stop" and not (quota and self.acked >= quota):
                self.step()
        self.ledger.write(
            {
                "k": "s",
                "t": round(time.time(), 3),
                "counts": self.counts,
                "failures": self.failures,
                "final": True,
            }
        )
        self.ledger.close()
        say("stopped")


def main() -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    GitWriter(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])).run()


if __name__ == "__main__":
    main()
