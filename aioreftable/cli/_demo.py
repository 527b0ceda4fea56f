"""`aioreftable demo`: a live repository: concurrent writers and readers, compaction, output."""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .. import (
    IncorrectOldValueError,
    RefExistsError,
    RefStore,
    init_repo,
    open_ref_store,
)

IDENTITY = {
    "GIT_COMMITTER_NAME": "aioreftable demo",
    "GIT_COMMITTER_EMAIL": "demo@aioreftable.invalid",
}
TOPICS = ["api", "ui", "db", "docs", "ci", "perf", "auth", "build"]


def ref_names(n: int, seed: int = 1) -> list[str]:
    """Names shaped like a busy hosting repository's."""
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < n:
        kind = rng.random()
        if kind < 0.35:
            names.add(f"refs/pull/{rng.randrange(1, 50_000)}/head")
        elif kind < 0.6:
            names.add(f"refs/heads/{rng.choice(TOPICS)}/issue-{rng.randrange(1, 9999)}")
        elif kind < 0.8:
            names.add(f"refs/remotes/origin/{rng.choice(TOPICS)}-{rng.randrange(1000)}")
        else:
            names.add(f"refs/tags/v{rng.randrange(5)}.{rng.randrange(30)}.{rng.randrange(20)}")
    names.discard("refs/heads/main")
    return sorted(names)


def make_objects(objects: Path, n_commits: int, n_tags: int) -> tuple[list[str], list[str]]:
    """A chain of real commits and annotated tags, written with dulwich (sha1)."""
    from dulwich.object_store import DiskObjectStore
    from dulwich.objects import Blob, Commit, ObjectID, Tag, Tree

    store = DiskObjectStore(str(objects))
    commits: list[str] = []
    parent: ObjectID | None = None
    who = b"A U Thor <author@example.com>"
    for i in range(n_commits):
        blob = Blob.from_string(b"version %d\n" % i)
        tree = Tree()
        tree.add(b"file.txt", 0o100644, blob.id)
        commit = Commit()
        commit.tree = tree.id
        commit.parents = [parent] if parent else []
        commit.author = commit.committer = who
        commit.author_time = commit.commit_time = 1_700_000_000 + i * 60
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"change %d\n" % i
        for obj in (blob, tree, commit):
            store.add_object(obj)
        commits.append(commit.id.decode())
        parent = commit.id
    tags: list[str] = []
    for i in range(n_tags):
        tag = Tag()
        tag.object = (Commit, commits[i * len(commits) // max(1, n_tags)].encode())
        tag.name = b"release-%d" % i
        tag.tagger = who
        tag.tag_time = 1_700_100_000 + i
        tag.tag_timezone = 0
        tag.message = b"release %d\n" % i
        store.add_object(tag)
        tags.append(tag.id.decode())
    return commits, tags


@dataclass
class Tally:
    commits: int = 0
    cas_conflicts: int = 0
    create_conflicts: int = 0
    reads: int = 0
    writers_done: int = 0
    seen_main: set[str] = field(default_factory=set)


async def cas_writer(store: RefStore, chain: list[str], steps: int, wid: int, t: Tally) -> None:
    """Advance refs/heads/main along the commit chain with compare-and-swap, and race the
    other writers to create shared branches."""
    position = {oid: i for i, oid in enumerate(chain)}
    for step in range(steps):
        while True:
            current = await store.resolve("refs/heads/main")
            assert current is not None
            nxt = chain[min(position[current] + 1, len(chain) - 1)]
            try:
                async with store.transaction(message=f"demo: writer {wid} step {step}") as tx:
                    tx.update("refs/heads/main", nxt, old=current)
                t.commits += 1
                break
            except IncorrectOldValueError:
                t.cas_conflicts += 1  # someone else moved main first: read again, retry
        try:
            async with store.transaction(message=f"demo: writer {wid} claims {step}") as tx:
                tx.create(f"refs/heads/claimed/{step}", chain[step % len(chain)])
            t.commits += 1
        except RefExistsError:
            t.create_conflicts += 1  # another writer claimed it first
    t.writers_done += 1


async def reader(store: RefStore, writers: int, t: Tally) -> None:
    while t.writers_done < writers:
        heads = [ref async for ref in store.iterate("refs/heads/")]
        assert heads, "a reader always sees a complete stack"
        main = await store.resolve("HEAD")
        if main:
            t.seen_main.add(main)
        t.reads += 1
        await anyio.sleep(0.01)  # a reader polling, not spinning


async def _run(args: argparse.Namespace, root: Path) -> int:
    t0 = time.perf_counter()
    layout = await init_repo(root)
    # Several writers in one process queue on the list lock; git's default 100 ms budget
    # is for occasional contention, so a busy server raises it, as here.
    config = layout.common_dir / "config"
    await anyio.Path(config).write_text(
        await anyio.Path(config).read_text() + "[reftable]\n\tlockTimeout = 10000\n"
    )
    n_commits = max(2, args.writers * args.steps + 1)
    chain, tags = await anyio.to_thread.run_sync(
        make_objects, layout.common_dir / "objects", n_commits, 8
    )
    env = {**os.environ, **IDENTITY}
    names = ref_names(args.refs)
    t = Tally()
    async with open_ref_store(root, env=env) as store:
        rng = random.Random(2)
        async with store.transaction(message="demo: initial push") as tx:
            tx.create("refs/heads/main", chain[0])
            for i, name in enumerate(names):
                if name.startswith("refs/tags/") and i % 3 == 0:
                    tx.create(name, tags[i % len(tags)])  # annotated: stored with its peeled id
                else:
                    tx.create(name, chain[rng.randrange(len(chain))])
        t.commits += 1
        async with anyio.create_task_group() as tg:
            for w in range(args.writers):
                tg.start_soon(cas_writer, store, chain, args.steps, w, t)
            for _ in range(2):
                tg.start_soon(reader, store, args.writers, t)
        shown = 0
        total = 0
        head = await store.read("HEAD")
        head_oid = await store.resolve("HEAD")
        print(f"{head_oid} HEAD")
        async for ref in store.iterate():
            total += 1
            oid = ref.oid if ref.oid is not None else await store.resolve(ref.name)
            if oid is None or (args.limit and shown >= args.limit):
                continue
            print(f"{oid} {ref.name}")
            if ref.peeled:
                print(f"{ref.peeled} {ref.name}^{{}}")
            shown += 1
        if shown < total:
            print(f"... {total - shown} more refs (--limit 0 prints all)")
        print()
        reflog = await store.reflog("refs/heads/main")
        print(f"reflog of refs/heads/main ({len(reflog)} entries, newest first):")
        for i, entry in enumerate(reflog[:5]):
            print(f"  {entry.new[:12]} main@{{{i}}}: {entry.message.rstrip()}")
        stats = store.statistics()
    elapsed = time.perf_counter() - t0
    target = head.target if head else "?"
    print()
    kept = "" if args.dir else ", temporary: removed on exit; --dir keeps it"
    print(f"repository: {root} (HEAD -> {target}{kept})")
    print(
        f"writers:    {args.writers} tasks x {args.steps} steps: {t.commits} commits, "
        f"{t.cas_conflicts} compare-and-swap retries, {t.create_conflicts} lost races"
    )
    print(f"readers:    {t.reads} consistent reads, saw {len(t.seen_main)} values of main")
    print(
        f"stack:      {stats.tables} tables, {stats.bytes} bytes, {stats.additions} additions, "
        f"{stats.compactions} compactions ({stats.compactions_failed} lock conflicts), "
        f"{stats.entries_written} entries rewritten"
    )
    print(f"time:       {elapsed:.2f} s")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="a repository with concurrent writers, readers and compaction")
    p.add_argument("--dir", help="create the repository here and keep it")
    p.add_argument("--refs", type=int, default=3000, help="number of refs (default 3000)")
    p.add_argument("--writers", type=int, default=4, help="concurrent writers (default 4)")
    p.add_argument("--steps", type=int, default=10, help="commits per writer (default 10)")
    p.add_argument("--limit", type=int, default=20, help="print at most N refs (0 = all)")
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.dir:
        root = Path(args.dir)
        if root.exists() and any(root.iterdir()):
            print(
                f"fatal: destination path '{root}' already exists and is not an empty directory",
                file=sys.stderr,
            )
            return 128
        return anyio.run(_run, args, root)
    with tempfile.TemporaryDirectory(prefix="aioreftable-demo-") as tmp:
        return anyio.run(_run, args, Path(tmp) / "repo")
