"""Block sources through the seam: ``MmapSource(path)`` and ``TableReader.from_path`` ask
``_mapfile`` to open and map; OS errors come out unwrapped, bad files as FormatError."""

from __future__ import annotations

import errno
import mmap
import os
import time
from pathlib import Path

import pytest
from conftest import DATA
from stack_helpers import unblock_after

from aioreftable import FormatError, ReftableError
from aioreftable._mapfile import map_descriptor, map_path
from aioreftable.lowlevel import BlockSource, BytesSource, MmapSource, TableReader

TABLE = DATA / "git_503refs_sha1_bs4096.ref"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_mmap_source_reads_a_file_through_the_seam() -> None:
    data = TABLE.read_bytes()
    before = _open_fds()
    source = MmapSource(TABLE)
    assert isinstance(source, BlockSource)
    assert source.size == len(data)
    assert source.read(0, 4) == b"REFT"
    assert source.read(len(data) - 3, 10) == data[-3:]  # short at the end, as BytesSource
    assert source.read(len(data) + 5, 10) == b""
    assert BytesSource(data).read(len(data) - 3, 10) == data[-3:]
    source.close()
    source.close()  # idempotent
    assert _open_fds() == before  # the seam closed its descriptor (and the map's duplicate)
    with pytest.raises(ValueError, match="closed"):
        source.read(0, 4)


def test_mmap_source_of_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ref"
    empty.touch()
    assert map_path(empty) == (None, 0)  # an empty file cannot be mapped: no map, no error
    source = MmapSource(empty)
    assert (source.size, source.read(0, 10)) == (0, b"")
    source.close()
    assert source.read(0, 10) == b""  # nothing to lose: an empty source reads empty
    with pytest.raises(FormatError, match="bad magic") as err:
        TableReader.from_path(empty)
    assert err.value.path == str(empty) and err.value.offset == 0


def test_a_missing_file_is_file_not_found_unwrapped(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ref"
    for open_it in (MmapSource, TableReader.from_path):
        with pytest.raises(FileNotFoundError) as err:
            open_it(missing)
        assert not isinstance(err.value, ReftableError)
        assert err.value.filename == str(missing) and err.value.__cause__ is None


def test_a_directory_is_is_a_directory_error(tmp_path: Path) -> None:
    """A directory is refused before mapping, as the stack's seam refuses it (one rule:
    ``_mapfile.check_regular``): IsADirectoryError naming it, an OS error unwrapped."""
    before = _open_fds()
    for open_it in (MmapSource, TableReader.from_path):
        with pytest.raises(IsADirectoryError) as err:
            open_it(tmp_path)
        assert not isinstance(err.value, ReftableError)
        assert err.value.errno == errno.EISDIR and err.value.filename == str(tmp_path)
    assert _open_fds() == before  # the descriptor is closed on the error path too


def test_a_fifo_does_not_block_and_is_not_a_table(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.ref"
    os.mkfifo(fifo)
    started = time.monotonic()
    before = _open_fds()
    with unblock_after(fifo), pytest.raises(FormatError, match="not a regular file") as err:
        TableReader.from_path(fifo)
    assert err.value.path == str(fifo) and time.monotonic() - started < 4
    assert _open_fds() == before


def test_from_map_owns_the_map(tmp_path: Path) -> None:
    path = tmp_path / "t.ref"
    path.write_bytes(TABLE.read_bytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        mapped = map_descriptor(fd, size)
    finally:
        os.close(fd)
    assert isinstance(mapped, mmap.mmap)
    source = MmapSource.from_map(mapped, size)
    assert isinstance(source, MmapSource) and source.size == size
    with TableReader(source, name="t.ref") as reader:
        assert reader.ref(b"HEAD") is not None
    assert mapped.closed  # the reader closed its source, the source its map
    assert map_descriptor(0, 0) is None
    assert MmapSource.from_map(None, 0).read(0, 1) == b""


def test_from_path_still_reads_git_tables(tmp_path: Path) -> None:
    with TableReader.from_path(TABLE) as reader:
        assert reader.name == str(TABLE)
        assert isinstance(reader.source, MmapSource)
        assert sum(1 for _ in reader.seek_refs()) == 503
        as_str = TableReader.from_path(str(TABLE))
        assert list(as_str.seek_refs()) == list(reader.seek_refs())
        as_str.close()
    before = _open_fds()
    bad = tmp_path / "bad.ref"
    bad.write_bytes(b"REFT\x07" + bytes(200))
    with pytest.raises(FormatError, match="version 7") as err:
        TableReader.from_path(bad)
    assert err.value.path == str(bad)
    assert _open_fds() == before  # a table that fails to open leaves no map behind
