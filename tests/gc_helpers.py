"""Helpers for the gc daemon tests: repositories git writes without auto-compaction, the
geometric check, the daemon as a subprocess with JSON logs, and a metrics scrape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conftest import Git
from prometheus_client.parser import text_string_to_metric_families

from aioreftable.lowlevel import TableReader, suggest_compaction_segment

NO_COMPACT = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
ROOT = Path(__file__).resolve().parent.parent


def make_repo(git: Git, path: Path, *, bare: bool = False, refs: int = 0) -> str:
    """A reftable repository with one commit and ``refs`` branches, each written by its own
    ``git update-ref`` with auto-compaction off (one table each). Returns the commit id."""
    args = ["init", "-q", "--ref-format=reftable", "-b", "main", *(["--bare"] if bare else [])]
    git(*args, str(path), env=NO_COMPACT)
    tree = git("hash-object", "-t", "tree", "-w", "--stdin", cwd=path, input="").strip()
    oid = git("commit-tree", tree, "-m", "first", cwd=path).strip()
    git("update-ref", "-m", "first", "refs/heads/main", oid, cwd=path, env=NO_COMPACT)
    for i in range(refs):
        git("update-ref", "-m", f"b{i}", f"refs/heads/b{i}", oid, cwd=path, env=NO_COMPACT)
    return oid


def listed(stack_dir: Path) -> list[str]:
    try:
        return [n for n in (stack_dir / "tables.list").read_text().split("\n") if n]
    except FileNotFoundError:
        return []


def effective_sizes(stack_dir: Path) -> list[int]:
    sizes = []
    for name in listed(stack_dir):
        with TableReader.from_path(stack_dir / name) as reader:
            sizes.append(reader.size - (reader.header_size - 1))
    return sizes


def is_geometric(stack_dir: Path, factor: int = 2) -> bool:
    try:
        return suggest_compaction_segment(effective_sizes(stack_dir), factor) is None
    except FileNotFoundError:  # compacted away while we looked
        return False


def leftovers(stack_dir: Path) -> list[str]:
    """Lock files and temporary tables in a stack directory."""
    return sorted(n for n in os.listdir(stack_dir) if n.endswith(".lock") or ".temp." in n)


def wait_for(what: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(step)
    return what()


class Daemon:
    """``aioreftable gc --daemon`` as a subprocess, logging JSON lines to a file."""

    def __init__(
        self, log: Path, roots: Sequence[Path], *args: str, env: dict[str, str] | None = None
    ):
        self.log = log
        command = [sys.executable, "-m", "aioreftable", "gc", "--daemon", "--log-format=json"]
        command += [*map(str, roots), *args]
        self._out = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            command, cwd=ROOT, stdout=self._out, stderr=self._out, env={**os.environ, **(env or {})}
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                out.append(event)
        return out

    def wait_event(self, name: str, timeout: float = 20.0, count: int = 1) -> dict[str, Any]:
        if not wait_for(lambda: len(self.events(name)) >= count or self.proc.poll() is not None,
                        timeout):  # fmt: skip
            raise AssertionError(f"no {name!r} event in {timeout} s:\n{self.log.read_text()}")
        found = self.events(name)
        assert len(found) >= count, f"daemon exited:\n{self.log.read_text()}"
        return found[count - 1]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
        """Send ``sig``; return the exit status and the seconds until the exit."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            status = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._out.close()
        return status, time.monotonic() - start


def scrape(port: int) -> dict[str, float]:
    """The samples of ``http://127.0.0.1:port/metrics``, by name with labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return parse_metrics(text)


def parse_metrics(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples
