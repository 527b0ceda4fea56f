"""GcDaemon and serve_gc: start-up, change sources, workers, a pass's bookkeeping, shutdown."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

import anyio
import anyio.abc
import anyio.to_thread

from ._discovery import find_stacks, list_key
from ._locks import DirScan, break_stale_lock, scan_stack_dir
from ._logs import log_event
from ._maintain import Pass, Plan, run_pass
from ._metrics import GcMetrics, serve_metrics
from ._schedule import Entry, Schedule
from ._settings import GcSettings
from ._watch import poll_keys, watch_lists

__all__ = ["GcDaemon", "serve_gc"]

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR
# discovery must not be redirected by the daemon's own environment
_REPOSITORY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE")
_SHUTDOWN_CLEANUP = 1.5  # seconds kept for abandoning steps after the grace period


def _scan(stack_dir: str, now: float, stale_age: float) -> tuple[int, DirScan]:
    return list_key(stack_dir), scan_stack_dir(stack_dir, now, stale_age)


def _scan_many(dirs: list[str], now: float, stale_age: float) -> list[tuple[int, DirScan]]:
    """``_scan`` of many stacks in one unit of work (start-up, sweeps, new repositories)."""
    return [_scan(d, now, stale_age) for d in dirs]


_BATCH = 2000  # stacks per unit of work of a triage


class GcDaemon:
    """The gc daemon. Run it with :func:`serve_gc` (which hands it out through
    ``task_status``) or ``await daemon.run()``; :meth:`stop` shuts it down gracefully."""

    def __init__(
        self,
        settings: GcSettings,
        metrics: GcMetrics | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.settings = settings
        self.metrics = metrics or GcMetrics()
        base = os.environ if env is None else env
        self._env = {k: v for k, v in base.items() if k not in _REPOSITORY_ENV}
        self._schedule = Schedule(settings.retry_delay, settings.max_retry_delay)
        self._entries = self._schedule.entries  # by stack directory
        self._enqueue = self._schedule.enqueue
        self._started = anyio.Event()
        self._startup = anyio.CancelScope()
        self._stopping = False
        self._stop = anyio.Event()
        self._set_changed = anyio.Event()
        self._reported: set[str] = set()  # files-backend repositories, errors, stale locks
        self._stale_total = 0
        self.metrics_port: int | None = None
        self.watch_mode = "starting"
        self.passes = 0

    # -- public ------------------------------------------------------------------------------
    @property
    def stacks(self) -> list[str]:
        """The stack directories watched."""
        return list(self._entries)

    def stop(self) -> None:
        """Start a graceful shutdown: no new steps; running ones get ``shutdown_timeout``
        (less a moment for abandoning them) to finish. During start-up, discovery is
        abandoned at once."""
        self._stopping = self._schedule.stopping = True
        self._stop.set()
        self._startup.cancel()

    def busy(self) -> bool:
        """Whether a stack is queued, being worked on, or deferred for a moment (a writer
        at work, a compaction just done); stacks waiting after a give-up do not count."""
        return self._schedule.pending()

    async def wait_settled(self) -> None:
        """Wait until the daemon has started and no stack is queued or being worked on
        (one-shot runs, tests, benchmarks)."""
        await self._started.wait()
        while self.busy():
            await self._schedule.wait_idle()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[GcDaemon] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        s = self.settings
        if s.metrics_port is not None or s.metrics_file:
            await anyio.to_thread.run_sync(self.metrics.add_process_metrics)
        try:
            await self._run(task_status)
        finally:
            self._schedule.close()
        if s.metrics_file:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await anyio.to_thread.run_sync(self.metrics.write_file, s.metrics_file)
        log_event(INFO, "stopped", passes=self.passes)

    async def _run(self, task_status: anyio.abc.TaskStatus[GcDaemon]) -> None:
        s = self.settings
        begun = time.monotonic()
        async with anyio.create_task_group() as tg:
            with self._startup:
                await self._start(tg)
            self._started.set()
            if not self._stopping:
                tg.start_soon(self._first_pass_done, begun)
            task_status.started(self)
            await self._stop.wait()
            log_event(INFO, "stopping", running=self._schedule.busy)
            grace = max(0.0, s.shutdown_timeout - _SHUTDOWN_CLEANUP)
            with anyio.move_on_after(grace):
                while self._schedule.busy:
                    await self._schedule.wait_idle()
            tg.cancel_scope.cancel()

    async def _start(self, tg: anyio.abc.TaskGroup) -> None:
        """Metrics endpoint, discovery, watches, then the workers and the loops."""
        s = self.settings
        if s.metrics_port is not None:
            self.metrics_port = await tg.start(serve_metrics, self.metrics, s.metrics_port)
            log_event(INFO, "metrics_listening", host="127.0.0.1", port=self.metrics_port)
        await self._rescan(initial=True)
        watching = anyio.Event()
        tg.start_soon(self._watch_loop, watching)
        with anyio.move_on_after(5):
            await watching.wait()
        for _ in range(s.concurrency):
            tg.start_soon(self._worker)
        await self._triage(list(self._entries), "start")
        tg.start_soon(self._sweep_loop)
        tg.start_soon(self._rescan_loop)
        tg.start_soon(self._schedule.retry_loop)
        if s.metrics_file:
            tg.start_soon(self._metrics_file_loop, s.metrics_file)
        log_event(INFO, "started", roots=list(s.roots), repositories=self._repository_count(),
                  stacks=len(self._entries), watch=self.watch_mode)  # fmt: skip

    async def _first_pass_done(self, begun: float) -> None:
        await self.wait_settled()
        log_event(INFO, "first_pass_done", stacks=len(self._entries), passes=self.passes,
                  seconds=round(time.monotonic() - begun, 3))  # fmt: skip

    # -- workers -----------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            entry = await self._schedule.take()
            try:
                await self._maintain(entry)
            finally:
                self._schedule.finish(entry)

    # -- one pass ----------------------------------------------------------------------------
    def _live(self, entry: Entry) -> bool:
        """Whether ``entry`` is still watched (a rescan may drop it during a pass)."""
        return self._entries.get(entry.ref.stack_dir) is entry

    def _set_tables(self, entry: Entry, tables: int) -> None:
        if entry.tables != tables and self._live(entry):
            self.metrics.move_tables(entry.tables, tables)
            entry.tables = tables

    def _due(self, entry: Entry, now: float) -> tuple[bool, bool]:
        """(full compaction due, reflog expiry due) for ``entry``'s policy."""
        s = self.settings
        policy = s.policy_for(entry.ref.git_dir)
        full = policy.full_compaction_interval
        full_due = full is not None and now - entry.last_full >= full
        expire_due = (
            policy.reflog_expire is not None and now - entry.last_expire >= s.reflog_expire_interval
        )
        return full_due, expire_due

    async def _maintain(self, entry: Entry) -> None:
        s, ref = self.settings, entry.ref
        policy = s.policy_for(ref.git_dir)
        if not policy.enabled:
            return
        now = time.time()
        key, scan = await anyio.to_thread.run_sync(_scan, ref.stack_dir, now, s.stale_lock_age)
        if not self._live(entry):
            return
        self._set_tables(entry, scan.tables)
        await self._stale_locks(entry, scan)
        full_due, expire_due = self._due(entry, now)
        if key == entry.key and not (full_due or expire_due or scan.leftovers):
            return
        if scan.tables < 2 and not (expire_due or scan.leftovers):
            entry.key = key
            return
        wait = entry.last_compaction + s.compaction_interval - time.monotonic()
        if scan.tables < s.busy_tables and not (full_due or expire_due):
            # a writer is at work: compact in the pause after its burst, not between commits
            wait = max(wait, s.quiet_period - scan.list_age)
        if wait > 0:  # compacted a moment ago, or being written: come back later
            self._schedule.defer(entry, wait)
            return
        plan = Plan(
            stack_dir=ref.stack_dir,
            git_dir=ref.git_dir,
            lock_timeout=s.lock_timeout,
            max_tables=s.max_tables,
            tables_per_step=s.tables_per_step,
            step_pause=s.step_pause,
            full=full_due,
            reflog_cutoff=int(now - policy.reflog_expire)
            if expire_due and policy.reflog_expire is not None
            else None,
            clean=s.clean,
            leftovers=scan.leftovers,
            env=self._env,
        )
        self.metrics.checks.inc()
        self.passes += 1
        try:
            done = await run_pass(plan)
        except Exception as exc:  # a broken repository must not stop the daemon
            kind = type(exc).__name__
            self.metrics.failures.labels(kind).inc()
            delay = self._schedule.retry_later(entry)
            log_event(WARNING, "failed", stack=ref.stack_dir, kind=kind, error=str(exc),
                      retry_in=round(delay, 3))  # fmt: skip
            return
        self._record(entry, plan, done, key, now)

    def _record(self, entry: Entry, plan: Plan, done: Pass, key: int, now: float) -> None:
        m, ref = self.metrics, entry.ref
        self._set_tables(entry, done.tables_after)
        if done.lock_waits:
            m.lock_waits.inc(done.lock_waits)
            m.lock_wait_seconds.inc(done.lock_wait_seconds)
        if done.kind is not None:
            entry.last_compaction = time.monotonic()
            m.compactions.labels(done.kind).inc(done.compactions)
            m.compaction_seconds.labels(done.kind).observe(done.seconds)
            m.bytes_reclaimed.inc(max(0, done.bytes_before - done.bytes_after))
            log_event(INFO, "compacted", stack=ref.stack_dir, kind=done.kind,
                      compactions=done.compactions, tables_before=done.tables_before,
                      tables_after=done.tables_after, bytes_before=done.bytes_before,
                      bytes_after=done.bytes_after, seconds=round(done.seconds, 4))  # fmt: skip
        if done.expired_entries:
            m.reflog_expired.inc(done.expired_entries)
            log_event(INFO, "reflog_expired", stack=ref.stack_dir, refs=done.expired_refs,
                      entries=done.expired_entries, cutoff=plan.reflog_cutoff)  # fmt: skip
        if done.cleaned:
            m.tables_cleaned.inc(len(done.cleaned))
            log_event(INFO, "cleaned", stack=ref.stack_dir, removed=done.cleaned)
        if done.gave_up is not None:
            m.giveups.labels(done.gave_up).inc()
            delay = self._schedule.retry_later(entry)
            log_event(INFO, "gave_up", stack=ref.stack_dir, reason=done.gave_up,
                      retry_in=round(delay, 3))  # fmt: skip
            return
        entry.delay = 0.0
        if plan.full:
            entry.last_full = now
        if plan.reflog_cutoff is not None:
            entry.last_expire = now
        changed = done.compactions or done.expired_entries
        entry.key = 0 if changed else key  # our own commit: look once more
        if done.more:
            entry.again = True  # a deep stack: the next pass continues

    async def _stale_locks(self, entry: Entry, scan: DirScan) -> None:
        s, m = self.settings, self.metrics
        if entry.stale > len(scan.stale_locks):  # some went away: report them again if back
            current = {f.path for f in scan.stale_locks}
            prefix = os.path.join(entry.ref.stack_dir, "")
            gone = [p for p in self._reported if p.startswith(prefix) and p not in current]
            self._reported.difference_update(gone)
        self._stale_total += len(scan.stale_locks) - entry.stale
        entry.stale = len(scan.stale_locks)
        for finding in scan.stale_locks:
            if finding.path not in self._reported:
                self._reported.add(finding.path)
                log_event(WARNING, "stale_lock", path=finding.path, kind=finding.kind,
                          age=round(finding.age, 1))  # fmt: skip
            if finding.kind != "list" or not s.break_stale_locks:
                continue
            outcome = await anyio.to_thread.run_sync(
                break_stale_lock, finding.path, time.time(), s.stale_lock_age
            )
            if not self._live(entry):
                return  # dropped by a rescan meanwhile (its counts went with it)
            level = INFO if outcome == "removed" else WARNING
            log_event(level, "stale_lock_" + ("broken" if outcome == "removed" else "kept"),
                      path=finding.path, outcome=outcome)  # fmt: skip
            if outcome in ("removed", "gone"):
                self._reported.discard(finding.path)
                entry.stale -= 1
                self._stale_total -= 1
                if outcome == "removed":
                    m.locks_broken.inc()
        m.stale_locks.set(self._stale_total)

    # -- change sources ----------------------------------------------------------------------
    def _on_changed(self, dirs: set[str]) -> None:
        for d in dirs:
            if d in self._entries:
                self.metrics.changes.labels("inotify").inc()
                self._enqueue(d)

    async def _watch_loop(self, watching: anyio.Event) -> None:
        s = self.settings
        while True:
            self._set_changed = changed = anyio.Event()
            dirs = list(self._entries)
            failed: list[Exception] = []
            if s.watch != "poll" and dirs:
                self.watch_mode = "inotify"

                async with anyio.create_task_group() as wtg:
                    wtg.start_soon(self._run_watch, dirs, watching, failed, wtg.cancel_scope)
                    await changed.wait()
                    wtg.cancel_scope.cancel()
                if not failed:
                    continue
                log_event(WARNING, "inotify_unavailable", error=repr(failed[0]), fallback="poll")
                self.metrics.failures.labels("inotify").inc()
            self.watch_mode = "poll" if dirs else "idle"  # idle: no stack to watch yet
            watching.set()
            async with anyio.create_task_group() as ptg:
                ptg.start_soon(self._poll_forever)
                await changed.wait()
                ptg.cancel_scope.cancel()

    async def _run_watch(
        self,
        dirs: list[str],
        watching: anyio.Event,
        failed: list[Exception],
        scope: anyio.CancelScope,
    ) -> None:
        try:
            await watch_lists(dirs, self.settings.debounce, self._on_changed, watching.set)
        except Exception as exc:  # inotify unavailable (limits, file system)
            failed.append(exc)
        scope.cancel()

    async def _poll_forever(self) -> None:
        while True:
            await self._poll_once("poll")
            await anyio.sleep(self.settings.poll_interval)

    async def _poll_once(self, source: str) -> None:
        dirs = list(self._entries)
        keys = await poll_keys(dirs)
        for d, k in zip(dirs, keys, strict=True):
            entry = self._entries.get(d)
            if entry is not None and k != entry.key:
                self.metrics.changes.labels(source).inc()
                self._enqueue(d)

    async def _sweep_loop(self) -> None:
        while True:
            await anyio.sleep(self.settings.sweep_interval)
            await self._triage(list(self._entries), "sweep")

    async def _triage(self, dirs: list[str], source: str) -> None:
        """Look at many stacks in worker-thread batches and queue those that need a pass:
        changed with two tables or more, stale locks, leftovers, or a schedule due. A stack
        of one table that changed is settled here, without a pass."""
        s = self.settings
        for i in range(0, len(dirs), _BATCH):
            batch = dirs[i : i + _BATCH]
            now = time.time()
            found = await anyio.to_thread.run_sync(_scan_many, batch, now, s.stale_lock_age)
            mono = time.monotonic()
            for d, (key, scan) in zip(batch, found, strict=True):
                entry = self._entries.get(d)
                if entry is None or entry.running or entry.retry_at > mono:
                    continue
                self._set_tables(entry, scan.tables)
                changed = key != entry.key
                if changed and entry.key:
                    self.metrics.changes.labels(source).inc()
                look = scan.leftovers or scan.stale_locks or entry.stale
                if look or any(self._due(entry, now)) or (changed and scan.tables >= 2):
                    self._enqueue(d)
                elif changed:
                    entry.key = key

    # -- discovery ---------------------------------------------------------------------------
    def _repository_count(self) -> int:
        return sum(1 for e in self._entries.values() if e.ref.main)

    async def _rescan_loop(self) -> None:
        while True:
            await anyio.sleep(self.settings.rescan_interval)
            await self._rescan(initial=False)

    async def _rescan(self, *, initial: bool) -> None:
        s = self.settings
        # read-only: abandoned (not waited for) when the daemon stops meanwhile
        found = await anyio.to_thread.run_sync(
            find_stacks, s.roots, s.max_depth, abandon_on_cancel=True
        )
        now = time.time()
        new = [p for p in found.stacks if p not in self._entries]
        gone = [p for p in self._entries if p not in found.stacks]
        for path in gone:
            entry = self._schedule.drop(path)
            self.metrics.move_tables(entry.tables, None)
            self._stale_total -= entry.stale
        for path in new:
            self._entries[path] = Entry(found.stacks[path], now)
        for git_dir in sorted(found.files_backend):
            if git_dir not in self._reported:
                self._reported.add(git_dir)
                log_event(INFO, "files_backend_ignored", git_dir=git_dir)
        for path, error in sorted(found.errors.items()):
            if path not in self._reported:
                self._reported.add(path)
                log_event(WARNING, "skipped", path=path, error=error)
        m = self.metrics
        m.repositories.set(self._repository_count())
        m.stacks.set(len(self._entries))
        m.files_backend.set(len(found.files_backend))
        m.stale_locks.set(self._stale_total)
        if (new or gone) and not initial:
            log_event(INFO, "discovered", added=len(new), removed=len(gone),
                      stacks=len(self._entries))  # fmt: skip
            self._set_changed.set()
            await self._triage(new, "rescan")

    async def _metrics_file_loop(self, path: str) -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(self.metrics.write_file, path)
            except OSError as exc:
                self.metrics.failures.labels("metrics_file").inc()
                log_event(WARNING, "metrics_file_failed", path=path, error=str(exc))
            await anyio.sleep(self.settings.metrics_interval)


async def serve_gc(
    settings: GcSettings,
    *,
    metrics: GcMetrics | None = None,
    env: Mapping[str, str] | None = None,
    task_status: anyio.abc.TaskStatus[GcDaemon] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gc daemon over ``settings.roots`` until cancelled or stopped:
    ``daemon = await task_group.start(serve_gc, settings)``, later ``daemon.stop()`` for a
    graceful end (or cancel the task group: steps in progress are abandoned and leave no
    lock or temporary file). ``env`` replaces ``os.environ`` for the repositories' config
    (GIT_DIR and friends are ignored: discovery finds the repositories)."""
    daemon = GcDaemon(settings, metrics, env)
    await daemon.run(task_status=task_status)
