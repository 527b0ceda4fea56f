"""`aioreftable demo`: write a realistic one-table stack, read it back, print refs and stats."""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import tempfile
from pathlib import Path

from ..lowlevel import LogRecord, RefRecord, TableReader, TableWriter, WriteOptions

IDENTITIES = [
    (b"Ada Lovelace", b"ada@example.com", 100),
    (b"Grace Hopper", b"grace@example.com", -500),
    (b"Linus Torvalds", b"torvalds@example.org", -800),
    (b"Ch\xc3\xa9rie Dupont", b"cherie@example.fr", 100),
    (b"Ravi Kumar", b"ravi@example.in", 530),
]


def _oid(seed: str) -> bytes:
    return hashlib.sha1(seed.encode()).digest()


def build_records(n_refs: int, seed: int = 1) -> tuple[list[RefRecord], list[LogRecord]]:
    """Refs shaped like a busy hosting repository, plus reflogs of the branches."""
    rng = random.Random(seed)
    names: set[bytes] = set()
    topics = ["api", "ui", "db", "docs", "ci", "perf", "auth", "build"]
    while len(names) < n_refs:
        kind = rng.random()
        if kind < 0.35:
            names.add(b"refs/pull/%d/head" % rng.randrange(1, 50_000))
        elif kind < 0.6:
            topic = rng.choice(topics)
            names.add(f"refs/heads/{topic}/issue-{rng.randrange(1, 9999)}".encode())
        elif kind < 0.8:
            names.add(f"refs/remotes/origin/{rng.choice(topics)}-{rng.randrange(1000)}".encode())
        else:
            names.add(
                f"refs/tags/v{rng.randrange(5)}.{rng.randrange(30)}.{rng.randrange(20)}".encode()
            )
    names.add(b"refs/heads/main")
    refs = [RefRecord.symref(b"HEAD", 1, b"refs/heads/main")]
    for name in sorted(names):
        if name.startswith(b"refs/tags/") and rng.random() < 0.5:
            refs.append(RefRecord.val2(name, 1, _oid("tag" + name.decode()), _oid(name.decode())))
        else:
            refs.append(RefRecord.val1(name, 1, _oid(name.decode())))
    logs = []
    zero = bytes(20)
    for ref in refs:
        if not ref.refname.startswith(b"refs/heads/") and ref.refname != b"HEAD":
            continue
        old = zero
        for k in range(rng.randrange(1, 6)):
            new = _oid(f"{ref.refname!r}{k}")
            name, email, tz = rng.choice(IDENTITIES)
            logs.append(
                LogRecord(
                    ref.refname,
                    k + 1,
                    old_id=old,
                    new_id=new,
                    name=name,
                    email=email,
                    time=1_700_000_000 + k * 3600,
                    tz_offset=tz,
                    message=b"commit: change %d" % k if k else b"branch: Created from main",
                )
            )
            old = new
    return refs, logs


def write_stack(directory: Path, refs: list[RefRecord], logs: list[LogRecord]) -> Path:
    """A one-table stack: ``<dir>/reftable/tables.list`` plus the table."""
    max_index = max([1, *(e.update_index for e in logs)])
    writer = TableWriter(WriteOptions())
    writer.set_limits(1, max_index)
    refs = [RefRecord(r.refname, max_index, r.value_type, r.value, r.target_value, r.target)
            for r in refs]  # fmt: skip
    writer.add_refs(refs)
    writer.add_logs(logs)
    data = writer.finish()
    stack = directory / "reftable"
    stack.mkdir(parents=True, exist_ok=True)
    name = f"0x{1:012x}-0x{max_index:012x}-{random.getrandbits(32):08x}.ref"
    (stack / name).write_bytes(data)
    (stack / "tables.list").write_text(name + "\n")
    return stack / name


def run_demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="aioreftable-demo-") as tmp:
        refs, logs = build_records(args.refs)
        path = write_stack(Path(tmp), refs, logs)
        with TableReader.from_path(path) as reader:
            shown = 0
            for rec in reader.iter_refs(b"refs/"):
                if args.limit and shown >= args.limit:
                    break
                print(f"{rec.value.hex()} {rec.refname.decode()}")  # type: ignore[union-attr]
                shown += 1
            stats = reader.stats()
            total = stats.refs.records
            if shown < total - (1 if reader.ref(b"HEAD") else 0):
                print(f"... {total - 1 - shown} more refs (--limit 0 prints all)")
            head = reader.ref(b"HEAD")
            print()
            print(f"stack:      {path.parent}{os.sep}tables.list -> {path.name}")
            print(f"HEAD:       -> {head.target.decode() if head and head.target else '?'}")
            print(f"table:      {stats.size} bytes, version {stats.version}, "
                  f"block size {stats.block_size}")  # fmt: skip
            for label, sec in (("refs", stats.refs), ("objs", stats.objs), ("logs", stats.logs)):
                print(f"{label + ':':<11} {sec.records} records in {sec.blocks} blocks, "
                      f"index {sec.index_blocks} blocks / {sec.index_levels} levels")  # fmt: skip
            print(f"bytes/ref:  {stats.size / max(1, total):.1f} (refs, reflogs and indexes)")
            print(f"obj id len: {stats.obj_id_len}")
    return 0
