"""`aioreftable gc`: the gc daemon (``--daemon``) or one pass, with signals, logs and config."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import logging.handlers
import queue
import signal
import sys
from collections.abc import Callable
from typing import Any

import anyio

from .. import UsageError
from ..gc import GcDaemon, GcSettings, JsonFormatter, TextFormatter, load_settings, parse_duration

__all__ = ["add_parser", "run_gc"]


def _duration(what: str) -> Callable[[str], float | None]:
    def parse(text: str) -> float | None:
        try:
            return parse_duration(text, what)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gc", help="keep the reftable stacks of repositories under ROOTs compact")
    p.add_argument("roots", nargs="*", metavar="ROOT", help="directories searched for repositories")
    p.add_argument("--daemon", action="store_true", help="keep running and react to changes")
    p.add_argument("--config", metavar="FILE", help="TOML settings (flags override them)")
    p.add_argument("--watch", choices=("auto", "inotify", "poll"), help="change detection")
    p.add_argument("--poll-interval", type=_duration("--poll-interval"), metavar="SECONDS")
    p.add_argument("--sweep-interval", type=_duration("--sweep-interval"), metavar="SECONDS")
    p.add_argument("--rescan-interval", type=_duration("--rescan-interval"), metavar="SECONDS")
    p.add_argument("--concurrency", type=int, metavar="N", help="stacks worked on at once")
    p.add_argument("--lock-timeout", type=_duration("--lock-timeout"), metavar="SECONDS")
    p.add_argument("--max-tables", type=int, metavar="N", help="full compaction above N tables")
    p.add_argument("--tables-per-step", type=int, metavar="N", help="tables per compaction step")
    p.add_argument(
        "--full-compaction-interval", type=_duration("--full-compaction-interval"), metavar="DUR"
    )
    p.add_argument("--reflog-expire", type=_duration("--reflog-expire"), metavar="DUR")
    p.add_argument("--stale-lock-age", type=_duration("--stale-lock-age"), metavar="DUR")
    p.add_argument(
        "--break-stale-locks",
        action="store_const",
        const=True,
        help="remove stale tables.list.lock files that no process holds open",
    )
    p.add_argument("--shutdown-timeout", type=_duration("--shutdown-timeout"), metavar="SECONDS")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="HTTP /metrics on 127.0.0.1")
    p.add_argument("--metrics-file", metavar="PATH", help="node_exporter textfile")
    p.add_argument("--log-format", choices=("text", "json"))
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.set_defaults(run=run_gc)


_FLAGS = (
    "watch",
    "poll_interval",
    "sweep_interval",
    "rescan_interval",
    "concurrency",
    "lock_timeout",
    "max_tables",
    "tables_per_step",
    "full_compaction_interval",
    "reflog_expire",
    "stale_lock_age",
    "break_stale_locks",
    "shutdown_timeout",
    "metrics_port",
    "metrics_file",
    "log_format",
)


def settings_from_args(args: argparse.Namespace) -> GcSettings:
    settings = GcSettings()
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            settings = load_settings(f.read())
    given: dict[str, Any] = {n: getattr(args, n) for n in _FLAGS if getattr(args, n) is not None}
    if args.roots:
        given["roots"] = tuple(args.roots)
    settings = dataclasses.replace(settings, **given)
    if not args.daemon:  # one pass: compact now, do not wait for writers to pause
        settings = dataclasses.replace(settings, quiet_period=0.0, compaction_interval=0.0)
    if not settings.roots:
        raise UsageError("gc: no ROOT given (on the command line or as roots in --config)")
    return settings


def _logging(settings: GcSettings, level: str) -> Callable[[], None]:
    """Log lines go through a queue to a thread that writes stderr (never the event loop).
    Returns the function that flushes them and restores the logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, handler)
    logger = logging.getLogger("aioreftable")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [logging.handlers.QueueHandler(q)]
    logger.setLevel(level.upper())
    logger.propagate = False
    listener.start()

    def done() -> None:
        listener.stop()
        logger.handlers[:], logger.level, logger.propagate = saved

    return done


async def _serve(settings: GcSettings, once: bool) -> None:
    daemon = GcDaemon(settings)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await daemon.run()
                tg.cancel_scope.cancel()

            async def one_pass() -> None:
                await daemon.wait_settled()
                daemon.stop()

            tg.start_soon(run)
            if once:
                tg.start_soon(one_pass)
            stopping = False
            async for signum in signals:
                logging.getLogger("aioreftable.gc").info(
                    "signal", extra={"gc_fields": {"signal": signal.Signals(signum).name}}
                )
                if stopping:  # a second signal: abandon everything now
                    tg.cancel_scope.cancel()
                    break
                stopping = True
                daemon.stop()


def run_gc(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    done = _logging(settings, args.log_level)
    try:
        anyio.run(_serve, settings, not args.daemon)
    finally:
        done()
    return 0
