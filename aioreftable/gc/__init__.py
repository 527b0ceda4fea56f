"""The gc daemon: keeps the reftable stacks of many repositories compact beside git.

An application of the public API (``aioreftable``, ``aioreftable.lowlevel``) only. Run it
as ``aioreftable gc --daemon ROOT...`` or inside an application's own task group::

    daemon = await task_group.start(serve_gc, GcSettings(roots=("/srv/git",)))
    ...
    daemon.stop()  # graceful: running steps finish or are abandoned within shutdown_timeout
"""

from __future__ import annotations

from ._daemon import GcDaemon, serve_gc
from ._logs import JsonFormatter, TextFormatter
from ._metrics import GcMetrics
from ._settings import GcSettings, RepositoryPolicy, load_settings, parse_duration

__all__ = [
    "GcDaemon",
    "GcMetrics",
    "GcSettings",
    "JsonFormatter",
    "RepositoryPolicy",
    "TextFormatter",
    "load_settings",
    "parse_duration",
    "serve_gc",
]
