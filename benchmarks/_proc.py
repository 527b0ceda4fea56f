"""Child processes of the benchmarks: the servers' "listening on" line, a process's CPU time."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def listening_url(proc: subprocess.Popen[bytes], what: str, pattern: bytes) -> str:
    """The URL a server started with ``--port 0`` prints first (``listening on <url>``),
    read a byte at a time so nothing after it is buffered away; SystemExit when ``what``
    prints nothing in 30 s or exits first."""
    assert proc.stdout is not None
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            if not sel.select(30):
                raise SystemExit(f"the {what} did not start in 30 s")
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                raise SystemExit(f"the {what} exited")
            line += chunk
    found = re.match(rb"listening on (" + pattern + rb")", line)
    assert found, line
    return found.group(1).decode()


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system, seconds) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS
