"""RefStore.scan (lists of refs, decoded in worker threads) and the iterate built on it:
the same refs in the same order as git's for-each-ref and as the pure-Python path, for a
one-table stack (the compiled fast path) and a stack of several tables (the merge), with
root refs, symrefs, peeled tags and deletions, in lists of any size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Git
from refs_helpers import ENV, make_twins

from aioreftable import FormatError, Ref, open_ref_store
from aioreftable._format import _accel, _block
from aioreftable._format._records import RefRecord, RefValueType
from aioreftable._refs import _scan

pytestmark = [pytest.mark.anyio, pytest.mark.git]


@contextmanager
def on_path(which: str) -> Iterator[None]:
    """The compiled decoder and converter ("accel") or the pure-Python reference."""
    saved = _block._speedups, _scan._speedups
    _block._speedups = _accel.speedups if which == "accel" else None
    _scan._speedups = saved[1] if which == "accel" else None
    try:
        yield
    finally:
        _block._speedups, _scan._speedups = saved


def make_repo(git: Git, tmp_path: Path, tables: str) -> Path:
    """Branches, an annotated tag, symrefs (one dangling), root refs and deleted refs; one
    table (``tables="one"``, after pack-refs) or one table per update."""
    repo = make_twins(git, tmp_path)[1]
    config = ("-c", "reftable.autoCompaction=false")
    lines = "".join(f"create refs/heads/b/{i:03d} HEAD\n" for i in range(40))
    git(*config, "update-ref", "--stdin", cwd=repo, input=lines)
    for name in ("ORIG_HEAD", "MERGE_HEAD_NOT", "refs/heads/gone", "refs/zz/last"):
        git(*config, "update-ref", name, "HEAD~1", cwd=repo)
    git(*config, "update-ref", "-d", "refs/heads/gone", cwd=repo)
    git(*config, "update-ref", "-d", "refs/heads/b/007", cwd=repo)
    git(*config, "symbolic-ref", "refs/heads/sym", "refs/heads/main", cwd=repo)
    git(*config, "symbolic-ref", "refs/heads/dangling", "refs/heads/nothing", cwd=repo)
    if tables == "one":
        git("pack-refs", "--all", cwd=repo)
    count = len((repo / ".git" / "reftable" / "tables.list").read_text().split())
    assert (count == 1) == (tables == "one"), count
    return repo


def git_refs(git: Git, repo: Path, *args: str) -> list[Ref]:
    """git's for-each-ref as Refs (symrefs not followed: %(symref) names the target)."""
    fmt = "%(refname) %(objectname) %(symref) %(*objectname)"
    out = git.run("for-each-ref", f"--format={fmt}", *args, cwd=repo, check=False).stdout
    refs = []
    for line in out.decode().splitlines():
        name, oid, target, peeled = line.split(" ")
        if target:
            refs.append(Ref(name, None, target))
        else:
            refs.append(Ref(name, oid, None, peeled or None))
    return refs


