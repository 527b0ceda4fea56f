"""Per-worker ledgers: one JSON line per record, appended with one write() each and
fsynced in groups; read back (a torn last line of a killed worker is ignored).

Records (``k`` is the kind):

* ``{"k": "i", "id": n, "op": ..., ...}``: intent, written before the library is called;
* ``{"k": "a", "id": n, "t": wall time, "lat": seconds}``: acknowledged (the library
  returned success), written after it returned;
* ``{"k": "n", "id": n, "e": type}``: not applied (a typed error that guarantees nothing
  was written: a failed old-value check, a LockError);
* ``{"k": "u", "id": n, "e": type}``: outcome unknown (cancelled, an unexpected error);
* ``{"k": "f", "e": type, "t": ...}``: a failure that is no operation (a reader's check);
* ``{"k": "s", ...}``: statistics of the worker's stacks;
* ``{"k": "w", "c": {counter: [first, last]}, "n": changes}``: a change-feed session (the
  counter values its consumer saw, every step between them exactly once).

An intent with no answer (the worker was killed) is *in doubt*, like ``u``: the write may
or may not have happened. Verification accepts either outcome for those, and only those.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

GROUP_FSYNC_SECONDS = 0.1


class Ledger:
    """Appends records to one file. ``write`` is one ``write()`` of one line (O_APPEND), so
    a SIGKILL cannot lose a record once it returned (it is in the page cache); ``run_fsync``
    fsyncs every 0.1 s while records were written, and ``close`` once more."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.next_id = 0
        self.dirty = False

    def write(self, record: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        self.dirty = True

    def intent(self, op: str, **fields: Any) -> int:
        self.next_id += 1
        self.write({"k": "i", "id": self.next_id, "op": op, **fields})
        return self.next_id

    def ack(self, op_id: int, latency: float) -> None:
        self.write({"k": "a", "id": op_id, "t": round(time.time(), 4), "lat": round(latency, 6)})

    def nack(self, op_id: int, error: str) -> None:
        self.write({"k": "n", "id": op_id, "e": error, "t": round(time.time(), 4)})

    def unknown(self, op_id: int, error: str) -> None:
        self.write({"k": "u", "id": op_id, "e": error, "t": round(time.time(), 4)})

    def failure(self, error: str, detail: str = "") -> None:
        self.write({"k": "f", "e": error, "d": detail[:500], "t": round(time.time(), 4)})

    async def run_fsync(self) -> None:
        """Fsync in groups until cancelled."""
        while True:
            await anyio.sleep(GROUP_FSYNC_SECONDS)
            await self.sync()

    async def sync(self) -> None:
        if self.dirty:
            self.dirty = False
            await anyio.to_thread.run_sync(os.fsync, self.fd)

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


@dataclass
class Op:
    """One intent and its answer, as read back from a ledger."""

    worker: str  # ledger file stem: w3-i2 (aioreftable worker 3, incarnation 2) or g1-i0
    op_id: int
    op: str
    fields: dict[str, Any]
    status: str = "doubt"  # ack, nack, unknown, doubt (no answer: killed)
    error: str = ""
    t: float = 0.0
    latency: float = 0.0


@dataclass
class LedgerData:
    ops: list[Op] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    feeds: list[dict[str, Any]] = field(default_factory=list)
    torn_lines: int = 0
    corrupt_lines: list[str] = field(default_factory=list)


def read_ledger(path: Path, data: LedgerData) -> None:
    """Add the records of one ledger file to ``data`` (ops in the order written)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:  # no final LF: the worker died inside write(); the record never counted
        lines.pop()
        data.torn_lines += 1
    by_id: dict[int, Op] = {}
    for number, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
            kind = rec["k"]
        except (ValueError, KeyError, TypeError):
            data.corrupt_lines.append(f"{path.name}:{number}")
            continue
        if kind == "i":
            fields = {k: v for k, v in rec.items() if k not in ("k", "id", "op")}
            op = Op(path.stem, rec["id"], rec["op"], fields)
            by_id[rec["id"]] = op
            data.ops.append(op)
        elif kind in ("a", "n", "u"):
            target = by_id.get(rec["id"])
            if target is None:
                data.corrupt_lines.append(f"{path.name}:{number}")
                continue
            target.status = {"a": "ack", "n": "nack", "u": "unknown"}[kind]
            target.error = rec.get("e", "")
            target.t = rec.get("t", 0.0)
            target.latency = rec.get("lat", 0.0)
        elif kind == "f":
            data.failures.append(rec)
        elif kind == "w":
            rec["file"] = path.stem
            data.feeds.append(rec)
        elif kind == "s":
            rec["file"] = path.stem
            data.stats.append(rec)


def read_all(directory: Path) -> LedgerData:
    data = LedgerData()
    for path in sorted(directory.glob("*.jsonl")):
        read_ledger(path, data)
    return data


def iter_acked(data: LedgerData) -> Iterator[Op]:
    return (op for op in data.ops if op.status == "ack")
