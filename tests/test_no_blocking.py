"""The blocking-call detector (tests/blocking_check.py) fails library code that blocks the loop."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from blocking_check import PACKAGE, BlockingCallError, Detector

from aioreftable._fs import OS

pytestmark = pytest.mark.anyio
pytest_plugins = ("pytester",)

# library-like coroutines: compiled under a file name inside the package, as if they were ours
_PROBES = """
import os, time
from aioreftable._fs import OS

async def stat(path):
    return os.stat(path)

async def listdir(path):
    return os.listdir(path)

async def read_file(path):
    with open(path, "rb") as f:
        return f.read()

async def read_open(f):
    return f.read()

async def nap():
    time.sleep(0)

async def seam_stat(path):
    return OS().stat(path)

async def list_key(path):
    return OS().list_key(path)
"""
probes: dict[str, Any] = {}
exec(compile(_PROBES, os.path.join(PACKAGE, "_blocking_probe.py"), "exec"), probes)


@pytest.mark.parametrize("probe", ["stat", "listdir", "read_file", "seam_stat"])
async def test_a_blocking_call_in_library_code_on_the_loop_fails(
    tmp_path: Path, blocking_detector: Detector, probe: str
) -> None:
    target = tmp_path / "tables.list"
    target.write_bytes(b"")
    call: Callable[[str], Awaitable[object]] = probes[probe]
    with blocking_detector.expect() as caught, pytest.raises(BlockingCallError) as info:
        await call(str(target))
    assert caught == [str(info.value)]
    assert "on the event loop from" in caught[0]
    assert f"_blocking_probe.py:{probes[probe].__code__.co_firstlineno + 1} ({probe})" in caught[0]


async def test_reading_an_open_file_on_the_loop_fails(
    tmp_path: Path, blocking_detector: Detector
) -> None:
    (tmp_path / "f").write_bytes(b"data")
    with open(tmp_path / "f", "rb") as f:  # noqa: ASYNC230 (the test's own I/O is allowed)
        with blocking_detector.expect() as caught, pytest.raises(BlockingCallError):
            await probes["read_open"](f)
        assert caught[0].startswith("io.FileIO.readall on the event loop")
        assert await anyio.to_thread.run_sync(lambda: _drive(probes["read_open"](f))) == b"data"


async def test_sleeping_on_the_loop_fails(blocking_detector: Detector) -> None:
    with blocking_detector.expect() as caught, pytest.raises(BlockingCallError):
        await probes["nap"]()
    assert caught[0].startswith("time.sleep on the event loop")


@pytest.mark.parametrize("probe", ["stat", "listdir", "read_file", "seam_stat", "nap"])
async def test_the_same_call_in_a_worker_thread_passes(tmp_path: Path, probe: str) -> None:
    target = tmp_path / "tables.list"
    target.write_bytes(b"x")
    args = {"nap": (), "listdir": (str(tmp_path),)}.get(probe, (str(target),))

    await anyio.to_thread.run_sync(lambda: _drive(probes[probe](*args)))


def _drive(coro: Any) -> object:
    """Runs a coroutine that never awaits (the probes) to its end, outside any event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the probe awaited")


async def test_the_inline_stat_of_tables_list_is_allowed(tmp_path: Path) -> None:
    target = tmp_path / "tables.list"
    target.write_bytes(b"")
    key = await probes["list_key"](str(target))
    st = os.stat(target)  # a test's own I/O on the loop is allowed too
    assert key == (st.st_dev, st.st_ino)


_INNER_TESTS = """
import os, pytest
from blocking_check import PACKAGE, BlockingCallError

pytestmark = pytest.mark.anyio
pytest_plugins = ("pytester",)
probes = {}
exec(compile("import os\\nasync def stat(p):\\n    return os.stat(p)\\n",
             os.path.join(PACKAGE, "_blocking_probe.py"), "exec"), probes)

async def test_raised(tmp_path):
    await probes["stat"](str(tmp_path))

async def test_swallowed(tmp_path):
    try:
        await probes["stat"](str(tmp_path))
    except BlockingCallError:
        pass  # as a broad `except Exception` in the library would

async def test_threaded(tmp_path):
    import anyio.to_thread
    await anyio.to_thread.run_sync(os.stat, str(tmp_path))
"""


def test_the_conftest_fails_each_violating_test_on_both_backends(pytester: pytest.Pytester) -> None:
    """Also a violation that library code swallowed: the fixture reports it at teardown."""
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makepyfile(test_inner=_INNER_TESTS)
    tests_dir = str(Path(__file__).parent)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", f"pythonpath={tests_dir}"
    )
    result.assert_outcomes(passed=4, failed=2, errors=2)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_swallowed*", "blocking calls on the event loop:"]
    )


def test_without_a_running_loop_nothing_is_checked(tmp_path: Path) -> None:
    assert OS().stat(str(tmp_path)).st_ino == os.stat(tmp_path).st_ino
    time.sleep(0)
