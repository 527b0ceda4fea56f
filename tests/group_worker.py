"""Worker for the group-commit crash test: ``python group_worker.py REPO OID TASKS``.

TASKS tasks create refs ``refs/heads/p<pid>-<task>-<n>`` one transaction each, forever,
through one store with group commit; each name is printed (and flushed) only after its
transaction returned, so every printed name was acknowledged as durable."""

from __future__ import annotations

import os
import sys

import anyio

from aioreftable import open_ref_store


async def main(repo: str, oid: str, tasks: int) -> None:
    pid = os.getpid()
    async with open_ref_store(repo, object_database=False) as store:

        async def writer(task: int) -> None:
            n = 0
            while True:
                name = f"refs/heads/p{pid}-{task}-{n}"
                async with store.transaction(message="crash test") as tx:
                    tx.create(name, oid)
                sys.stdout.write(name + "\n")
                sys.stdout.flush()
                n += 1

        async with anyio.create_task_group() as tg:
            for task in range(tasks):
                tg.start_soon(writer, task)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
