"""The OS seam: tables.list rules, locks, temp files and permissions (sync, no event loop)."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import sys
import time
from pathlib import Path

import pytest
from stack_helpers import unblock_after

from aioreftable import FormatError
from aioreftable._fs import (
    OS,
    READ_TABLES_BELOW,
    TEMP_GRACE,
    TEMP_NAME,
    default_mode,
    format_table_name,
    parse_tables_list,
    render_tables_list,
)
from aioreftable.lowlevel import RefRecord, TableWriter

A = "0x000000000001-0x000000000001-0000000a.ref"
B = "0x000000000002-0x000000000002-0000000b.ref"


def one_table() -> bytes:
    w = TableWriter()
    w.set_limits(1, 1)
    w.add_ref(RefRecord.val1(b"refs/heads/main", 1, b"\x01" * 20))
    return w.finish()


def test_parse_requires_final_newline() -> None:
    assert parse_tables_list(f"{A}\n{B}\n".encode()) == [A, B]
    with pytest.raises(FormatError, match="newline"):
        parse_tables_list(f"{A}\n{B}".encode())


def test_parse_skips_empty_lines_and_empty_file() -> None:
    assert parse_tables_list(b"") == []
    assert parse_tables_list(f"\n\n{A}\n\n".encode()) == [A]


@pytest.mark.parametrize("bad", [b"../x.ref\n", b"a/b.ref\n", b"..\n", b"\xff.ref\n"])
def test_parse_refuses_names_that_are_not_file_names(bad: bytes) -> None:
    with pytest.raises(FormatError):
        parse_tables_list(bad)


def test_render_ends_every_line() -> None:
    assert render_tables_list(["a", "b"]) == b"a\nb\n"
    assert render_tables_list([]) == b""


def test_table_name_format() -> None:
    name = format_table_name(1, 0xB)
    assert re.fullmatch(r"0x000000000001-0x00000000000b-[0-9a-f]{8}", name)
    names = {format_table_name(1, 1) for _ in range(50)}
    assert len(names) > 45
    assert format_table_name(1 << 50, 1 << 50).startswith("0x4000000000000-")


def test_missing_list_is_empty(tmp_path: Path) -> None:
    names, handle = OS().read_tables_list(str(tmp_path / "tables.list"))
    assert names == [] and handle is None
    assert OS().list_key(str(tmp_path / "tables.list")) is None


def test_read_list_keeps_fd_with_inode_key(tmp_path: Path) -> None:
    path = tmp_path / "tables.list"
    path.write_bytes(f"{A}\n".encode())
    fs = OS()
    names, handle = fs.read_tables_list(str(path))
    assert names == [A] and handle is not None
    try:
        st = os.stat(path)
        assert handle.key == (st.st_dev, st.st_ino) == fs.list_key(str(path))
    finally:
        os.close(handle.fd)


def test_read_list_without_final_lf_is_format_error(tmp_path: Path) -> None:
    path = tmp_path / "tables.list"
    path.write_bytes(A.encode())
    with pytest.raises(FormatError) as info:
        OS().read_tables_list(str(path))
    assert info.value.path == str(path)


def test_lock_is_exclusive(tmp_path: Path) -> None:
    fs = OS()
    lock = str(tmp_path / "tables.list.lock")
    fd = fs.try_create_lock(lock, 0o640)
    assert fd is not None
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o640
    assert fs.try_create_lock(lock, None) is None
    fs.release_lock(fd, lock)
    assert not os.path.exists(lock)


def test_lock_does_not_follow_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    os.symlink(target, tmp_path / "tables.list.lock")
    assert OS().try_create_lock(str(tmp_path / "tables.list.lock"), None) is None
    assert not target.exists()


def test_commit_tables_list_replaces_by_rename(tmp_path: Path) -> None:
    fs = OS()
    list_path = str(tmp_path / "tables.list")
    Path(list_path).write_bytes(f"{A}\n".encode())
    old_ino = os.stat(list_path).st_ino
    fd = fs.try_create_lock(list_path + ".lock", 0o644)
    assert fd is not None
    handle = fs.commit_tables_list(fd, list_path + ".lock", list_path, [A, B])
    try:
        assert Path(list_path).read_bytes() == f"{A}\n{B}\n".encode()
        assert not os.path.exists(list_path + ".lock")
        assert handle.key == fs.list_key(list_path)
        assert os.stat(list_path).st_ino != old_ino
    finally:
        os.close(handle.fd)


def test_lock_tables_stops_at_a_held_lock(tmp_path: Path) -> None:
    fs = OS()
    paths = [str(tmp_path / f"t{i}.ref") for i in (3, 2, 1)]
    Path(paths[1] + ".lock").touch()
    taken, complete = fs.lock_tables(paths, None)
    assert taken == [paths[0] + ".lock"] and not complete
    assert os.path.exists(paths[0] + ".lock")


def test_temp_table_mode_and_cleanup(tmp_path: Path) -> None:
    fs = OS()
    data = one_table()
    final = fs.install_table(str(tmp_path), "0x1-0x1-00000000", "t.ref", data, 0o640)
    assert Path(final).read_bytes() == data
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["t.ref"]


def test_temp_table_is_removed_when_the_write_fails(tmp_path: Path) -> None:
    class Full(OS):
        def fsync(self, fd: int) -> None:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        Full().install_table(str(tmp_path), "p", "t.ref", one_table(), 0o644)
    assert os.listdir(tmp_path) == []


def test_temp_name_is_git_shaped_and_marked_as_ours(tmp_path: Path) -> None:
    fs = OS()
    temp = fs.write_temp_table(str(tmp_path), "0x1-0x1-abcdef01", one_table(), None)
    name = os.path.basename(temp.path)
    assert re.fullmatch(r"0x1-0x1-abcdef01\.temp\.aioreftable-[0-9a-f]{8}", name)
    assert TEMP_NAME.fullmatch(name) and not TEMP_NAME.fullmatch("0x1-0x1-abcdef01.temp.Ab3xYz")
    assert stat.S_IMODE(os.stat(temp.path).st_mode) == 0o600  # mkstemp's mode without a chmod
    fd = os.open(temp.path, os.O_RDONLY)
    try:
        assert not fs.flock(fd, blocking=False)  # the writer holds it while the file is open
        fs.drop_temp(temp, unlink=False)
        assert fs.flock(fd, blocking=False)
    finally:
        os.close(fd)
    fs.drop_temp(temp, unlink=True)  # a second drop does nothing
    assert os.path.exists(temp.path)


def test_only_abandoned_temps_of_ours_are_removed(tmp_path: Path) -> None:
    fs, d = OS(), str(tmp_path)
    old = time.time() - 3600

    def temp(prefix: str, *, alive: bool, age: float | None = old) -> str:
        t = fs.write_temp_table(d, prefix, one_table(), None)
        if not alive:
            fs.drop_temp(t, unlink=False)  # as the kernel does when the writer dies
        if age is not None:
            os.utime(t.path, (age, age))
        return os.path.basename(t.path)

    dead = temp("0x1-0x1-00000001", alive=False)
    alive = temp("0x2-0x2-00000002", alive=True)
    young = temp("0x3-0x3-00000003", alive=False, age=None)
    git_temp = tmp_path / "0x4-0x4-00000004.temp.Ab3xYz"  # git's mkstemp name
    git_temp.write_bytes(b"")
    os.mkfifo(tmp_path / "0x5-0x5-00000005.temp.aioreftable-0badf00d")
    os.utime(git_temp, (old, old))
    removed = fs.remove_abandoned_temps(d, time.time(), TEMP_GRACE)
    assert removed == [dead]
    assert sorted(os.listdir(d)) == sorted(
        [alive, young, git_temp.name, "0x5-0x5-00000005.temp.aioreftable-0badf00d"]
    )


def test_default_mode_follows_umask() -> None:
    old = os.umask(0o027)
    try:
        assert default_mode() == 0o640
    finally:
        os.umask(old)


def test_open_tables_closes_on_missing(tmp_path: Path) -> None:
    (tmp_path / "a.ref").write_bytes(one_table())
    with pytest.raises(FileNotFoundError):
        OS().open_tables(str(tmp_path), ["a.ref", "b.ref"])
    readers = OS().open_tables(str(tmp_path), ["a.ref"])
    assert readers[0].ref(b"refs/heads/main") is not None
    readers[0].close()


# -- hostile tables.list (issue 10.6) ------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "0x000000000001-0x000000000001-0badf00d.ref",  # git 2.45 .. 2.55
        "0x00000000000a-0x0000000003e8-ffffffff.ref",
        "0xffffffffffffffff-0xffffffffffffffff-00000000.ref",  # git widens past 12 digits
        "000000000001-000000000002-1a2b3c4d.ref",  # JGit
        "000000000001-000000000002.ref",  # older JGit: no random part
        "0x000000000001-0x000000000002-1a2b3c4d.log",  # the spec's log-only tables
        "foo-bar-e4d12d59.ref",  # git reads it; its fsck warns (t0614), so does verify()
        "garbage",  # git reads the list and fails with NOT_EXIST (t0610); so do we
        "x" * 255,
    ],
)
def test_names_git_would_open_are_accepted(name: str) -> None:
    assert parse_tables_list(f"{name}\n".encode()) == [name]


def test_our_own_names_are_accepted() -> None:
    names = [format_table_name(i, i + 7) + ".ref" for i in (1, 1 << 40, (1 << 64) - 8)]
    assert parse_tables_list("".join(f"{n}\n" for n in names).encode()) == names


@pytest.mark.parametrize(
    "bad",
    [b"0x1-0x2-" + b"f" * 290 + b".ref", b"x" * 256, b"a/b.ref", b"x\x00y.ref", b"\xe9.ref", b".."],
)
def test_names_that_are_no_file_name_refuse_the_list_naming_it_and_the_line(bad: bytes) -> None:
    good = b"0x000000000001-0x000000000001-0badf00d.ref"
    with pytest.raises(FormatError) as info:
        parse_tables_list(good + b"\n" + bad + b"\n", "/r/tables.list")
    assert info.value.path == "/r/tables.list" and info.value.offset == len(good) + 1


def test_a_name_listed_twice_refuses_the_list() -> None:
    a = "0x000000000001-0x000000000001-0badf00d.ref"
    b = "0x000000000002-0x000000000002-0badf00d.ref"
    with pytest.raises(FormatError, match="twice") as info:
        parse_tables_list(f"{a}\n{b}\n{a}\n".encode(), "/r/tables.list")
    assert info.value.offset == 2 * (len(a) + 1)
    with pytest.raises(FormatError, match="twice"):
        parse_tables_list(f"{a}\n".encode() * 100_000)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "0x000000000001-0x000000000001-0badf00d.ref"
    os.mkfifo(fifo)
    started = time.monotonic()
    with unblock_after(fifo), pytest.raises(FormatError, match="not a regular file") as info:
        OS().open_table(str(fifo))
    assert info.value.path == str(fifo) and time.monotonic() - started < 4
    listing = tmp_path / "tables.list"
    os.mkfifo(listing)
    with unblock_after(listing), pytest.raises(FormatError, match="not a regular file") as info:
        OS().read_tables_list(str(listing))
    assert info.value.path == str(listing)


def test_a_directory_is_an_os_error_naming_it(tmp_path: Path) -> None:
    table = tmp_path / "0x000000000001-0x000000000001-0badf00d.ref"
    table.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        OS().open_table(str(table))
    assert info.value.filename == str(table)
    listing = tmp_path / "tables.list"
    listing.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        OS().read_tables_list(str(listing))
    assert info.value.filename == str(listing)


def test_only_large_open_tables_keep_a_descriptor(tmp_path: Path) -> None:
    """Documented: a table of 64 KiB or more is mapped, and before Python 3.13 the mapping
    keeps a duplicate descriptor; smaller tables are read and keep none."""
    small = tmp_path / A
    small.write_bytes(one_table())
    w = TableWriter()
    w.set_limits(2, 2)
    w.add_refs(RefRecord.val1(b"refs/heads/b%06d" % i, 2, b"\x02" * 20) for i in range(5000))
    large = tmp_path / B
    large.write_bytes(w.finish())
    assert small.stat().st_size < READ_TABLES_BELOW <= large.stat().st_size
    mapped_keeps = 0 if sys.version_info >= (3, 13) else 1
    for path, kept, ref in (
        (small, 0, b"refs/heads/main"),
        (large, mapped_keeps, b"refs/heads/b004242"),
    ):
        before = len(os.listdir("/proc/self/fd"))
        readers = [OS().open_table(str(path)) for _ in range(20)]
        assert len(os.listdir("/proc/self/fd")) - before == 20 * kept
        assert all(r.ref(ref) is not None for r in readers)
        for reader in readers:
            reader.close()
        assert len(os.listdir("/proc/self/fd")) == before


def test_without_working_flock_temps_are_written_and_never_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that cannot lock (ENOLCK, as some NFS mounts): writers go on, and
    clean() proves nothing, so it deletes nothing."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    fs = OS()
    final = fs.install_table(str(tmp_path), "0x1-0x1-00000001", A, one_table(), None)
    assert Path(final).read_bytes() == one_table()
    temp = fs.write_temp_table(str(tmp_path), "0x2-0x2-00000002", one_table(), None)
    fs.drop_temp(temp, unlink=False)
    old = time.time() - 3600
    os.utime(temp.path, (old, old))
    assert fs.remove_abandoned_temps(str(tmp_path), time.time(), TEMP_GRACE) == []
    assert os.path.exists(temp.path)
