"""GcMetrics: the daemon's Prometheus metrics, the 127.0.0.1 HTTP endpoint and the textfile."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator

import anyio
import anyio.abc
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    write_to_textfile,
)
from prometheus_client.core import GaugeHistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["GcMetrics", "serve_metrics"]

TABLE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_log = logging.getLogger("aioreftable.gc")


class _TablesCollector(Collector):
    """Tables per stack as a gauge histogram: the current distribution, not a history."""

    def __init__(self, counts: list[int]):
        # stacks per bucket of TABLE_BUCKETS, then +Inf, then the sum of tables; the daemon
        # keeps it up to date on its own thread
        self._counts = counts

    def collect(self) -> Iterator[GaugeHistogramMetricFamily]:
        *counts, tables = list(self._counts)  # a copy
        buckets, total = [], 0
        for bound, n in zip((*map(str, TABLE_BUCKETS), "+Inf"), counts, strict=True):
            total += n
            buckets.append((bound, float(total)))
        yield GaugeHistogramMetricFamily(
            "aioreftable_gc_stack_tables",
            "Tables per watched stack (current distribution; a stack counts once)",
            buckets=buckets,
            gsum_value=float(tables),
        )


class GcMetrics:
    """The daemon's metrics in their own registry (so that several daemons, or tests, in
    one process do not collide). Names start with ``aioreftable_gc_``."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.repositories = Gauge(
            "aioreftable_gc_repositories_watched", "Reftable repositories watched", registry=r
        )
        self.stacks = Gauge(
            "aioreftable_gc_stacks_watched",
            "Reftable stacks watched (main and linked worktrees)",
            registry=r,
        )
        self.files_backend = Gauge(
            "aioreftable_gc_files_backend_repositories",
            "Repositories found that use the files backend (ignored)",
            registry=r,
        )
        self.changes = Counter(
            "aioreftable_gc_list_changes", "tables.list changes noticed", ["source"], registry=r
        )
        self.checks = Counter(
            "aioreftable_gc_stack_checks", "Stacks opened to decide on compaction", registry=r
        )
        self.compactions = Counter(
            "aioreftable_gc_compactions",
            "Compactions done (auto: git's geometric rule; full: threshold or schedule)",
            ["kind"],
            registry=r,
        )
        self.compaction_seconds = Histogram(
            "aioreftable_gc_compaction_duration_seconds",
            "Duration of compactions",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.bytes_reclaimed = Counter(
            "aioreftable_gc_compaction_reclaimed_bytes",
            "Bytes of tables freed by compaction and cleaning",
            registry=r,
        )
        self.giveups = Counter(
            "aioreftable_gc_compaction_giveups",
            "Steps given up instead of making a writer wait (lock held, stack changed)",
            ["reason"],
            registry=r,
        )
        self.lock_waits = Counter(
            "aioreftable_gc_lock_waits", "Waits for a lock held by another writer", registry=r
        )
        self.lock_wait_seconds = Counter(
            "aioreftable_gc_lock_wait_seconds", "Time spent waiting for locks", registry=r
        )
        self.reflog_expired = Counter(
            "aioreftable_gc_reflog_entries_expired", "Reflog entries pruned by policy", registry=r
        )
        self.tables_cleaned = Counter(
            "aioreftable_gc_stale_files_removed",
            "Stale tables and dead writers' temp tables deleted",
            registry=r,
        )
        self.stale_locks = Gauge(
            "aioreftable_gc_stale_locks", "Lock files older than the threshold", registry=r
        )
        self.locks_broken = Counter(
            "aioreftable_gc_stale_locks_broken",
            "Abandoned tables.list.lock files removed (--break-stale-locks)",
            registry=r,
        )
        self.failures = Counter(
            "aioreftable_gc_failures", "Failed steps, by kind of error", ["kind"], registry=r
        )
        self.table_counts = [0] * (len(TABLE_BUCKETS) + 2)
        r.register(_TablesCollector(self.table_counts))

    def add_process_metrics(self) -> None:
        """CPU, memory and descriptors of this process (blocking: it reads /proc)."""
        ProcessCollector(namespace="aioreftable_gc", registry=self.registry)

    def move_tables(self, old: int | None, new: int | None) -> None:
        """A stack's table count changed from ``old`` to ``new`` (None: not counted)."""
        counts = self.table_counts
        if old is not None:
            counts[bisect.bisect_left(TABLE_BUCKETS, old)] -= 1
            counts[-1] -= old
        if new is not None:
            counts[bisect.bisect_left(TABLE_BUCKETS, new)] += 1
            counts[-1] += new

    def render(self) -> bytes:
        """The Prometheus text format (blocking: it reads /proc; run it in a thread)."""
        return generate_latest(self.registry)

    def write_file(self, path: str) -> None:
        """node_exporter's textfile: written to a temp file and renamed (blocking)."""
        write_to_textfile(path, self.registry)


_MAX_REQUEST = 8192


async def _handle(metrics: GcMetrics, stream: anyio.abc.SocketStream) -> None:
    async with stream:
        try:
            with anyio.fail_after(5):
                data = b""
                while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
                    data += await stream.receive(4096)
                line = data.split(b"\r\n", 1)[0].split()
                if len(line) < 2 or line[0] not in (b"GET", b"HEAD"):
                    await stream.send(_response(405, b"text/plain", b"method not allowed\n"))
                    return
                path = line[1].split(b"?", 1)[0]
                if path != b"/metrics":
                    await stream.send(_response(404, b"text/plain", b"not found: try /metrics\n"))
                    return
                try:
                    body = await anyio.to_thread.run_sync(metrics.render)
                except Exception as exc:  # a broken collector must not stop the daemon
                    _log.warning("metrics_failed", extra={"gc_fields": {"error": repr(exc)}})
                    await stream.send(_response(500, b"text/plain", b"metrics failed\n"))
                    return
                if line[0] == b"HEAD":
                    body = b""
                await stream.send(_response(200, CONTENT_TYPE_LATEST.encode(), body))
        except (TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return


def _response(status: int, content_type: bytes, body: bytes) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 405: b"Method Not Allowed", 500: b"Server Error"}[
        status
    ]
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    return head % (status, reason, content_type, len(body)) + body


async def serve_metrics(
    metrics: GcMetrics,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` on 127.0.0.1:``port`` (0: any free port) until cancelled;
    reports the bound port through ``task_status``."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started(bound)

        async def handle(stream: anyio.abc.SocketStream) -> None:
            await _handle(metrics, stream)

        await listener.serve(handle)