@pytest.mark.parametrize("tables", ["one", "several"])
@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_scan_lists_the_refs_iterate_and_git_list(
    git: Git, tmp_path: Path, tables: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(git, tmp_path, tables)
    monkeypatch.setattr(_scan, "CHUNK_REFS", size)
    want = git_refs(git, repo)  # git skips the dangling symref; iterate lists it
    assert len(want) == 44 and any(r.peeled for r in want), want
    dangling = Ref("refs/heads/dangling", None, "refs/heads/nothing")
    async with open_ref_store(repo, env=ENV) as store:
        seen: dict[str, list[list[Ref]]] = {}
        for which in ("accel", "pure"):
            for prefix in ("", "refs/", "refs/heads/b/", "refs/heads/b/00", "refs/zz", "nope"):
                for root in (False, True):
                    with on_path(which):
                        lists = [r async for r in store.scan(prefix, include_root_refs=root)]
                        flat = [r async for r in store.iterate(prefix, include_root_refs=root)]
                    assert all(len(refs) >= size for refs in lists[:-1])
                    assert all(lists), "an empty list"
                    assert [r for refs in lists for r in refs] == flat
                    seen.setdefault(f"{prefix!r} {root}", []).append(flat)
                    expected = [r for r in want if r.name.startswith(prefix)]
                    if dangling.name.startswith(prefix):
                        assert dangling in flat
                        flat = [r for r in flat if r != dangling]
                    if root and not prefix:  # HEAD and ORIG_HEAD first
                        assert [r.name for r in flat[:2]] == ["HEAD", "ORIG_HEAD"]
                        assert flat[2:] == expected
                    else:
                        assert flat == expected, (which, prefix, root)
    for key, (accel, pure) in seen.items():  # the same objects: classes, equal repr
        assert [(type(r), repr(r)) for r in accel] == [(type(r), repr(r)) for r in pure], key


def test_for_each_ref_cli_stops_at_count_and_resolves_symrefs(
    git: Git, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The CLI's list path: --count inside a list and at its end, symrefs resolved, the
    dangling one skipped, patterns, as git prints them."""
    from aioreftable.cli import main

    repo = make_repo(git, tmp_path, "one")
    fmt = "--format=%(objectname) %(refname)"
    for args in ([], ["--count=3"], ["--count=44"], ["refs/heads/s*", "refs/zz"]):
        want = git.run("for-each-ref", fmt, *args, cwd=repo).stdout.decode()
        capfd.readouterr()
        assert main(["-C", str(repo), "for-each-ref", fmt, *args]) == 0
        assert capfd.readouterr().out == want, args


def test_batches_give_the_refs_before_an_error_first() -> None:
    """A damaged record stops a scan after every ref decoded before it, as iterate did."""
    oid = bytes(range(20))
    records = [RefRecord.val1(b"refs/heads/%d" % i, 1, oid) for i in range(5)]

    def chunks() -> Iterator[list[RefRecord]]:
        yield records[:2]
        yield records[2:]
        raise FormatError("damaged", offset=7)

    batches = _scan._Batches(chunks(), False, 100)
    got = batches.next()
    assert [r.name for r in got] == [f"refs/heads/{i}" for i in range(5)]
    assert not batches.done
    with pytest.raises(FormatError, match="damaged"):
        batches.next()
    assert batches.done


def test_converter_refuses_no_shape_the_reference_refuses() -> None:
    """Records of shapes the compiled converter leaves to Python: the same Ref or error."""
    oid = bytes(range(20))
    odd = [
        RefRecord.val1(b"refs/a", 1, oid),
        RefRecord(b"refs/b", 1, RefValueType.VAL1, None),  # no id: ValueError
    ]
    for which in ("accel", "pure"):
        with on_path(which), pytest.raises(ValueError, match="holds no object id"):
            _scan.refs_of(odd, False)
    mixed = [
        RefRecord.symref(b"HEAD", 1, b"refs/heads/main"),
        RefRecord.val2(b"refs/tags/t", 2, oid, oid[::-1]),
        RefRecord.deletion(b"refs/tags/u", 3),
        RefRecord.val1(b"refs/\xff", 4, oid),
        RefRecord.val1(b"zz", 5, oid),
    ]
    for root in (False, True):
        with on_path("accel"):
            accel = _scan.refs_of(mixed, root)
        with on_path("pure"):
            pure = _scan.refs_of(mixed, root)
        assert [repr(r) for r in accel] == [repr(r) for r in pure]
        assert accel == pure and len(accel) == (3 if root else 2)


def test_compiled_records_and_refs_are_not_tracked_by_the_cyclic_gc() -> None:
    """Records and Refs made in C hold no container (no cycle can pass through them), so
    the cyclic GC does not track them: a scan holds thousands at a time, and tracked they
    made every full collection walk them (0.45 s of a 1M-ref for-each-ref)."""
    import gc

    from aioreftable.lowlevel import TableReader, TableWriter, WriteOptions

    oid = bytes(range(20))
    w = TableWriter(WriteOptions())
    w.set_limits(1, 1)
    w.add_refs([RefRecord.val1(b"refs/heads/%03d" % i, 1, oid) for i in range(300)])
    reader = TableReader.from_bytes(w.finish())
    chunks = list(reader.ref_chunks(b"refs/heads/"))
    records = [rec for chunk in chunks for rec in chunk]
    assert len(records) == 300
    with on_path("accel"):
        refs = _scan.refs_of(records, False)
    assert refs == [Ref(rec.refname.decode(), oid.hex()) for rec in records]
    if _accel.speedups is not None:
        assert not any(gc.is_tracked(x) for x in [*records, *refs])
    assert gc.is_tracked(Ref("refs/heads/x", oid.hex()))  # Python-made ones stay tracked
